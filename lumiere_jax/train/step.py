"""The pure, jitted diffusion train step shared by image and video models."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax import diffusion
from lumiere_jax.diffusion.noise import gaussian_noise
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.memory import set_compute_dtype
from lumiere_jax.models.t2i import X0_ESTIMATE
from lumiere_jax.settings import ComputeSettings, OptimSettings
from lumiere_jax.text import tokenizer
from lumiere_jax.train.state import TrainState


def null_tokens(length: int):
    """The unconditional prompt: the empty string (just end-of-text), batch dim 1."""
    return jnp.asarray(tokenizer.tokenize("", length, allow_empty=True))[None]


def ema_decay_at(step, decay: float):
    """EMA decay with warm-up, so early averages are not dominated by the initialisation."""
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def training_times(rng, batch_size: int, settings: DiffusionSettings):
    """t for each example: low-discrepancy U(0, 1) under the training schedule (the model's, or
    with `train_log_snr_shift` the t of the model's schedule at the shifted log-SNR), with a
    `focus_fraction` of examples drawn from U(focus_t_min, focus_t_max) instead."""
    uniform_rng, focus_rng, pick_rng = jax.random.split(rng, 3)
    t = diffusion.sample_times(uniform_rng, batch_size, low_discrepancy=True)
    if settings.train_log_snr_shift:
        t = diffusion.times_for_log_snr(settings.noise_schedule(),
                                        settings.training_schedule().log_snr(t))
    if settings.focus_fraction > 0:
        focus = jax.random.uniform(focus_rng, (batch_size,), minval=settings.focus_t_min,
                                   maxval=settings.focus_t_max)
        t = jnp.where(jax.random.bernoulli(pick_rng, settings.focus_fraction, (batch_size,)),
                      focus, t)
    return t


def draw_step_randomness(rng, batch, settings: DiffusionSettings) -> dict:
    """Everything random in one step, drawn for the whole global batch up front (so splitting
    the batch into micro-batches changes nothing): which prompts are dropped, t, and the noise."""
    drop_rng, time_rng, noise_rng = jax.random.split(rng, 3)
    batch_size = batch["tokens"].shape[0]
    condition_keys = jax.random.split(jax.random.fold_in(rng, 3), batch_size)
    return {
        "dropped": jax.random.bernoulli(drop_rng, settings.cond_drop_prob, (batch_size,)),
        # One key per example for what the model derives from the clean batch (condition_on).
        "condition_keys": jax.random.key_data(condition_keys),
        "t": training_times(time_rng, batch_size, settings),
        # Self-conditioned models: which examples get the model's own first guess of x0.
        "self_condition": jax.random.bernoulli(jax.random.fold_in(rng, 4), 0.5, (batch_size,)),
        "eps": gaussian_noise(jax.random.split(noise_rng)[1], batch["frames"].shape,
                              settings.frame_noise_correlation),
    }


def self_conditioned_denoiser(model, cond: dict, schedule, prediction: str, use_estimate, dtype):
    """denoise(x_t, t) for training a self-conditioned model: a first pass without an estimate
    (zeros) gives x0's first guess, which (no gradient through it) is the estimate of the second
    pass for the examples where `use_estimate` (B,) is set, zeros elsewhere."""
    def denoise(x_t, t):
        x_t = x_t.astype(dtype)
        run = lambda estimate: model.denoise(x_t, t, dict(cond, **{X0_ESTIMATE: estimate}))
        zeros = jnp.zeros_like(x_t)
        alpha, sigma = schedule.alpha_sigma(t)
        guess, _ = diffusion.to_x0_eps(run(zeros).astype(jnp.float32), x_t.astype(jnp.float32),
                                       alpha, sigma, prediction)
        guess = jax.lax.stop_gradient(jnp.clip(guess, -1.0, 1.0)).astype(dtype)
        keep = use_estimate.reshape((-1,) + (1,) * (x_t.ndim - 1))
        return run(jnp.where(keep, guess, zeros)).astype(jnp.float32)
    return denoise


def micro_batches(tree, count: int):
    """Splits every leaf's batch axis into `count` micro-batches (k, B / k, ...); micro-batch i
    takes rows i, i + k, ..., so each device's rows spread evenly over them."""
    def split(x):
        rows = x.shape[0] // count
        return jnp.swapaxes(x.reshape((rows, count) + x.shape[1:]), 0, 1)
    return jax.tree.map(split, tree)


def make_train_step(graphdef: nnx.GraphDef, diffusion_settings: DiffusionSettings,
                    optim: OptimSettings, optimizer: optax.GradientTransformation,
                    compute: ComputeSettings = ComputeSettings()):
    """Returns train_step(state, batch) -> (state, metrics), pure and jit-able.

    batch: `frames` uint8 (B, ..., H, W, 3) and `tokens` int32 (B, L). The model is called as
    model.denoise(x_t, t, model.encode_text(tokens)), its layers in `compute.dtype`, over
    `compute.grad_accum_steps` micro-batches whose gradients are averaged.
    """
    dtype = jnp.dtype(compute.dtype)
    accumulate = compute.grad_accum_steps

    def loss_fn(params, frozen, batch):
        model = nnx.merge(graphdef, params, frozen)
        if dtype != jnp.float32:
            set_compute_dtype(model, dtype)  # the layers cast the float32 weights where they run
        tokens = diffusion.replace_condition(batch["dropped"], batch["tokens"],
                                             null_tokens(batch["tokens"].shape[1]))
        cond = model.encode_text(tokens)
        x0 = frames_to_model_range(batch["frames"])
        # e.g. super-resolution: the low-res input, noise-augmented
        cond = model.condition_on(cond, x0.astype(dtype), batch["condition_keys"])
        schedule = diffusion_settings.noise_schedule()
        denoise = lambda x_t, t: model.denoise(x_t.astype(dtype), t, cond).astype(jnp.float32)
        if model.self_conditioned:
            denoise = self_conditioned_denoiser(model, cond, schedule, diffusion_settings.prediction,
                                                batch["self_condition"], dtype)
        losses, _ = diffusion.diffusion_loss(denoise, x0, None, schedule,
                                             diffusion_settings.prediction, t=batch["t"],
                                             eps=batch["eps"])
        weights = diffusion.loss_weight(schedule.log_snr(batch["t"]), diffusion_settings.prediction,
                                        diffusion_settings.loss_weighting,
                                        diffusion_settings.min_snr_gamma)
        return jnp.mean(weights * losses)

    def loss_and_grads(params, frozen, batch):
        if accumulate == 1:
            return jax.value_and_grad(loss_fn)(params, frozen, batch)

        def add(total, micro_batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, frozen, micro_batch)
            return jax.tree.map(jnp.add, total, (loss, grads)), None

        zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        total, _ = jax.lax.scan(add, zeros, micro_batches(batch, accumulate))
        return jax.tree.map(lambda x: x / accumulate, total)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        batch = dict(batch, **draw_step_randomness(rng, batch, diffusion_settings))
        loss, grads = loss_and_grads(state.params, state.frozen, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        decay = ema_decay_at(state.step, optim.ema_decay)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
        metrics = {
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(params),
        }
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema,
                                  opt_state=opt_state)
        return new_state, metrics

    return train_step


def jit_sharded_train_step(train_step, mesh: Mesh, state_shardings, batch_shardings):
    """jit with explicit shardings: the state keeps its own (donated), metrics come replicated."""
    return jax.jit(train_step, in_shardings=(state_shardings, batch_shardings),
                   out_shardings=(state_shardings, NamedSharding(mesh, P())), donate_argnums=(0,))

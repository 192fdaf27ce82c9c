"""The pure, jitted diffusion train step shared by image and video models."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax import diffusion
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.settings import OptimSettings
from lumiere_jax.text import tokenizer
from lumiere_jax.train.state import TrainState


def null_tokens(length: int):
    """The unconditional prompt: the empty string (just end-of-text), batch dim 1."""
    return jnp.asarray(tokenizer.tokenize("", length, allow_empty=True))[None]


def ema_decay_at(step, decay: float):
    """EMA decay with warm-up, so early averages are not dominated by the initialisation."""
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def training_times(rng, batch_size: int, settings: DiffusionSettings):
    """t for each example: low-discrepancy U(0, 1), with a `focus_fraction` of examples drawn
    from U(focus_t_min, focus_t_max) instead."""
    uniform_rng, focus_rng, pick_rng = jax.random.split(rng, 3)
    t = diffusion.sample_times(uniform_rng, batch_size, low_discrepancy=True)
    if settings.focus_fraction > 0:
        focus = jax.random.uniform(focus_rng, (batch_size,), minval=settings.focus_t_min,
                                   maxval=settings.focus_t_max)
        t = jnp.where(jax.random.bernoulli(pick_rng, settings.focus_fraction, (batch_size,)),
                      focus, t)
    return t


def make_train_step(graphdef: nnx.GraphDef, diffusion_settings: DiffusionSettings,
                    optim: OptimSettings, optimizer: optax.GradientTransformation):
    """Returns train_step(state, batch) -> (state, metrics), pure and jit-able.

    batch: `frames` uint8 (B, ..., H, W, 3) and `tokens` int32 (B, L). The model is called as
    model.denoise(x_t, t, model.encode_text(tokens)).
    """

    def loss_fn(params, frozen, batch, rng):
        model = nnx.merge(graphdef, params, frozen)
        drop_rng, time_rng, noise_rng = jax.random.split(rng, 3)
        tokens = diffusion.drop_condition(drop_rng, batch["tokens"],
                                          null_tokens(batch["tokens"].shape[1]),
                                          diffusion_settings.cond_drop_prob)
        cond = model.encode_text(tokens)
        x0 = frames_to_model_range(batch["frames"])
        cond = model.condition_on(cond, x0)  # e.g. super-resolution: the low-res clip
        schedule = diffusion_settings.noise_schedule()
        t = training_times(time_rng, x0.shape[0], diffusion_settings)
        losses, _ = diffusion.diffusion_loss(
            lambda x_t, t: model.denoise(x_t, t, cond), x0, noise_rng, schedule,
            diffusion_settings.prediction, t=t,
            frame_correlation=diffusion_settings.frame_noise_correlation)
        weights = diffusion.loss_weight(schedule.log_snr(t), diffusion_settings.prediction,
                                        diffusion_settings.loss_weighting,
                                        diffusion_settings.min_snr_gamma)
        return jnp.mean(weights * losses)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, state.frozen, batch, rng)
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

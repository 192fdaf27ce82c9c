"""Sampling a text-conditioned model (any kind of the models protocol): prompts -> images or clips.

The pipeline (exports and run checkpoints) and the trainer's in-loop evaluation (EMA weights of
the running state) both sample through `ModelSampler`. It reads the model only through the
protocol (`models.protocol.DiffusionModel`), so every kind samples the same way; a kind that reads
inputs besides the text (the SSR model's low-resolution clip) gets them as `conditions`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from lumiere_jax.diffusion.guidance import classifier_free_guidance
from lumiere_jax.diffusion.multidiffusion import temporal_multidiffusion, window_starts
from lumiere_jax.diffusion.noise_bands import split_by_noise_level
from lumiere_jax.diffusion.pixels import frames_to_model_range, to_uint8
from lumiere_jax import checks
from lumiere_jax.diffusion.samplers import SAMPLERS, noise_to, sample
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.protocol import DiffusionModel
from lumiere_jax.models.t2i import X0_ESTIMATE
from lumiere_jax.names import BATCH_AXES
from lumiere_jax.settings import SampleSettings
from lumiere_jax.text import tokenizer


@functools.partial(jax.jit, static_argnames=("graphdef", "shape", "schedule", "prediction", "steps",
                                               "sampler", "guidance", "dynamic_threshold",
                                               "frame_correlation", "progress", "noise_aug",
                                               "window", "stride", "window_chunk", "t_start",
                                               "batch_sharding", "per_frame_below"))
def sample_model(graphdef, state, tokens, conditions, rng, *, shape, schedule, prediction, steps,
                 sampler, guidance, dynamic_threshold, frame_correlation, progress,
                 noise_aug=None, window=None, stride=None, window_chunk=0, x_start=None,
                 t_start=1.0, batch_sharding=None, per_frame_below=0.0):
    """x0 (shape) for `tokens` and the model's other `conditions` (a dict, in the model range),
    with classifier-free guidance (the conditional and the null prompt batched into one call of
    the model per step; the other conditions are kept for both).

    A video model with `window` denoises overlapping windows of `window` frames, `stride` apart,
    at every step and averages them per frame (temporal MultiDiffusion): its per-frame inputs
    (e.g. the SSR's low-res clip) are cut into the same windows, all denoised in one vmap, or
    `window_chunk` windows at a time (less memory, one window's activations per chunk).

    With `x_start` (model range) and `t_start` < 1 it is SDEdit: x_start is noised to t_start
    and denoised from there. `batch_sharding` (a NamedSharding of the rows) spreads the samples
    over devices: every step's input and output are laid out by it. A video model with
    `per_frame_below` > 0 runs its frozen 2D model per frame at the steps with t below it."""
    model = nnx.merge(graphdef, state)
    condition_rng, rng = jax.random.split(rng)
    x_init = None
    if x_start is not None:
        start_rng, rng = jax.random.split(rng)
        x_init = noise_to(x_start, t_start, start_rng, schedule, frame_correlation)
    predict = guided_denoiser(model, tokens, conditions, condition_rng, guidance=guidance,
                              noise_aug=noise_aug, window=window, stride=stride,
                              window_chunk=window_chunk, per_frame_below=per_frame_below)
    if batch_sharding is not None:
        spread = lambda x: jax.lax.with_sharding_constraint(x, batch_sharding)
        predict = (lambda denoise: lambda x_t, t, *estimate: spread(
            denoise(spread(x_t), t, *map(spread, estimate))))(predict)
    return sample(predict, shape, rng, schedule, steps=steps, sampler=sampler,
                  prediction=prediction, dynamic_threshold=dynamic_threshold,
                  frame_correlation=frame_correlation, progress=progress, x_init=x_init,
                  t_start=t_start, self_condition=model.self_conditioned)


def guided_denoiser(model: DiffusionModel, tokens, conditions: dict, rng, *, guidance: float,
                    noise_aug=None, window=None, stride=None, window_chunk: int = 0,
                    per_frame_below: float = 0.0):
    """predict(x_t, t): what one sampling step asks of the model. The text is encoded, the
    other conditions prepared (e.g. the SSR's low-res clip noise-augmented with `rng`), the
    denoiser run over temporal windows (MultiDiffusion) when `window` is given, and the
    conditional and null-prompt predictions batched into one call and mixed by `guidance`.
    A video model with `per_frame_below` > 0 denoises the steps at t below it with its frozen
    2D model, frame by frame (`noise_bands.split_by_noise_level`)."""
    conditions = model.prepare_conditions(conditions, rng, noise_aug)
    cond = dict(model.encode_text(tokens), **conditions)
    denoise = lambda x_t, t, c: model.denoise(x_t, t, c)
    if per_frame_below > 0.0:
        if not model.is_video:
            raise ValueError("per_frame_below is for video models (their frozen 2D model runs "
                             "per frame below it); this is an image model.")
        denoise = split_by_noise_level(denoise, model.denoise_per_frame, per_frame_below)
    if window is not None:
        denoise = windowed(denoise, model.per_frame_inputs, window, stride, window_chunk)
    if guidance == 1.0:
        guided = lambda c, u: lambda x_t, t: denoise(x_t, t, c)
        uncond = {}
    else:
        null = jnp.asarray(tokenizer.tokenize("", tokens.shape[1], allow_empty=True))[None]
        uncond = dict(model.encode_text(null), **conditions)
        guided = lambda c, u: classifier_free_guidance(denoise, c, u, guidance)
    if not model.self_conditioned:
        return guided(cond, uncond)
    # Self-conditioning: the conditional and the null prompt read the same (guided) estimate.
    with_estimate = lambda c, estimate: dict(c, **{X0_ESTIMATE: estimate}) if c else c
    return lambda x_t, t, estimate: guided(with_estimate(cond, estimate),
                                           with_estimate(uncond, estimate))(x_t, t)


def windowed(denoise, per_frame_inputs, window: int, stride: int, chunk: int = 0):
    """denoise(x_t, t, cond) over clips as the per-frame mean over overlapping windows (all in
    one vmap, or `chunk` windows at a time)."""
    def over_windows(x_t, t, cond):
        names = [name for name in per_frame_inputs if name in cond]

        def one_window(x_window, *inputs):
            return denoise(x_window, t, dict(cond, **dict(zip(names, inputs))))

        return temporal_multidiffusion(one_window, (x_t, *[cond[name] for name in names]),
                                       window, stride, chunk=chunk)
    return over_windows


def check_conditions(conditions: dict, expected: dict[str, tuple]) -> None:
    """Refuses conditions that are missing, unknown, or of the wrong shape."""
    missing, unknown = sorted(set(expected) - set(conditions)), sorted(set(conditions) - set(expected))
    if missing or unknown:
        raise ValueError(f"This model reads {sorted(expected) or 'no inputs'} besides the text; "
                         f"missing: {missing}, unknown: {unknown}.")
    for name, shape in expected.items():
        if tuple(np.shape(conditions[name])) != tuple(shape):
            raise ValueError(f"Condition {name!r} has shape {np.shape(conditions[name])}, this "
                             f"model needs {tuple(shape)}.")


class ModelSampler:
    """A model (any kind), split for jit, with its diffusion and sampling settings."""

    def __init__(self, graphdef, state, model: DiffusionModel, diffusion: DiffusionSettings,
                 sample_defaults: SampleSettings, default_frames: int):
        self.graphdef, self.state, self.model = graphdef, state, model
        self.diffusion, self.sample_defaults = diffusion, sample_defaults
        self.default_frames = default_frames

    @property
    def is_video(self) -> bool:
        return self.model.is_video

    @property
    def resolution(self) -> int:
        return self.model.resolution

    def tokenize(self, prompts, allow_empty: bool = False) -> np.ndarray:
        """Token ids (N, L) of the prompts; empty ones refused unless `allow_empty`."""
        return tokenizer.tokenize_batch(prompts, self.model.text_encoder.config.max_length,
                                        allow_empty=allow_empty)

    def sample(self, prompts, *, seed: int = 0, steps: int | None = None,
               guidance: float | None = None, sampler: str | None = None,
               frames: int | None = None, conditions: dict | None = None,
               progress: bool = False, noise_aug: float | None = None,
               window: int | None = None, stride: int | None = None,
               window_chunk: int = 0, allow_empty: bool = False, start=None,
               strength: float = 1.0, mesh: jax.sharding.Mesh | None = None,
               per_frame_below: float | None = None,
               enlarged_start: float | None = None) -> np.ndarray:
        """One sample per prompt: uint8 images (N, H, W, 3), or clips (N, T, H, W, 3) from a
        video model (T = `frames`, default the training length; the whole clip in one pass, or
        with `window` in overlapping windows of that many frames, `stride` apart (default half a
        window), averaged at every step: temporal MultiDiffusion; `window_chunk` > 0 denoises
        that many windows at a time instead of all at once).

        `conditions`: the model's inputs besides the text (`conditioning_shapes`), as uint8
        pixels, e.g. {"low_res": clips (N, T, h, w, 3)} for the SSR model, which noise-augments
        them to `noise_aug` (default its config's). `allow_empty` lets a prompt be "" (the null
        prompt, e.g. to upscale a clip that has no caption).

        `start` (uint8, the output's shape) with `strength` S in [0, 1] is SDEdit: `start` is
        noised to time S and denoised from there in `steps` steps (S = 0 returns it as given,
        S = 1 ignores it).

        `mesh` (with a `data` and/or `fsdp` axis) spreads the samples over its devices, the
        weights replicated on each; the rows are padded to a multiple of those axes' size.

        `per_frame_below` (video models; default its config's `sample.per_frame_below`): the
        steps at t below it skip the temporal layers, the frozen 2D model denoising each frame
        alone; 0 = never.

        `enlarged_start` S (SR models; default its config's `sample.enlarged_start`): with
        S < 1 and no `start`, sampling starts from the low-res input enlarged bilinearly, noised
        to t = S (SDEdit from the enlargement; 0 returns the enlargement itself, 1 = from pure
        noise)."""
        defaults = self.sample_defaults
        checked = checks.settings(steps=steps, guidance=guidance, frames=frames, seed=seed,
                                  noise_aug=noise_aug, window=window, stride=stride,
                                  window_chunk=window_chunk, strength=strength,
                                  per_frame_below=per_frame_below,
                                  enlarged_start=enlarged_start)
        if per_frame_below is None:
            per_frame_below = defaults.per_frame_below if self.model.is_video else 0.0
        elif per_frame_below > 0.0 and not self.model.is_video:
            raise checks.InputError("per_frame_below is only for video models; this is an "
                                    "image model.")
        if sampler is not None:
            checks.choice("sampler", sampler, SAMPLERS)
        if frames is not None and not self.model.is_video:
            raise checks.InputError("frames is only for video models; this is an image model.")
        if start is not None and checked["strength"] == 0.0:
            return np.asarray(start, np.uint8).copy()
        tokens = self.tokenize(prompts, allow_empty)
        if frames is None and self.model.is_video:
            frames = self.default_frames
        shape = self.model.input_shape(tokens.shape[0], None if frames is None else int(frames))
        if window is not None:
            if not self.model.is_video:
                raise ValueError("window is for video models (temporal windows of a clip).")
            window, stride = int(window), int(window // 2 if stride is None else stride)
            window_starts(frames, window, stride)  # refuses windows that do not fit the clip
            self.model.check_frame_count(window)
        conditions = dict(conditions or {})
        check_conditions(conditions, self.model.conditioning_shapes(tokens.shape[0], frames))
        conditions = {name: frames_to_model_range(np.asarray(value, np.uint8))
                      for name, value in conditions.items()}
        x_start, t_start = None, 1.0
        if start is not None:
            if tuple(np.shape(start)) != tuple(shape):
                raise ValueError(f"start has shape {np.shape(start)}, the samples have {shape}.")
            x_start, t_start = frames_to_model_range(np.asarray(start, np.uint8)), float(strength)
        else:
            x_start, t_start = self._enlarged_start(conditions, shape, enlarged_start)
            if x_start is not None and t_start == 0.0:
                return to_uint8(x_start)
        state, rows, batch_sharding = self.state, tokens.shape[0], None
        if mesh is not None:
            state, batch_sharding, pad = self._spread(mesh, rows)
            padded = lambda a: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
            tokens = jax.device_put(padded(tokens), batch_sharding)
            conditions = {k: jax.device_put(padded(np.asarray(v)), batch_sharding)
                          for k, v in conditions.items()}
            shape = (rows + pad,) + tuple(shape[1:])
            if x_start is not None:
                x_start = jax.device_put(padded(np.asarray(x_start)), batch_sharding)
        x = sample_model(
            self.graphdef, state, jnp.asarray(tokens), conditions, jax.random.key(seed),
            shape=shape, schedule=self.diffusion.noise_schedule(),
            prediction=self.diffusion.prediction, steps=int(defaults.steps if steps is None else steps),
            sampler=sampler or defaults.sampler,
            guidance=float(defaults.guidance if guidance is None else guidance),
            dynamic_threshold=defaults.dynamic_threshold or None,
            frame_correlation=float(self.diffusion.frame_noise_correlation), progress=progress,
            noise_aug=None if noise_aug is None else float(noise_aug), window=window,
            stride=stride, window_chunk=int(window_chunk) if window is not None else 0,
            x_start=x_start, t_start=t_start,
            batch_sharding=batch_sharding, per_frame_below=float(per_frame_below))
        return to_uint8(x)[:rows]

    def _enlarged_start(self, conditions: dict, shape, enlarged_start: float | None):
        """(x_start, t_start) for SDEdit from the enlarged low-res input, or (None, 1.0)."""
        level = self.sample_defaults.enlarged_start if enlarged_start is None else enlarged_start
        if level >= 1.0:
            return None, 1.0
        enlarged = self.model.enlarged_input(conditions, shape[-2])
        if enlarged is None:
            raise checks.InputError("enlarged_start is for super-resolution models (they start "
                                    "from their enlarged low-res input); this model has none.")
        return jnp.asarray(enlarged, jnp.float32), float(level)

    def _spread(self, mesh: jax.sharding.Mesh, rows: int):
        """(weights replicated over `mesh`, the rows' sharding, padding rows) for `rows`."""
        axes = tuple(axis for axis in BATCH_AXES if axis in mesh.shape)
        if not axes:
            raise ValueError(f"The mesh needs a {' or '.join(BATCH_AXES)} axis to spread "
                             f"samples over; it has {tuple(mesh.shape)}.")
        size = int(np.prod([mesh.shape[axis] for axis in axes]))
        # Sharding propagates through the sampler (auto axes), e.g. for a `jax.make_mesh` mesh.
        mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)
        cached = getattr(self, "_replicated", None)
        if cached is None or cached[0] != mesh:
            replicated = jax.device_put(self.state, NamedSharding(mesh, PartitionSpec()))
            self._replicated = cached = (mesh, replicated)
        return cached[1], NamedSharding(mesh, PartitionSpec(axes)), -rows % size

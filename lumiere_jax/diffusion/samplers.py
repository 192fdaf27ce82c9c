"""Compiled DDIM and ancestral samplers with Imagen-style thresholding and SDEdit starts."""
from __future__ import annotations

import numbers
from typing import Callable

import chex
import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from lumiere_jax.diffusion.noise import gaussian_noise
from lumiere_jax.diffusion.schedules import (
    Schedule,
    times_for_log_snr,
    check_prediction_kind,
    eps_from_x0,
    get_schedule,
    per_example,
    to_x0_eps,
)

PredictFn = Callable[[jax.Array, jax.Array], jax.Array]


def noise_to(x0: jax.Array, t, rng: jax.Array, schedule: str | Schedule,
             frame_correlation: float = 0.0) -> jax.Array:
    """x_t = alpha(t) x0 + sigma(t) eps with fresh eps (correlated across a video's frames by
    `frame_correlation`); t is a scalar or per-example (B,)."""
    alpha, sigma = get_schedule(schedule).alpha_sigma(t)
    eps = gaussian_noise(rng, x0.shape, frame_correlation)
    return per_example(alpha, x0) * x0 + per_example(sigma, x0) * eps


def apply_dynamic_threshold(x0: jax.Array, percentile: float) -> jax.Array:
    """Imagen's dynamic thresholding: s = max(1, percentile of |x0| per example); clip to [-s, s] / s."""
    flat = jnp.abs(x0).reshape(x0.shape[0], -1)
    s = jnp.maximum(jnp.quantile(flat, percentile, axis=1), 1.0)
    s = per_example(s, x0)
    return jnp.clip(x0, -s, s) / s


def ddim_step(x_t, x0, eps, alpha_t, sigma_t, alpha_s, sigma_s, rng,
              frame_correlation: float = 0.0) -> jax.Array:
    """Deterministic DDIM (eta=0) update from time t to s: x_s = alpha_s x0 + sigma_s eps."""
    del x_t, alpha_t, sigma_t, rng, frame_correlation
    return alpha_s * x0 + sigma_s * eps


def ancestral_step(x_t, x0, eps, alpha_t, sigma_t, alpha_s, sigma_s, rng,
                   frame_correlation: float = 0.0) -> jax.Array:
    """A draw from the DDPM posterior q(x_s | x_t, x0) of the VP process (its fresh noise
    correlated across a video's frames like the process's own)."""
    del eps
    alpha_ts = alpha_t / alpha_s
    # sigma_ts^2 / sigma_t^2 with sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2 (>= 0 up to rounding)
    fresh_fraction = jnp.clip(1.0 - jnp.square(alpha_ts * sigma_s / sigma_t), 0.0, 1.0)
    mean = alpha_ts * jnp.square(sigma_s / sigma_t) * x_t + alpha_s * fresh_fraction * x0
    std = sigma_s * jnp.sqrt(fresh_fraction)  # zero on the last step, where sigma_s = 0
    return mean + std * gaussian_noise(rng, x_t.shape, frame_correlation, x_t.dtype)


_STEPS = {"ddim": ddim_step, "ancestral": ancestral_step}
SAMPLERS = tuple(_STEPS)
SPACINGS = ("logsnr", "uniform")
# The log-SNR grid spans this range: beyond it a step changes the sample by less than a pixel
# level (sigma = e^-5 at +10) or sees nearly pure noise (alpha = e^-5 at -10).
GRID_LOG_SNR = (-10.0, 10.0)


def sampling_times(schedule: str | Schedule, steps: int, t_start: float = 1.0,
                   spacing: str = "logsnr") -> jax.Array:
    """The steps + 1 times a sampler visits, from t_start down to 0.

    "uniform": equal steps in t. "logsnr": equal steps in log-SNR over GRID_LOG_SNR (from
    t_start's own log-SNR where that is higher), so the steps go where the signal changes,
    whatever the schedule and its shift; the first time is t_start and the last 0.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"Unknown spacing {spacing!r}; allowed: {', '.join(map(repr, SPACINGS))}.")
    with jax.ensure_compile_time_eval():
        if spacing == "uniform":
            return jnp.linspace(t_start, 0.0, int(steps) + 1, dtype=jnp.float32)
        schedule = get_schedule(schedule)
        low = jnp.maximum(schedule.log_snr(t_start), GRID_LOG_SNR[0])
        high = jnp.maximum(GRID_LOG_SNR[1], low + 1.0)
        inner = times_for_log_snr(schedule, jnp.linspace(low, high, int(steps))[1:])
        return jnp.concatenate([jnp.array([t_start], jnp.float32), inner.astype(jnp.float32),
                                jnp.zeros((1,), jnp.float32)])


class _ProgressBar:
    """Host side of the in-loop progress callback: opens a bar on step 0, closes it on the last.

    It is driven by the step index, so a repeated or late report cannot over-count. The bar opens
    at the first step report, after compilation, so its ETA ignores compile time.
    """

    def __init__(self, total: int):
        self.total = total
        self._bar = None

    def __call__(self, step) -> None:
        done = int(step) + 1
        if self._bar is None or done == 1:
            self.close()
            self._bar = tqdm(total=self.total, desc="sampling", unit="step")
        self._bar.update(max(done - self._bar.n, 0))
        if done >= self.total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _check_sample_args(shape, steps, sampler, prediction, dynamic_threshold, clip_x0, x_init, t_start):
    if len(shape) < 2:
        raise ValueError(f"shape must be (batch, ...) with at least 2 axes; got {shape}.")
    if not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}.")
    if sampler not in _STEPS:
        raise ValueError(f"Unknown sampler {sampler!r}; allowed: {', '.join(map(repr, SAMPLERS))}.")
    check_prediction_kind(prediction)
    if dynamic_threshold is not None and not 0.0 < dynamic_threshold <= 1.0:
        raise ValueError(
            f"dynamic_threshold is a percentile in (0, 1] such as 0.995; got {dynamic_threshold!r}."
        )
    if clip_x0 is not None and not clip_x0 > 0.0:
        raise ValueError(f"clip_x0 must be positive (e.g. 1.0); got {clip_x0!r}.")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start must lie in (0, 1]; got {t_start!r}.")
    if x_init is None and t_start < 1.0:
        raise ValueError(
            f"t_start={t_start} < 1 starts from a partly noised sample: pass x_init "
            "(e.g. noise_to(x0, t_start, rng, schedule))."
        )
    if x_init is not None and tuple(x_init.shape) != tuple(shape):
        raise ValueError(f"x_init has shape {tuple(x_init.shape)} but shape is {tuple(shape)}.")


def sample(
    predict_fn: PredictFn,
    shape: tuple[int, ...],
    rng: jax.Array,
    schedule: str | Schedule,
    *,
    steps: int,
    sampler: str = "ddim",
    prediction: str = "v",
    dynamic_threshold: float | None = None,
    clip_x0: float | None = None,
    x_init: jax.Array | None = None,
    t_start: float = 1.0,
    spacing: str = "logsnr",
    frame_correlation: float = 0.0,
    progress: bool = False,
    self_condition: bool = False,
) -> jax.Array:
    """Denoise from t_start to 0 in `steps` steps and return x0 of the given shape.

    `spacing` places the steps: "logsnr" (default; equal log-SNR steps, see `sampling_times`) or
    "uniform" (equal steps in t).

    predict_fn(x_t, t) returns the model output (kind `prediction`: "v", "eps" or "x0") with t of
    shape (B,). sampler is "ddim" (eta=0) or "ancestral" (DDPM posterior draws). x0 estimates can be
    dynamically thresholded (a percentile such as 0.995) and/or clipped to [-clip_x0, clip_x0]; eps
    is then recomputed from the clipped x0. x_init with t_start < 1 starts from a noisy input
    (SDEdit); otherwise x starts as N(0, I), its frames correlated by `frame_correlation` for a
    video model trained with that noise (`diffusion.noise`). Everything except predict_fn's arrays, rng and x_init
    is static, so the whole call is jit-able; the loop is a lax.fori_loop. progress=True drives a
    tqdm bar through jax.debug.callback from inside the compiled loop.

    With `self_condition`, predict_fn(x_t, t, x0_estimate) also reads the previous step's x0
    estimate (after thresholding and clipping; zeros at the first step): self-conditioning.
    """
    _check_sample_args(shape, steps, sampler, prediction, dynamic_threshold, clip_x0, x_init, t_start)
    schedule = get_schedule(schedule)
    step_fn = _STEPS[sampler]
    batch_size = shape[0]
    times = sampling_times(schedule, steps, t_start, spacing)
    init_rng, noise_rng = jax.random.split(rng)
    x = (gaussian_noise(init_rng, shape, frame_correlation) if x_init is None
         else x_init.astype(jnp.float32))
    progress_bar = _ProgressBar(steps) if progress else None

    def denoise(x_t, t, estimate):
        alpha_t, sigma_t = schedule.alpha_sigma(t)
        t_batch = jnp.full((batch_size,), t)
        output = (predict_fn(x_t, t_batch, estimate) if self_condition
                  else predict_fn(x_t, t_batch))
        chex.assert_shape(output, tuple(shape))
        x0, eps = to_x0_eps(output.astype(jnp.float32), x_t, alpha_t, sigma_t, prediction)
        if dynamic_threshold is not None or clip_x0 is not None:
            if dynamic_threshold is not None:
                x0 = apply_dynamic_threshold(x0, dynamic_threshold)
            if clip_x0 is not None:
                x0 = jnp.clip(x0, -clip_x0, clip_x0)
            eps = eps_from_x0(x_t, x0, alpha_t, sigma_t)
        return x0, eps

    def body(i, carry):
        x_t, estimate = carry
        t, s = times[i], times[i + 1]
        x0, eps = denoise(x_t, t, estimate)
        alpha_t, sigma_t = schedule.alpha_sigma(t)
        # The grid ends at clean data: alpha = 1, sigma = 0 exactly (the schedule is clipped there).
        alpha_s, sigma_s = schedule.alpha_sigma(s)
        alpha_s, sigma_s = jnp.where(s > 0, alpha_s, 1.0), jnp.where(s > 0, sigma_s, 0.0)
        x_s = step_fn(x_t, x0, eps, alpha_t, sigma_t, alpha_s, sigma_s,
                      jax.random.fold_in(noise_rng, i), frame_correlation=frame_correlation)
        if progress_bar is not None:
            jax.debug.callback(progress_bar, i)
        return x_s, (x0 if self_condition else estimate)

    # The estimate is carried only by self-conditioned samplers (a scalar placeholder otherwise).
    estimate = jnp.zeros(shape, jnp.float32) if self_condition else jnp.zeros(())
    return jax.lax.fori_loop(0, steps, body, (x, estimate))[0]

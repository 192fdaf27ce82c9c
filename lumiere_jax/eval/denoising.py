"""Denoising error by noise level: how far a model's one-step x0 estimate is from the clean image.

A diagnostic beside the sample scores: it needs no sampling, reads every noise level separately
and says where a recipe is weak (mid noise draws the outlines, high log-SNR cleans the pixels).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax.data import shapes
from lumiere_jax.diffusion import Schedule, noise_to, per_example, times_for_log_snr, to_x0_eps
from lumiere_jax.diffusion.pixels import frames_to_model_range, to_uint8
from lumiere_jax.eval.shapes_evaluator import read_frame
from lumiere_jax.eval.split_sampling import prompts_and_specs

DEFAULT_LOG_SNRS = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0)


def x0_error_by_log_snr(predict: Callable, x0, schedule: Schedule, prediction: str,
                        log_snrs=DEFAULT_LOG_SNRS, seed: int = 0) -> dict[float, dict[str, float]]:
    """For each log-SNR: the mean squared error of the model's x0 estimate (`model`) and of the
    noisy input scaled back (`identity`, x_t / alpha: what doing nothing scores).

    predict(x_t, t) returns the model output of kind `prediction`; x0 is a clean batch in [-1, 1].
    """
    x0 = jnp.asarray(x0, jnp.float32)
    table = {}
    for log_snr in log_snrs:
        t = times_for_log_snr(schedule, jnp.full((x0.shape[0],), float(log_snr)))
        alpha, sigma = schedule.alpha_sigma(t)
        x_t = noise_to(x0, t, jax.random.key(seed), schedule)  # the same noise at every level
        estimate, _ = to_x0_eps(predict(x_t, t), x_t, alpha, sigma, prediction)
        table[float(log_snr)] = {
            "model": float(jnp.mean(jnp.square(estimate - x0))),
            "identity": float(jnp.mean(jnp.square(x_t / per_example(alpha, x0) - x0))),
        }
    return table


RECOVERY_LOG_SNRS = (-3.0, -2.0, -1.0, 0.0)


def shape_recovery_by_log_snr(sample_from: Callable, frames, specs, schedule: Schedule,
                              log_snrs=RECOVERY_LOG_SNRS, seed: int = 0) -> dict[float, float]:
    """For each log-SNR L: the fraction of true frames (uint8 (N, H, W, 3)) whose shape the
    evaluator reads back after the frames are noised to L and denoised from there to 0.

    sample_from(x_init, t_start) runs the sampler from x_init at time t_start and returns x0 in
    the model range. Where the layout is given (position, size, colour) and only the outline is
    left to decide, this says at which noise level a model loses the shapes that its samples
    from pure noise miss (docs/training.md, section 6).
    """
    x0 = jnp.asarray(frames_to_model_range(frames), jnp.float32)
    recovered = {}
    for log_snr in log_snrs:
        t_start = float(times_for_log_snr(schedule, jnp.array([float(log_snr)]))[0])
        x_init = noise_to(x0, t_start, jax.random.key(seed), schedule)
        images = to_uint8(sample_from(x_init, t_start))
        recovered[float(log_snr)] = float(np.mean(
            [read_frame(image).shape == spec.shape for image, spec in zip(images, specs)]))
    return recovered


def validation_frames(num: int, resolution: int, split: str = "validation"):
    """(uint8 first frames (num, H, W, 3), captions) of a shapes split, rendered directly."""
    captions, specs = prompts_and_specs(split, num)
    return np.stack([shapes.render_frame(spec, 0, resolution) for spec in specs]), captions

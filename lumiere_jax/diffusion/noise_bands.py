"""Two denoisers split by noise level: one for the high-noise steps, another below a threshold.

A video model's temporal layers decide where things go and how they move, which happens in the
first, noisiest steps; below some t the frozen 2D model alone draws each frame's detail better
than with its temporal layers (docs/training.md section 13). The idea is eDiff-I's ensemble of
expert denoisers by noise level (Balaji et al. 2022), here with no extra weights: the experts
are the STUNet and the frozen T2I it inflates.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

DenoiseFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def split_by_noise_level(high: DenoiseFn, low: DenoiseFn, threshold: float) -> DenoiseFn:
    """denoise(x_t, t, cond): `low` for the examples whose t (B,) is below `threshold`, `high`
    for the others. Only the denoiser a batch needs is run (a sampler's steps share one t);
    a batch with both runs both and picks per example."""
    def denoise(x_t, t, cond):
        below = t < threshold
        picked = lambda: jnp.where(below.reshape((-1,) + (1,) * (x_t.ndim - 1)),
                                   low(x_t, t, cond), high(x_t, t, cond))
        return jax.lax.cond(
            jnp.all(below), lambda: low(x_t, t, cond),
            lambda: jax.lax.cond(jnp.any(below), picked, lambda: high(x_t, t, cond)))
    return denoise

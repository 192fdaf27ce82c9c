"""Gaussian noise for the diffusion process, optionally correlated across a clip's frames.

With `frame_correlation` rho > 0, a video's noise (B, T, H, W, C) is
sqrt(rho) * (one draw shared by all frames) + sqrt(1 - rho) * (a draw per frame): every element is
still N(0, 1), and any two frames of a clip correlate by rho (the "mixed" noise prior of PYoCo,
Ge et al. 2023). An inflated image model then starts from frames that already agree, and the
temporal layers learn only how the frames differ. Images (and rho = 0) get independent noise.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def check_frame_correlation(rho: float) -> None:
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"frame noise correlation must be in [0, 1), got {rho}.")


def gaussian_noise(rng: jax.Array, shape: tuple[int, ...], frame_correlation: float = 0.0,
                   dtype=jnp.float32) -> jax.Array:
    """N(0, 1) noise of `shape`; for videos (rank 5, frames on axis 1) any two frames of one clip
    correlate by `frame_correlation` (0: independent, the same draw as `jax.random.normal`)."""
    check_frame_correlation(frame_correlation)
    if frame_correlation == 0.0 or len(shape) != 5:
        return jax.random.normal(rng, shape, dtype)
    shared_rng, own_rng = jax.random.split(rng)
    shared = jax.random.normal(shared_rng, (shape[0], 1) + tuple(shape[2:]), dtype)
    own = jax.random.normal(own_rng, shape, dtype)
    return (math.sqrt(frame_correlation) * shared
            + math.sqrt(1.0 - frame_correlation) * own).astype(dtype)

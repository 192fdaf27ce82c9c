"""The denoising training loss (v or eps target) for images and videos alike."""
from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

from lumiere_jax.diffusion.noise import gaussian_noise
from lumiere_jax.diffusion.schedules import Schedule, check_prediction_kind, from_x0_eps, get_schedule, per_example

PredictFn = Callable[[jax.Array, jax.Array], jax.Array]

LOSS_WEIGHTINGS = ("none", "min_snr", "clamped_snr")


def loss_weight(log_snr: jax.Array, prediction: str, weighting: str = "none",
                gamma: float = 5.0) -> jax.Array:
    """Per-example weight of the `prediction`-space MSE.

    "none": 1. "min_snr" (Min-SNR-gamma, Hang et al. 2023): the x0-space weight min(SNR, gamma),
    expressed in the prediction's own space (v: / (SNR + 1); eps: / SNR; x0: as is), so the
    easy low-noise examples stop dominating the gradient. "clamped_snr": the x0-space weight
    clip(SNR, 1, gamma), Min-SNR with the floor of the truncated-SNR weighting (Salimans & Ho
    2022), so the high-noise examples that decide an image's layout keep the weight of a plain v
    loss instead of fading out as SNR -> 0.
    """
    check_prediction_kind(prediction)
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"Unknown loss weighting {weighting!r}; allowed: {LOSS_WEIGHTINGS}.")
    if weighting == "none":
        return jnp.ones_like(log_snr)
    snr = jnp.exp(log_snr)
    clipped = jnp.minimum(snr, gamma)
    if weighting == "clamped_snr":
        clipped = jnp.maximum(clipped, 1.0)
    return {"v": clipped / (snr + 1.0), "eps": clipped / snr, "x0": clipped}[prediction]


def sample_times(rng: jax.Array, batch_size: int, low_discrepancy: bool = False) -> jax.Array:
    """t ~ U(0, 1) of shape (B,); with low_discrepancy, one uniform shift of the grid i / B."""
    if low_discrepancy:
        shift = jax.random.uniform(rng, ())
        return jnp.mod(shift + jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)
    return jax.random.uniform(rng, (batch_size,))


def diffusion_loss(
    predict_fn: PredictFn,
    x0: jax.Array,
    rng: jax.Array | None,
    schedule: str | Schedule,
    prediction: str = "v",
    t: jax.Array | None = None,
    low_discrepancy: bool = False,
    frame_correlation: float = 0.0,
    eps: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, Any]]:
    """Per-example mean-squared error of predict_fn(x_t, t) against the v or eps target.

    x0 is (B, ...) (images or videos). t (shape (B,)) is drawn from U(0, 1) unless given. A
    video's noise correlates across its frames by `frame_correlation` (see `diffusion.noise`),
    unless the noise `eps` (shape of x0) is given.
    Returns (loss of shape (B,), aux) where aux holds t, x_t, eps, target and the model output.
    """
    check_prediction_kind(prediction)
    schedule = get_schedule(schedule)
    batch_size = x0.shape[0]
    if rng is None and (t is None or eps is None):
        raise ValueError("diffusion_loss needs an rng unless both t and eps are given.")
    t_rng, eps_rng = jax.random.split(rng) if rng is not None else (None, None)
    if t is None:
        t = sample_times(t_rng, batch_size, low_discrepancy)
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch_size,))

    alpha, sigma = schedule.alpha_sigma(t)
    if eps is None:
        eps = gaussian_noise(eps_rng, x0.shape, frame_correlation)
    x0 = x0.astype(jnp.float32)
    x_t = per_example(alpha, x0) * x0 + per_example(sigma, x0) * eps
    target = from_x0_eps(x0, eps, alpha, sigma, prediction)

    output = predict_fn(x_t, t)
    chex.assert_equal_shape((output, target))
    squared_error = jnp.square(output.astype(jnp.float32) - target)
    loss = jnp.mean(squared_error, axis=tuple(range(1, x0.ndim)))
    aux = {"t": t, "x_t": x_t, "eps": eps, "target": target, "output": output}
    return loss, aux

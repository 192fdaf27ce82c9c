"""The denoising training loss (v or eps target) for images and videos alike."""
from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

from lumiere_jax.diffusion.schedules import Schedule, check_prediction_kind, from_x0_eps, get_schedule, per_example

PredictFn = Callable[[jax.Array, jax.Array], jax.Array]


def sample_times(rng: jax.Array, batch_size: int, low_discrepancy: bool = False) -> jax.Array:
    """t ~ U(0, 1) of shape (B,); with low_discrepancy, one uniform shift of the grid i / B."""
    if low_discrepancy:
        shift = jax.random.uniform(rng, ())
        return jnp.mod(shift + jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)
    return jax.random.uniform(rng, (batch_size,))


def diffusion_loss(
    predict_fn: PredictFn,
    x0: jax.Array,
    rng: jax.Array,
    schedule: str | Schedule,
    prediction: str = "v",
    t: jax.Array | None = None,
    low_discrepancy: bool = False,
) -> tuple[jax.Array, dict[str, Any]]:
    """Per-example mean-squared error of predict_fn(x_t, t) against the v or eps target.

    x0 is (B, ...) (images or videos). t (shape (B,)) is drawn from U(0, 1) unless given.
    Returns (loss of shape (B,), aux) where aux holds t, x_t, eps, target and the model output.
    """
    check_prediction_kind(prediction)
    schedule = get_schedule(schedule)
    batch_size = x0.shape[0]
    t_rng, eps_rng = jax.random.split(rng)
    if t is None:
        t = sample_times(t_rng, batch_size, low_discrepancy)
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch_size,))

    alpha, sigma = schedule.alpha_sigma(t)
    eps = jax.random.normal(eps_rng, x0.shape, jnp.float32)
    x0 = x0.astype(jnp.float32)
    x_t = per_example(alpha, x0) * x0 + per_example(sigma, x0) * eps
    target = from_x0_eps(x0, eps, alpha, sigma, prediction)

    output = predict_fn(x_t, t)
    chex.assert_equal_shape((output, target))
    squared_error = jnp.square(output.astype(jnp.float32) - target)
    loss = jnp.mean(squared_error, axis=tuple(range(1, x0.ndim)))
    aux = {"t": t, "x_t": x_t, "eps": eps, "target": target, "output": output}
    return loss, aux

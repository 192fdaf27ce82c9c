"""Classifier-free guidance: condition dropout for training and guided prediction for sampling."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

ModelFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def _batch_size(tree: Any) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError("The condition pytree has no arrays, so it has no batch dimension.")
    return leaves[0].shape[0]


def classifier_free_guidance(model_fn: ModelFn, cond: Any, uncond: Any, scale: float):
    """predict_fn(x_t, t) = uncond + scale * (cond - uncond), in one model call.

    model_fn(x_t, t, condition) is evaluated once on the batch concatenation [cond; uncond].
    Leaves of `uncond` with batch dim 1 (e.g. a null condition) are broadcast to the batch.
    scale=1 gives the conditional model, scale=0 the unconditional one, exactly.
    """

    def predict_fn(x_t: jax.Array, t: jax.Array) -> jax.Array:
        batch_size = x_t.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t), (batch_size,))
        both = jax.tree.map(
            lambda c, u: jnp.concatenate([c, jnp.broadcast_to(u, c.shape).astype(c.dtype)]), cond, uncond
        )
        output = model_fn(jnp.concatenate([x_t, x_t]), jnp.concatenate([t, t]), both)
        conditional, unconditional = output[:batch_size], output[batch_size:]
        # Same as uncond + scale (cond - uncond); this form is exact at scale 0 and 1.
        return (1.0 - scale) * unconditional + scale * conditional

    return predict_fn


def drop_condition(rng: jax.Array, cond: Any, null_cond: Any, p: float) -> Any:
    """Replace each example's condition by the null condition with probability p.

    cond is a pytree of arrays with leading batch dim B; null_cond has the same structure with
    batch dim 1 and is broadcast.
    """
    return replace_condition(jax.random.bernoulli(rng, p, (_batch_size(cond),)), cond, null_cond)


def replace_condition(dropped: jax.Array, cond: Any, null_cond: Any) -> Any:
    """`cond` with the examples where `dropped` (B,) is True replaced by `null_cond` (batch 1)."""
    batch_size = dropped.shape[0]

    def choose(c: jax.Array, null: jax.Array) -> jax.Array:
        mask = dropped.reshape((batch_size,) + (1,) * (c.ndim - 1))
        return jnp.where(mask, jnp.broadcast_to(null, c.shape).astype(c.dtype), c)

    return jax.tree.map(choose, cond, null_cond)

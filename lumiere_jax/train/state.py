"""The explicit train state pytree and its construction from an NNX model."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lumiere_jax.settings import OptimSettings


@flax.struct.dataclass
class TrainState:
    """Everything a train step reads and writes; `frozen` holds the weights that never train."""
    step: jax.Array
    params: Any
    frozen: Any
    ema_params: Any
    opt_state: Any
    rng: jax.Array


def learning_rate_schedule(optim: OptimSettings) -> optax.Schedule:
    """Linear warmup to the peak rate, then cosine decay to end_lr_fraction of it."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=optim.learning_rate, warmup_steps=optim.warmup_steps,
        decay_steps=optim.total_steps, end_value=optim.learning_rate * optim.end_lr_fraction)


def make_optimizer(optim: OptimSettings) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on the schedule."""
    return optax.chain(
        optax.clip_by_global_norm(optim.clip_norm),
        optax.adamw(learning_rate_schedule(optim), b1=optim.b1, b2=optim.b2,
                    weight_decay=optim.weight_decay),
    )


def split_model(model: nnx.Module, trainable: nnx.filterlib.Filter = nnx.Param):
    """(graphdef, trainable params, everything else) of an NNX model."""
    graphdef, params, frozen = nnx.split(model, trainable, ...)
    return graphdef, params, frozen


def cast_floating(tree: Any, dtype) -> Any:
    """`tree` with every floating-point leaf cast to `dtype` (integer leaves, e.g. keys, kept)."""
    dtype = jnp.dtype(dtype)
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def create_train_state(model: nnx.Module, optimizer: optax.GradientTransformation, seed: int,
                       trainable: nnx.filterlib.Filter = nnx.Param, frozen_dtype=jnp.float32):
    """(graphdef, TrainState) with step 0; EMA starts as a copy of the parameters. The frozen
    weights are stored in `frozen_dtype`."""
    graphdef, params, frozen = split_model(model, trainable)
    frozen = cast_floating(frozen, frozen_dtype)
    params = jax.tree.map(jnp.asarray, params)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        frozen=frozen,
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=optimizer.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )
    return graphdef, state

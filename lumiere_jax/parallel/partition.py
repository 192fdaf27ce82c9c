"""Weight shardings: logical axis names -> mesh axes through one rules table, plus FSDP.

A weight's PartitionSpec comes from its logical names (`nn.sharding`) looked up in the rules
(a mesh axis is used once per weight: the first dimension that asks for it gets it; one that
does not divide its dimension is dropped). Then the weight's largest free dimension is split
over the weight-sharding axes (`names.WEIGHT_SHARD_AXES`: fsdp and time, those of size > 1 that
the rules did not use) together, or over fsdp alone when no dimension divides by both (the last
of equals; the weight stays replicated when none divides). Splitting over time too means a
clip's time shards, which hold the same weights, each keep only their part. Optimizer moments mirror
their parameters (they carry the same Variable metadata), so they get the same specs; scalars
are replicated.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax.names import WEIGHT_SHARD_AXES
from lumiere_jax.nn.sharding import logical_axes


def weight_spec(shape: tuple[int, ...], names: tuple[str | None, ...] | None,
                rules: Mapping[str, str | None], mesh: Mesh) -> P:
    """The PartitionSpec of one weight (see module doc)."""
    names = names if names is not None else (None,) * len(shape)
    if len(names) != len(shape):
        raise ValueError(f"{len(names)} logical names {names} for a weight of shape {shape}.")
    spec: list[str | None] = []
    for name, size in zip(names, shape):
        axis = rules.get(name) if name is not None else None
        usable = axis is not None and axis not in spec and size % mesh.shape[axis] == 0
        spec.append(axis if usable else None)
    group = tuple(axis for axis in WEIGHT_SHARD_AXES if mesh.shape.get(axis, 1) > 1 and axis not in spec)
    for axes in (group, group[:1]):
        split = math.prod(mesh.shape[axis] for axis in axes)
        free = [d for d, (axis, size) in enumerate(zip(spec, shape))
                if axis is None and size % split == 0]
        if axes and free:
            spec[max(reversed(free), key=lambda d: shape[d])] = axes if len(axes) > 1 else axes[0]
            break  # ties: the last
    return P(*spec)


def split_axes(spec: P) -> set[str]:
    """The mesh axes a PartitionSpec splits over."""
    return {axis for entry in spec if entry is not None
            for axis in (entry if isinstance(entry, tuple) else (entry,))}


def is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def state_shardings(tree: Any, mesh: Mesh, rules: Mapping[str, str | None]) -> Any:
    """NamedShardings with the structure of `tree` (a train state, params, optimizer state...)."""

    def sharding(x):
        if is_variable(x):
            value = x.get_value()
            return x.replace(NamedSharding(mesh, weight_spec(np.shape(value), logical_axes(x),
                                                             rules, mesh)))
        return NamedSharding(mesh, weight_spec(np.shape(x), None, rules, mesh))

    return jax.tree.map(sharding, tree, is_leaf=is_variable)


def place(tree: Any, shardings: Any) -> Any:
    """Puts host-identical arrays onto their (possibly multi-process) shardings."""

    def put(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, shardings)


def shard_train_state(state: Any, mesh: Mesh, rules: Mapping[str, str | None]) -> Any:
    """The train state placed on `mesh`: every process must pass the same values."""
    return place(state, state_shardings(state, mesh, rules))

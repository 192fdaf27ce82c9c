"""Logical axis names on parameters: what each weight dimension means, not where it lives.

Layers tag their weights here (`named_axes`); `lumiere_jax.parallel.partition` maps the names to
mesh axes through one rules table (`config.mesh.rules`). The names sit in the Variable metadata
under `logical_axes`, a key of our own: Flax's `out_sharding` key would make Flax shard a Variable
the moment it is created, which needs a mesh in scope; our weights are placed once, by the trainer.
"""
from __future__ import annotations

from flax import nnx

from lumiere_jax.names import CONV_IN, CONV_OUT, CONV_WINDOW, LOGICAL_AXES

METADATA_KEY = "logical_axes"


def check_names(names: tuple[str | None, ...]) -> tuple[str | None, ...]:
    unknown = [name for name in names if name is not None and name not in LOGICAL_AXES]
    if unknown:
        raise ValueError(f"Unknown logical axis name(s) {unknown}; known: {list(LOGICAL_AXES)}.")
    return tuple(names)


def name_variable(variable: nnx.Variable, *names: str | None) -> nnx.Variable:
    """Tags one Variable with a logical name per dimension (None: no name)."""
    if len(names) != variable.get_value().ndim:
        raise ValueError(f"{len(names)} logical names {names} for a weight of shape "
                         f"{variable.get_value().shape}.")
    variable.set_metadata(METADATA_KEY, check_names(names))
    return variable


def named_axes(layer: nnx.Module, *kernel_names: str | None) -> nnx.Module:
    """Tags a Linear/Conv/Embed/Norm layer's weights; returns the layer.

    Linear and Conv: `kernel` gets `kernel_names`, `bias` the last of them. Embed: `embedding`
    gets them. GroupNorm/RMSNorm/LayerNorm: `scale` and `bias` get them (one name).
    """
    if isinstance(layer, nnx.Embed):
        name_variable(layer.embedding, *kernel_names)
        return layer
    main = "kernel" if hasattr(layer, "kernel") else "scale"
    for attribute, names in ((main, kernel_names), ("bias", kernel_names[-1:])):
        variable = getattr(layer, attribute, None)
        if isinstance(variable, nnx.Variable):
            name_variable(variable, *names)
    return layer


def conv_axes(window_dims: int) -> tuple[str, ...]:
    """Logical names of a conv kernel (*window, in, out)."""
    return (CONV_WINDOW,) * window_dims + (CONV_IN, CONV_OUT)


def logical_axes(variable: nnx.Variable) -> tuple[str | None, ...] | None:
    """The names a Variable was tagged with, or None."""
    return variable.get_metadata().get(METADATA_KEY)

"""Helpers every config file shares: the config arg, the shipped weights, the mesh rules table."""
import os

from ml_collections.config_dict import placeholder

from lumiere_jax.names import LOGICAL_AXES

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "lumiere_jax", "weights")


def parse_arg(arg):
    """'variant=tiny,foo=bar' -> dict."""
    pairs = [p for p in (arg or "").split(",") if p]
    return dict(p.split("=", 1) for p in pairs)


def parse_variant(arg, variants) -> str:
    """The `variant=...` of a config arg (default "base"), refused unless in `variants`."""
    variant = parse_arg(arg).get("variant", "base")
    if variant not in variants:
        raise ValueError(f"Unknown variant {variant!r}; allowed: {variants}.")
    return variant


def shipped(name: str) -> str:
    """Path of a model shipped in lumiere_jax/weights."""
    return os.path.join(WEIGHTS, name)


def unset_mesh_rules() -> dict:
    """`config.mesh.rules` with every logical axis unset (replicated), each overridable."""
    return {name: placeholder(str) for name in LOGICAL_AXES}

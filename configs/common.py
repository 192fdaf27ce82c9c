"""Helpers every config file shares: the config arg, the shipped weights, the mesh rules table."""
import os

from ml_collections.config_dict import placeholder

from lumiere_jax.checkpoints.exported import read_exported_config

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


def inflate(arg, variants, shipped_backbone: str, image_config):
    """(variant, backbone dir, 2D config) for a video config that inflates a 2D export.

    `image_config(variant)` is the 2D stage's config. The base variant inflates the export named
    by `:backbone=DIR` (default `shipped_backbone`): the frozen backbone fixes the spatial model
    and the noise schedule its time embedding was trained on, so both are read from the
    export's own config into the returned 2D config. The tiny variant inflates a random 2D model
    and takes no backbone."""
    variant = parse_variant(arg, variants)
    backbone_dir = parse_arg(arg).get("backbone", shipped_backbone)
    if variant == "tiny" and backbone_dir != shipped_backbone:
        raise ValueError("variant=tiny inflates a random tiny backbone; backbone=... needs the "
                         "base variant.")
    config = image_config(variant)
    if variant == "base":
        backbone = read_exported_config(backbone_dir)
        config.model = backbone.model
        for key in ("schedule", "schedule_shift", "prediction"):
            config.diffusion[key] = backbone.diffusion[key]
    return variant, backbone_dir if variant == "base" else "", config

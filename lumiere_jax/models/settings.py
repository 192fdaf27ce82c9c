"""The typed `model` section of a config: the model kind and the configs of its parts.

`parse_model_config` is the one reader of `config.model`: the trainer, the text stage, the
checkpoint loaders and the pipeline all call it, and code below them takes `ModelSettings`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from lumiere_jax.models.conditional import ConditioningConfig
from lumiere_jax.models.sr import SSRConfig, check_ssr_config
from lumiere_jax.models.stunet import STUNetConfig
from lumiere_jax.models.t2i import check_text_width
from lumiere_jax.models.t5 import DecoderConfig
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.settings import ConfigError, as_dict, from_config

# kind -> the keys its `config.model` section may hold (besides `kind`).
MODEL_KEYS = {
    "t2i": ("text_encoder", "unet", "text_checkpoint"),
    "stunet": ("text_encoder", "unet", "temporal", "backbone"),
    "sr": ("text_encoder", "unet", "ssr", "text_checkpoint"),
    "ssr": ("text_encoder", "unet", "temporal", "ssr", "backbone"),
    "conditional_stunet": ("text_encoder", "unet", "temporal", "conditioning", "backbone"),
    "t5": ("text_encoder", "decoder"),
    "text_encoder": ("text_encoder",),
}
MODEL_KINDS = tuple(MODEL_KEYS)
SECTIONS = {"text_encoder": TextEncoderConfig, "unet": UNetConfig, "temporal": STUNetConfig,
            "ssr": SSRConfig, "decoder": DecoderConfig, "conditioning": ConditioningConfig}


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """A model kind with the configs of the parts it has (None: a part this kind lacks).

    `backbone` (STUNet: a T2I export; SSR: an SR export; conditional STUNet: a STUNet export) and `text_checkpoint` (T2I, SR) name
    exported checkpoints whose weights `checkpoints.pretrained` restores into the built model;
    "" keeps the random init.
    """
    kind: str
    text_encoder: TextEncoderConfig
    unet: UNetConfig | None = None
    temporal: STUNetConfig | None = None
    ssr: SSRConfig | None = None
    decoder: DecoderConfig | None = None
    conditioning: ConditioningConfig | None = None
    backbone: str = ""
    text_checkpoint: str = ""


def check_parts(settings: ModelSettings) -> None:
    """Refuses parts that do not fit together (ValueError)."""
    if settings.unet is not None:
        check_text_width(settings.text_encoder, settings.unet)
    if settings.temporal is not None:
        settings.temporal.resolve(settings.unet)
    if settings.ssr is not None:
        check_ssr_config(settings.ssr, settings.unet)


def parse_model_config(section: Any) -> ModelSettings:
    """`config.model` (ConfigDict or dict) -> ModelSettings; errors name the bad key."""
    values = as_dict(section)
    kind = values.get("kind", "t2i")
    if kind not in MODEL_KEYS:
        raise ConfigError(f"Unknown config.model.kind {kind!r}; allowed: {MODEL_KINDS}.")
    allowed = {"kind", *MODEL_KEYS[kind]}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in config.model (kind {kind!r}); allowed: "
                          f"{sorted(allowed)}.")
    parts = {name: from_config(cls, values.get(name, {}), f"model.{name}")
             for name, cls in SECTIONS.items() if name in allowed}
    paths = {name: str(values.get(name) or "") for name in ("backbone", "text_checkpoint")
             if name in allowed}
    settings = ModelSettings(kind=kind, **parts, **paths)
    try:
        check_parts(settings)
    except ValueError as error:
        raise ConfigError(f"Invalid config.model: {error}") from error
    return settings

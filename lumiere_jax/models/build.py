"""Builds models from the `model` section of a config."""
from __future__ import annotations

from flax import nnx

from lumiere_jax.models.ssr import SSRConfig, SuperResolution
from lumiere_jax.models.stunet import STUNet, STUNetConfig, load_backbone
from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig, load_text_encoder
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.settings import ConfigError, as_dict, from_config

MODEL_KINDS = ("t2i", "stunet", "ssr")


def model_section(model_config, allowed: set[str]) -> dict:
    """`config.model` as a dict; unknown keys are refused, naming the allowed ones."""
    values = as_dict(model_config)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in config.model; allowed: {sorted(allowed)}.")
    return values


def build_t2i(model_config, seed: int = 0) -> TextToImage:
    """TextToImage from `config.model` (keys: kind, text_encoder, unet, text_checkpoint).

    `text_checkpoint` is the exported pretrained text encoder (configs/t5_shapes.py) restored
    into `text_encoder`; "" keeps the random init (tests)."""
    values = model_section(model_config, {"kind", "text_encoder", "unet", "text_checkpoint"})
    text = from_config(TextEncoderConfig, values.get("text_encoder", {}), "model.text_encoder")
    unet = from_config(UNetConfig, values.get("unet", {}), "model.unet")
    model = TextToImage(text, unet, rngs=nnx.Rngs(seed))
    if values.get("text_checkpoint"):
        load_text_encoder(model.text_encoder, values["text_checkpoint"])
    return model


def build_stunet(model_config, seed: int = 0) -> STUNet:
    """STUNet from `config.model` (keys: kind, text_encoder, unet, temporal, backbone).

    `backbone` is the exported T2I checkpoint restored into `spatial`; "" keeps the random init.
    """
    values = model_section(model_config, {"kind", "text_encoder", "unet", "temporal", "backbone"})
    text = from_config(TextEncoderConfig, values.get("text_encoder", {}), "model.text_encoder")
    unet = from_config(UNetConfig, values.get("unet", {}), "model.unet")
    temporal = from_config(STUNetConfig, values.get("temporal", {}), "model.temporal")
    try:
        model = STUNet(text, unet, temporal, rngs=nnx.Rngs(seed))
    except ValueError as error:
        raise ConfigError(f"Invalid config.model: {error}") from error
    if values.get("backbone"):
        load_backbone(model, values["backbone"])
    return model


def build_ssr(model_config, seed: int = 0) -> SuperResolution:
    """SuperResolution from `config.model` (keys: kind, text_encoder, unet, temporal, ssr)."""
    values = model_section(model_config, {"kind", "text_encoder", "unet", "temporal", "ssr"})
    text = from_config(TextEncoderConfig, values.get("text_encoder", {}), "model.text_encoder")
    unet = from_config(UNetConfig, values.get("unet", {}), "model.unet")
    temporal = from_config(STUNetConfig, values.get("temporal", {}), "model.temporal")
    ssr = from_config(SSRConfig, values.get("ssr", {}), "model.ssr")
    try:
        return SuperResolution(text, unet, temporal, ssr, rngs=nnx.Rngs(seed))
    except ValueError as error:
        raise ConfigError(f"Invalid config.model: {error}") from error


def trainable_filter(model):
    """The weights a model's training stage updates (its kind's declared `trainable` filter)."""
    return model.trainable


def build_model(model_config, seed: int = 0):
    """Dispatches on `config.model.kind`."""
    kind = as_dict(model_config).get("kind", "t2i")
    if kind == "t2i":
        return build_t2i(model_config, seed)
    if kind == "stunet":
        return build_stunet(model_config, seed)
    if kind == "ssr":
        return build_ssr(model_config, seed)
    raise ConfigError(f"Unknown config.model.kind {kind!r}; allowed: {MODEL_KINDS}.")

"""Builds models from the `model` section of a config."""
from __future__ import annotations

from flax import nnx

from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.settings import ConfigError, _as_dict, from_config

MODEL_KINDS = ("t2i",)


def build_t2i(model_config, seed: int = 0) -> TextToImage:
    """TextToImage from `config.model` (keys: kind, text_encoder, unet)."""
    values = _as_dict(model_config)
    allowed = {"kind", "text_encoder", "unet"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in config.model; allowed: {sorted(allowed)}.")
    text = from_config(TextEncoderConfig, values.get("text_encoder", {}), "model.text_encoder")
    unet = from_config(UNetConfig, values.get("unet", {}), "model.unet")
    return TextToImage(text, unet, rngs=nnx.Rngs(seed))


def build_model(model_config, seed: int = 0):
    """Dispatches on `config.model.kind`."""
    kind = _as_dict(model_config).get("kind", "t2i")
    if kind == "t2i":
        return build_t2i(model_config, seed)
    raise ConfigError(f"Unknown config.model.kind {kind!r}; allowed: {MODEL_KINDS}.")

"""Builds a randomly initialised model from typed `ModelSettings` (no checkpoint is read here:
`checkpoints.pretrained` restores the pretrained parts)."""
from __future__ import annotations

from flax import nnx

from lumiere_jax.models.conditional import ConditionalSTUNet
from lumiere_jax.models.settings import ModelSettings
from lumiere_jax.models.sr import SuperResolution2D
from lumiere_jax.models.stunet import STUNet
from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.t5 import T5Pretrainer
from lumiere_jax.models.text_encoder import TextEncoder


def build_model(settings: ModelSettings, seed: int = 0) -> nnx.Module:
    """The model of `settings.kind` with its weights drawn from `seed`."""
    rngs = nnx.Rngs(seed)
    if settings.kind == "t2i":
        return TextToImage(settings.text_encoder, settings.unet, rngs=rngs)
    if settings.kind == "stunet":
        return STUNet(settings.text_encoder, settings.unet, settings.temporal, rngs=rngs)
    if settings.kind == "sr":
        return SuperResolution2D(settings.text_encoder, settings.unet, settings.ssr, rngs=rngs)
    if settings.kind == "ssr":
        return STUNet(settings.text_encoder, settings.unet, settings.temporal, rngs=rngs,
                      ssr=settings.ssr)
    if settings.kind == "conditional_stunet":
        return ConditionalSTUNet(settings.text_encoder, settings.unet, settings.temporal,
                                 settings.conditioning, rngs=rngs)
    if settings.kind == "t5":
        return T5Pretrainer(settings.text_encoder, settings.decoder, rngs=rngs)
    if settings.kind == "text_encoder":
        return TextEncoder(settings.text_encoder, rngs=rngs)
    raise ValueError(f"No model of kind {settings.kind!r}.")

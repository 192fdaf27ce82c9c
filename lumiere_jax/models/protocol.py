"""The one small protocol every model kind declares, so callers never tell kinds apart by probing."""
from __future__ import annotations

from typing import Any, ClassVar, Protocol

import jax


class DiffusionModel(Protocol):
    """What the trainer, the samplers and the pipeline use of a model (T2I, STUNet, SSR)."""

    trainable: ClassVar[Any]   # nnx filter of the weights its training stage updates
    is_video: ClassVar[bool]   # inputs are clips (B, T, H, W, C), not images (B, H, W, C)
    text_encoder: Any          # the frozen, pretrained text encoder

    def encode_text(self, tokens: jax.Array) -> dict:
        """tokens (B, L) -> the condition dict that `denoise` reads."""

    def condition_on(self, cond: dict, clean: jax.Array) -> dict:
        """Training: the condition plus whatever the model derives from the clean batch."""

    def denoise(self, x_t: jax.Array, t: jax.Array, cond: dict) -> jax.Array:
        """The model output (v or eps) for noisy inputs x_t at times t (B,)."""

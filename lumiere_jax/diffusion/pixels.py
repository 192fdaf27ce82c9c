"""Pixels and the model range: uint8 [0, 255] <-> float [-1, 1]."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def frames_to_model_range(frames):
    """uint8 pixels [0, 255] -> float32 in [-1, 1]."""
    return frames.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """Model range [-1, 1] -> uint8 pixels."""
    return np.asarray(jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8))

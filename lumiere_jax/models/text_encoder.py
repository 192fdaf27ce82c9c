"""A small T5-style text encoder: relative position bias, pre-RMSNorm, gated-GELU.

Its weights are `TextParam`s: the encoder is pretrained on text alone (`models.t5`, span
corruption) and then frozen, so every model that reads text trains everything but this type.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax.names import EMBED, HEADS, MLP, NORM, POSITION, VOCAB
from lumiere_jax.nn.attention import MultiHeadAttention
from lumiere_jax.nn.sharding import named_axes
from lumiere_jax.nn.variables import retype_params
from lumiere_jax.text import tokenizer


class TextParam(nnx.Param):
    """A weight of the text encoder: trained by text pretraining only, frozen everywhere else."""


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes of the text encoder."""
    width: int = 128
    num_layers: int = 3
    num_heads: int = 4
    mlp_ratio: int = 2
    max_length: int = 32
    num_buckets: int = 32
    max_distance: int = 64


def relative_position_buckets(length: int, num_buckets: int, max_distance: int,
                              key_length: int | None = None) -> np.ndarray:
    """T5's bidirectional bucketing of key-minus-query offsets: exact when near, log-spaced far."""
    offsets = np.arange(key_length or length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    side = (offsets > 0).astype(np.int32) * half
    distance = np.abs(offsets)
    exact = half // 2
    log_ratio = np.log(np.maximum(distance, 1) / exact) / np.log(max_distance / exact)
    far = exact + (log_ratio * (half - exact)).astype(np.int32)
    far = np.minimum(far, half - 1)
    return side + np.where(distance < exact, distance, far)


class EncoderLayer(nnx.Module):
    """Pre-norm self-attention and gated-GELU feed-forward, both residual."""

    def __init__(self, config: TextEncoderConfig, *, rngs: nnx.Rngs):
        width, hidden = config.width, config.width * config.mlp_ratio
        self.attention_norm = named_axes(nnx.RMSNorm(width, rngs=rngs), NORM)
        self.attention = MultiHeadAttention(width, config.num_heads, rngs=rngs)
        self.mlp_norm = named_axes(nnx.RMSNorm(width, rngs=rngs), NORM)
        self.gate = named_axes(nnx.Linear(width, hidden, use_bias=False, rngs=rngs), EMBED, MLP)
        self.up = named_axes(nnx.Linear(width, hidden, use_bias=False, rngs=rngs), EMBED, MLP)
        self.down = named_axes(nnx.Linear(hidden, width, use_bias=False, rngs=rngs), MLP, EMBED)

    def __call__(self, x, mask, bias):
        x = x + self.attention(self.attention_norm(x), context_mask=mask, bias=bias)
        h = self.mlp_norm(x)
        return x + self.down(jax.nn.gelu(self.gate(h)) * self.up(h))


class TextEncoder(nnx.Module):
    """Encodes token ids (B, L) into embeddings (B, L, width) and a padding mask (B, L)."""

    def __init__(self, config: TextEncoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed = named_axes(nnx.Embed(tokenizer.VOCAB_SIZE, config.width, rngs=rngs),
                                VOCAB, EMBED)
        self.position_bias = named_axes(nnx.Embed(config.num_buckets, config.num_heads, rngs=rngs),
                                        POSITION, HEADS)
        self.layers = nnx.List([EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = named_axes(nnx.RMSNorm(config.width, rngs=rngs), NORM)
        retype_params(self, TextParam)

    def __call__(self, tokens):
        """Token ids (B, L) -> (embeddings (B, L, width), padding mask (B, L))."""
        return self.encode_embeddings(self.embed(tokens), tokens != tokenizer.PAD_ID)

    def encode_embeddings(self, x, mask):
        """The layers over input embeddings x (B, L, width) with padding mask (B, L)."""
        length = x.shape[1]
        if length > self.config.max_length:
            raise ValueError(f"Token length {length} exceeds the encoder's max_length "
                             f"{self.config.max_length}.")
        buckets = relative_position_buckets(length, self.config.num_buckets, self.config.max_distance)
        bias = jnp.transpose(self.position_bias(jnp.asarray(buckets)), (2, 0, 1))[None]
        for layer in self.layers:
            x = layer(x, mask, bias)
        return self.final_norm(x), mask


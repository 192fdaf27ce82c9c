"""T5-style text pretraining: the text encoder plus a small decoder, trained with span corruption
and paraphrase matching.

Only the encoder is kept: exported, then frozen inside every text-to-image and video model. The
decoder reads the encoder's features through cross-attention and writes the masked-out spans;
a contrastive head matches each caption with a paraphrase of it against the rest of the batch.
So every word of a caption (motion and speed words too) is encoded before any image is seen, and
synonyms ("ball", "circle") land together.

Sentinels (the placeholders of masked spans) get ids from `tokenizer.VOCAB_SIZE` on, embedded by
a table of this model's own, so the encoder's vocabulary (what the image models read) is
unchanged.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.names import EMBED, HEADS, MLP, NORM, POSITION, VOCAB
from lumiere_jax.text import tokenizer
from lumiere_jax.models.text_encoder import (TextEncoder, TextEncoderConfig, TextParam,
                                             relative_position_buckets)
from lumiere_jax.nn.attention import MultiHeadAttention
from lumiere_jax.nn.sharding import named_axes


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """The span decoder (discarded after pretraining) and the sentinel count."""
    num_layers: int = 2
    num_sentinels: int = 8
    max_target_length: int = 24

    def __post_init__(self):
        if self.num_layers < 1 or self.num_sentinels < 1 or self.max_target_length < 2:
            raise ValueError(f"need num_layers >= 1, num_sentinels >= 1 and max_target_length >= 2, "
                             f"got {self}.")

    @property
    def output_vocab(self) -> int:
        return tokenizer.VOCAB_SIZE + self.num_sentinels


class DecoderLayer(nnx.Module):
    """Pre-norm causal self-attention, cross-attention to the encoder, gated-GELU; all residual."""

    def __init__(self, config: TextEncoderConfig, *, rngs: nnx.Rngs):
        width, hidden = config.width, config.width * config.mlp_ratio
        norm = lambda: named_axes(nnx.RMSNorm(width, rngs=rngs), NORM)
        self.self_norm, self.cross_norm, self.mlp_norm = norm(), norm(), norm()
        self.self_attention = MultiHeadAttention(width, config.num_heads, rngs=rngs)
        self.cross_attention = MultiHeadAttention(width, config.num_heads, rngs=rngs)
        self.gate = named_axes(nnx.Linear(width, hidden, use_bias=False, rngs=rngs), EMBED, MLP)
        self.up = named_axes(nnx.Linear(width, hidden, use_bias=False, rngs=rngs), EMBED, MLP)
        self.down = named_axes(nnx.Linear(hidden, width, use_bias=False, rngs=rngs), MLP, EMBED)

    def __call__(self, y, bias, encoded, encoded_mask):
        y = y + self.self_attention(self.self_norm(y), bias=bias, is_causal=True)
        y = y + self.cross_attention(self.cross_norm(y), encoded, encoded_mask)
        h = self.mlp_norm(y)
        return y + self.down(jax.nn.gelu(self.gate(h)) * self.up(h))


class T5Pretrainer(nnx.Module):
    """Encoder (kept) + decoder (discarded): logits of the target spans given corrupted text."""

    trainable = nnx.Param  # text pretraining trains the encoder (its TextParams) too

    def __init__(self, text_config: TextEncoderConfig, decoder_config: DecoderConfig, *,
                 rngs: nnx.Rngs):
        width = text_config.width
        self.decoder_config = decoder_config
        self.text_encoder = TextEncoder(text_config, rngs=rngs)
        # Not TextParam: these leave with the decoder.
        self.sentinel_embed = named_axes(nnx.Embed(decoder_config.num_sentinels, width, rngs=rngs),
                                         VOCAB, EMBED)
        self.decoder_embed = named_axes(nnx.Embed(decoder_config.output_vocab, width, rngs=rngs),
                                        VOCAB, EMBED)
        self.decoder_position_bias = named_axes(
            nnx.Embed(text_config.num_buckets, text_config.num_heads, rngs=rngs), POSITION, HEADS)
        self.decoder = nnx.List([DecoderLayer(text_config, rngs=rngs)
                                 for _ in range(decoder_config.num_layers)])
        self.decoder_norm = named_axes(nnx.RMSNorm(width, rngs=rngs), NORM)
        self.lm_head = named_axes(nnx.Linear(width, decoder_config.output_vocab, use_bias=False,
                                             rngs=rngs), EMBED, VOCAB)
        self.paraphrase_head = named_axes(nnx.Linear(width, width, rngs=rngs), EMBED, MLP)

    def sentence_embedding(self, tokens):
        """Unit-norm embedding (B, width) of clean captions: the masked mean of the encoder's
        features through a projection (discarded with the decoder), for paraphrase matching."""
        features, mask = self.text_encoder(tokens)
        weights = mask[..., None].astype(features.dtype)
        pooled = jnp.sum(features * weights, 1) / jnp.maximum(jnp.sum(weights, 1), 1.0)
        projected = self.paraphrase_head(pooled)
        return projected / jnp.linalg.norm(projected, axis=-1, keepdims=True).clip(1e-6)

    def encode(self, inputs):
        """Corrupted ids (B, L) (sentinels >= VOCAB_SIZE) -> (features (B, L, C), mask (B, L))."""
        is_sentinel = inputs >= tokenizer.VOCAB_SIZE
        words = self.text_encoder.embed(jnp.where(is_sentinel, tokenizer.PAD_ID, inputs))
        sentinels = self.sentinel_embed(jnp.maximum(inputs - tokenizer.VOCAB_SIZE, 0))
        x = jnp.where(is_sentinel[..., None], sentinels, words)
        return self.text_encoder.encode_embeddings(x, inputs != tokenizer.PAD_ID)

    def __call__(self, inputs, decoder_inputs):
        """inputs (B, L), decoder_inputs (B, Lt) (targets shifted right) -> logits (B, Lt, V)."""
        encoded, mask = self.encode(inputs)
        length = decoder_inputs.shape[1]
        config = self.text_encoder.config
        buckets = relative_position_buckets(length, config.num_buckets, config.max_distance)
        bias = jnp.transpose(self.decoder_position_bias(jnp.asarray(buckets)), (2, 0, 1))[None]
        y = self.decoder_embed(decoder_inputs)
        for layer in self.decoder:
            y = layer(y, bias, encoded, mask)
        return self.lm_head(self.decoder_norm(y))


def is_text_encoder_weight(path, variable) -> bool:
    """Filter of the weights an export keeps (the encoder's)."""
    del path
    return isinstance(variable, TextParam)

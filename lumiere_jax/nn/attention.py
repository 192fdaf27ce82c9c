"""Multi-head attention on top of `jax.nn.dot_product_attention`."""
from __future__ import annotations

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.names import EMBED, HEADS
from lumiere_jax.nn.resblock import group_norm
from lumiere_jax.nn.sharding import name_variable, named_axes
from lumiere_jax.settings import ATTENTION_KERNELS


class MultiHeadAttention(nnx.Module):
    """Self- or cross-attention over sequences (B, L, C); keys may carry a padding mask."""

    def __init__(self, features: int, num_heads: int, *, context_features: int | None = None,
                 zero_init_output: bool = False, rngs: nnx.Rngs):
        if features % num_heads:
            raise ValueError(f"features={features} is not divisible by num_heads={num_heads}.")
        context_features = context_features or features
        self.num_heads = num_heads
        projection = lambda width: named_axes(
            nnx.Linear(width, features, use_bias=False, rngs=rngs), EMBED, HEADS)
        self.query = projection(features)
        self.key = projection(context_features)
        self.value = projection(context_features)
        out_init = nnx.initializers.zeros_init() if zero_init_output else nnx.initializers.lecun_normal()
        self.out = named_axes(nnx.Linear(features, features, kernel_init=out_init, rngs=rngs),
                              HEADS, EMBED)
        self.implementation = None  # `jax.nn.dot_product_attention`'s: None lets jax choose

    def set_kernel(self, kernel: str) -> None:
        """Which kernel computes the attention in later calls, one of `ATTENTION_KERNELS`:
        "auto" (jax picks: cuDNN's fused kernel on a GPU where shapes and dtypes allow, XLA
        otherwise), "xla" or "cudnn"."""
        if kernel not in ATTENTION_KERNELS:
            raise ValueError(f"Attention kernel {kernel!r}: use one of {ATTENTION_KERNELS}.")
        self.implementation = None if kernel == "auto" else kernel

    def __call__(self, x, context=None, context_mask=None, bias=None, is_causal: bool = False):
        """x: (B, Lq, C); context: (B, Lk, Cc) or None for self-attention; context_mask: (B, Lk)
        bool; is_causal: each query sees only keys at or before its position."""
        context = x if context is None else context
        split = lambda y: einops.rearrange(y, "b l (n d) -> b l n d", n=self.num_heads)
        q, k, v = split(self.query(x)), split(self.key(context)), split(self.value(context))
        mask = None if context_mask is None else context_mask[:, None, None, :]
        out = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, is_causal=is_causal,
                                           implementation=self.implementation)
        return self.out(einops.rearrange(out, "b l n d -> b l (n d)"))


class AttentionPool(nnx.Module):
    """Pools a masked token sequence (B, L, C) into one vector (B, C) with a learned query."""

    def __init__(self, features: int, num_heads: int, *, rngs: nnx.Rngs):
        self.query = name_variable(
            nnx.Param(jax.random.normal(rngs.params(), (1, 1, features)) * 0.02), None, None, EMBED)
        self.attention = MultiHeadAttention(features, num_heads, rngs=rngs)

    def __call__(self, tokens, mask):
        masked_mean = jnp.sum(tokens * mask[..., None], axis=1, keepdims=True) / jnp.maximum(
            jnp.sum(mask, axis=1, keepdims=True)[..., None], 1)
        query = masked_mean + self.query.value
        return self.attention(query, tokens, mask)[:, 0]


class SpatialAttentionBlock(nnx.Module):
    """Residual self-attention over pixels, then residual cross-attention to text tokens."""

    def __init__(self, features: int, num_heads: int, context_features: int, *, rngs: nnx.Rngs):
        self.norm_self = group_norm(features, rngs)
        self.self_attention = MultiHeadAttention(features, num_heads, zero_init_output=True, rngs=rngs)
        self.norm_cross = group_norm(features, rngs)
        self.cross_attention = MultiHeadAttention(
            features, num_heads, context_features=context_features, zero_init_output=True, rngs=rngs)

    def __call__(self, x, context, context_mask):
        """x: (N, H, W, C); context: (N, L, Cc); context_mask: (N, L)."""
        _, height, width, _ = x.shape
        flat = lambda y: einops.rearrange(y, "n h w c -> n (h w) c")
        unflat = lambda y: einops.rearrange(y, "n (h w) c -> n h w c", h=height, w=width)
        x = x + unflat(self.self_attention(flat(self.norm_self(x))))
        return x + unflat(self.cross_attention(flat(self.norm_cross(x)), context, context_mask))

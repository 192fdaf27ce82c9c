"""Residual blocks with scale-shift conditioning, and spatial resampling layers."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.names import EMBED, MLP, NORM
from lumiere_jax.nn.sharding import conv_axes, named_axes


def group_norm(features: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    """GroupNorm with up to 32 groups that divide `features`."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if features % g == 0 and g <= features)
    return named_axes(nnx.GroupNorm(features, num_groups=groups, rngs=rngs), NORM)


class ResBlock(nnx.Module):
    """norm-act-conv, then norm with (1 + scale, shift) from the embedding, act-conv; residual.

    Works on images (N, H, W, C); the last conv is zero-initialised so a new block starts as
    (a projection of) the identity.
    """

    def __init__(self, in_features: int, out_features: int, emb_features: int, *, rngs: nnx.Rngs):
        self.norm_in = group_norm(in_features, rngs)
        self.conv_in = named_axes(nnx.Conv(in_features, out_features, (3, 3), rngs=rngs),
                                  *conv_axes(2))
        self.emb_proj = named_axes(nnx.Linear(emb_features, 2 * out_features, rngs=rngs),
                                   EMBED, MLP)
        self.norm_out = group_norm(out_features, rngs)
        self.conv_out = named_axes(nnx.Conv(out_features, out_features, (3, 3),
                                            kernel_init=nnx.initializers.zeros_init(), rngs=rngs),
                                   *conv_axes(2))
        self.skip = (named_axes(nnx.Conv(in_features, out_features, (1, 1), rngs=rngs), *conv_axes(2))
                     if in_features != out_features else None)

    def __call__(self, x, emb):
        h = self.conv_in(jax.nn.silu(self.norm_in(x)))
        scale, shift = jnp.split(self.emb_proj(jax.nn.silu(emb)), 2, axis=-1)
        h = self.norm_out(h) * (1 + scale[:, None, None, :]) + shift[:, None, None, :]
        h = self.conv_out(jax.nn.silu(h))
        return h + (x if self.skip is None else self.skip(x))


class Downsample(nnx.Module):
    """Halves height and width with a stride-2 3x3 conv."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.conv = named_axes(nnx.Conv(features, features, (3, 3), strides=(2, 2), rngs=rngs),
                               *conv_axes(2))

    def __call__(self, x):
        return self.conv(x)


class Upsample(nnx.Module):
    """Doubles height and width: nearest-neighbour, then a 3x3 conv."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.conv = named_axes(nnx.Conv(features, features, (3, 3), rngs=rngs), *conv_axes(2))

    def __call__(self, x):
        return self.conv(jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))

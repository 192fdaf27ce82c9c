"""Temporal layers that inflate a 2D U-Net into a space-time U-Net (STUNet).

Every weight here is a `TemporalParam`, so training selects exactly these with the filter
`TemporalParam` while the pretrained spatial `nnx.Param`s stay frozen. Layers take videos
(B, T, H, W, C); layers that mix frames fold space into batch. Each layer is the identity at
initialisation (zero-initialised output projections, identity-initialised resampling convs).

Layers take a `FrameSharding` (default: unsharded) and hand their frame-mixing part to its
`map_frames`, so the same code runs on whole clips and on clips split over devices in time.
"""
from __future__ import annotations

from typing import TypeVar

import chex
import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.names import CONV_IN, CONV_OUT, EMBED, HEADS, MLP, POSITION
from lumiere_jax.nn.attention import AttentionPool, MultiHeadAttention
from lumiere_jax.nn.frame_sharding import UNSHARDED, FrameSharding
from lumiere_jax.nn.resblock import group_norm
from lumiere_jax.nn.sharding import conv_axes, name_variable, named_axes
from lumiere_jax.nn.variables import retype_params

ModuleT = TypeVar("ModuleT", bound=nnx.Module)


class TemporalParam(nnx.Param):
    """A weight of a temporal layer: the parameters the video stage trains."""


def as_temporal(module: ModuleT) -> ModuleT:
    """Retypes every plain `nnx.Param` inside `module` as `TemporalParam` (metadata kept)."""
    return retype_params(module, TemporalParam)


def identity_kernel_init(key, shape, dtype=jnp.float32):
    """1D conv kernel (K, C, C) whose centre tap is the identity: the conv starts as a no-op."""
    del key
    size, in_features, out_features = shape
    if size % 2 == 0 or in_features != out_features:
        raise ValueError(f"An identity conv kernel needs an odd size and C_in == C_out, got {shape}.")
    return jnp.zeros(shape, dtype).at[size // 2].set(jnp.eye(in_features, dtype=dtype))


def temporal_conv(features: int, kernel_size: int, rngs: nnx.Rngs,
                  out_features: int | None = None, **kwargs) -> nnx.Conv:
    """A 1D conv over time on (N, T, C) without padding: `conv_over_time` supplies the frames
    beyond each end (zeros at the clip's ends, which makes it a 'SAME' conv over the clip)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"Temporal conv kernels must have an odd size, got {kernel_size}.")
    return named_axes(nnx.Conv(features, out_features or features, (kernel_size,),
                               padding="VALID", rngs=rngs, **kwargs), *conv_axes(1))


def space_time_conv(features: int, kernel_size: int, spatial_kernel: int, rngs: nnx.Rngs,
                    out_features: int | None = None, **kwargs) -> nnx.Conv:
    """A 3D conv over (T, H, W) on (B, T, H, W, C), 'SAME' in space and without padding in time
    (`conv_over_time` supplies the frames beyond each end): it can move content across pixels
    from frame to frame, which a per-pixel 1D conv over time cannot."""
    if kernel_size < 1 or kernel_size % 2 == 0 or spatial_kernel < 1 or spatial_kernel % 2 == 0:
        raise ValueError(f"Space-time conv kernels must have odd sizes, got {kernel_size} in "
                         f"time and {spatial_kernel} in space.")
    pad = spatial_kernel // 2
    return named_axes(nnx.Conv(features, out_features or features,
                               (kernel_size, spatial_kernel, spatial_kernel),
                               padding=((0, 0), (pad, pad), (pad, pad)), rngs=rngs, **kwargs),
                      *conv_axes(3))


def over_time(layer, video):
    """Applies a sequence layer (N, T, C) -> (N, T', C) to every pixel of a video (B, T, H, W, C)."""
    batch, _, height, width, _ = video.shape
    sequences = layer(einops.rearrange(video, "b t h w c -> (b h w) t c"))
    return einops.rearrange(sequences, "(b h w) t c -> b t h w c", b=batch, h=height, w=width)


def conv_over_time(conv: nnx.Conv, frames, frame_sharding: FrameSharding):
    """A `temporal_conv` (or `space_time_conv`) on frames (B, t, H, W, C) (a block of frames
    inside `map_frames`): pads with the neighbouring frames (zeros at the clip's ends), then
    convolves -> (B, t, H, W, C)."""
    frames = frame_sharding.with_halo(frames, conv.kernel_size[0] // 2)
    return over_time(conv, frames) if len(conv.kernel_size) == 1 else conv(frames)


def position_features(frames: int, height: int, width: int, num_frequencies: int):
    """Fourier features of every (frame, row, column)'s place in its clip -> (T, H, W, 6F).

    Coordinates are normalised to [-1, 1) by the level's own size (frame i of T at 2i/T - 1,
    pixel j of H at its centre), so a frame of a time-halved level keeps the place in the clip
    of the input frame it stands for, and one set of weights serves every level and size."""
    if num_frequencies < 1:
        raise ValueError(f"Position features need >= 1 frequency, got {num_frequencies}.")
    axes = (2 * jnp.arange(frames) / frames - 1, (2 * jnp.arange(height) + 1) / height - 1,
            (2 * jnp.arange(width) + 1) / width - 1)
    grid = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)           # (T, H, W, 3)
    angles = grid[..., None] * (jnp.pi * 2.0 ** jnp.arange(num_frequencies))  # (T, H, W, 3, F)
    features = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return einops.rearrange(features, "t h w a f -> t h w (a f)")


class SpaceTimePosition(nnx.Module):
    """Where each (frame, pixel) of a video is in its clip, as features added to a temporal
    layer's normalised input: the temporal layers' only view of absolute place and time. The
    layers it feeds are zero-initialised at the output, so it leaves them the identity at init."""

    def __init__(self, features: int, num_frequencies: int = 4, *, rngs: nnx.Rngs):
        self.num_frequencies = num_frequencies
        self.proj = named_axes(nnx.Linear(6 * num_frequencies, features, rngs=rngs),
                               POSITION, CONV_OUT)
        as_temporal(self)

    def __call__(self, video):
        """video: (B, T, H, W, C) -> its position features (1, T, H, W, C)."""
        _, frames, height, width, _ = video.shape
        return self.proj(position_features(frames, height, width, self.num_frequencies))[None]


def add_position(position: SpaceTimePosition | None, video):
    """`video` plus its position features (unchanged when the layer has none)."""
    return video if position is None else video + position(video)


class TemporalConvBlock(nnx.Module):
    """Residual temporal half of a (2+1)D conv: norm, 1D conv over time, scale-shift from the
    per-video conditioning embedding, activation, zero-initialised projection added back.
    With spatial_kernel > 1 the conv also spans space (`space_time_conv`); with position the
    conv's input also holds every (frame, pixel)'s place in the clip (`SpaceTimePosition`).
    With gate the conv gives twice the channels and the activated, conditioned half is
    multiplied by the other (a GLU), so the product of what the text and the place say with
    what the frame holds is one layer away (it did not speed up learning the direction word:
    docs/training.md section 8)."""

    def __init__(self, features: int, emb_features: int, kernel_size: int = 3, *,
                 spatial_kernel: int = 1, position: bool = False, gate: bool = False,
                 rngs: nnx.Rngs):
        self.norm = group_norm(features, rngs)
        self.position = SpaceTimePosition(features, rngs=rngs) if position else None
        self.gate = gate
        out_features = 2 * features if gate else features
        self.conv = (temporal_conv(features, kernel_size, rngs, out_features)
                     if spatial_kernel == 1 else
                     space_time_conv(features, kernel_size, spatial_kernel, rngs, out_features))
        self.emb_proj = named_axes(nnx.Linear(emb_features, 2 * features, rngs=rngs), EMBED, MLP)
        self.proj = named_axes(nnx.Linear(features, features,
                                          kernel_init=nnx.initializers.zeros_init(), rngs=rngs),
                               CONV_IN, CONV_OUT)
        as_temporal(self)

    def __call__(self, video, emb, frame_sharding: FrameSharding = UNSHARDED):
        """video: (B, T, H, W, C); emb: (B, E)."""
        chex.assert_rank(video, 5)
        chex.assert_equal_shape_prefix([video, emb], 1)
        h = frame_sharding.map_frames(
            lambda frames, conv: conv_over_time(conv, frames, frame_sharding),
            add_position(self.position, self.norm(video)), self.conv)
        gate = None
        if self.gate:
            h, gate = jnp.split(h, 2, axis=-1)
        scale, shift = jnp.split(self.emb_proj(jax.nn.silu(emb)), 2, axis=-1)
        per_video = lambda y: einops.rearrange(y, "b c -> b 1 1 1 c")
        h = jax.nn.silu(h * (1 + per_video(scale)) + per_video(shift))
        return video + self.proj(h if gate is None else h * gate)


class TemporalTextEmbedding(nnx.Module):
    """The temporal layers' own reading of the text: an attention pool of the (frozen) token
    features, projected to the conditioning width by a zero-initialised linear layer."""

    def __init__(self, context_features: int, emb_features: int, num_heads: int, *,
                 rngs: nnx.Rngs):
        self.pool = AttentionPool(context_features, num_heads, rngs=rngs)
        self.proj = named_axes(nnx.Linear(context_features, emb_features,
                                          kernel_init=nnx.initializers.zeros_init(), rngs=rngs),
                               EMBED, MLP)
        as_temporal(self)

    def __call__(self, context, context_mask):
        """context: (B, L, Cc); context_mask: (B, L) -> (B, emb_features)."""
        return self.proj(self.pool(context, context_mask))


class TemporalPositionBias(nnx.Module):
    """Learned per-head bias on the frame offset (key - query), clipped to +-max_distance."""

    def __init__(self, num_heads: int, max_distance: int = 32):
        self.max_distance = max_distance
        self.table = name_variable(TemporalParam(jnp.zeros((2 * max_distance + 1, num_heads))),
                                   POSITION, HEADS)

    def __call__(self, length: int):
        """-> (1, heads, length, length), broadcastable over the batch of pixels."""
        offsets = jnp.arange(length)[None, :] - jnp.arange(length)[:, None]
        index = jnp.clip(offsets, -self.max_distance, self.max_distance) + self.max_distance
        return einops.rearrange(self.table[...][index], "q k n -> 1 n q k")


class SpaceTimePositionBias(nnx.Module):
    """Learned per-head bias on the offset (key - query) in frames, rows and columns: the sum of
    one table per axis, each clipped (frames to +-max_distance, pixels to +-max_pixels)."""

    def __init__(self, num_heads: int, max_distance: int = 32, max_pixels: int = 16):
        self.limits = (max_distance, max_pixels, max_pixels)
        self.tables = nnx.List([
            name_variable(TemporalParam(jnp.zeros((2 * limit + 1, num_heads))), POSITION, HEADS)
            for limit in self.limits])

    def __call__(self, query_frames, key_frames, height: int, width: int):
        """Bias of the (frame, row, column) queries of frames `query_frames` against the keys of
        frames `key_frames` (both 1D index arrays), flattened in (t h w) order
        -> (1, heads, Lq, Lk)."""
        def grid(frames):
            t, y, x = jnp.meshgrid(frames, jnp.arange(height), jnp.arange(width), indexing="ij")
            return t.ravel(), y.ravel(), x.ravel()

        bias = 0.0
        for table, limit, q, k in zip(self.tables, self.limits, grid(query_frames),
                                      grid(key_frames)):
            index = jnp.clip(k[None, :] - q[:, None], -limit, limit) + limit
            bias = bias + table[...][index]
        return einops.rearrange(bias, "q k n -> 1 n q k")


class TemporalAttentionBlock(nnx.Module):
    """Residual self-attention over time, then residual cross-attention from every (pixel,
    frame) to the text tokens; both outputs zero-initialised. span "time" (the paper's) attends
    per pixel over the frames; "space_time" attends over every (frame, pixel) of the clip, so
    it can carry an object from one place to another between frames."""

    def __init__(self, features: int, num_heads: int, context_features: int, *,
                 max_distance: int = 32, span: str = "time", position: bool = False,
                 rngs: nnx.Rngs):
        if span not in ATTENTION_SPANS:
            raise ValueError(f"Temporal attention span {span!r}: use one of {ATTENTION_SPANS}.")
        self.span = span
        self.norm_self = group_norm(features, rngs)
        self.self_attention = MultiHeadAttention(features, num_heads, zero_init_output=True,
                                                 rngs=rngs)
        position_bias, _ = SPAN_PARTS[span]
        self.position_bias = position_bias(num_heads, max_distance)
        self.norm_cross = group_norm(features, rngs)
        # With position, the queries of both attentions know their (frame, pixel) in the clip.
        self.position = SpaceTimePosition(features, rngs=rngs) if position else None
        self.cross_attention = MultiHeadAttention(
            features, num_heads, context_features=context_features, zero_init_output=True,
            rngs=rngs)
        self.chunk = 0
        as_temporal(self)

    def set_chunk(self, sequences: int) -> None:
        """Self-attention over at most `sequences` pixels at a time in later calls (0: all)."""
        if sequences < 0:
            raise ValueError(f"A chunk of {sequences} sequences: use >= 1, or 0 for no chunking.")
        self.chunk = sequences

    def __call__(self, video, context, context_mask, frame_sharding: FrameSharding = UNSHARDED):
        """video: (B, T, H, W, C); context: (B, L, Cc); context_mask: (B, L)."""
        chex.assert_rank(video, 5)
        chex.assert_equal_shape_prefix([video, context, context_mask], 1)
        _, attend = SPAN_PARTS[self.span]
        video = video + frame_sharding.map_frames(
            lambda block, attention, bias: attend(attention, bias, block, frame_sharding,
                                                  self.chunk),
            add_position(self.position, self.norm_self(video)), self.self_attention,
            self.position_bias)
        return video + attend_to_text(self.cross_attention,
                                      add_position(self.position, self.norm_cross(video)),
                                      context, context_mask)


def attend_to_text(attention: MultiHeadAttention, video, context, context_mask):
    """Cross-attention from every (frame, pixel) of video (B, T, H, W, C) to the text tokens.
    Queries are independent, so all of a video's queries share one sequence and the text is
    not repeated per pixel."""
    _, frames, height, width, _ = video.shape
    queries = einops.rearrange(video, "b t h w c -> b (t h w) c")
    attended = attention(queries, context, context_mask)
    return einops.rearrange(attended, "b (t h w) c -> b t h w c", t=frames, h=height, w=width)


class TemporalTextAttention(nnx.Module):
    """Residual cross-attention from every (frame, pixel) to the text tokens, zero-initialised,
    for levels finer than the coarsest. With position its queries know their place in the
    clip, so it can paint what a token says where the motion word puts it at each frame."""

    def __init__(self, features: int, num_heads: int, context_features: int, *,
                 position: bool = False, rngs: nnx.Rngs):
        self.norm = group_norm(features, rngs)
        self.position = SpaceTimePosition(features, rngs=rngs) if position else None
        self.attention = MultiHeadAttention(features, num_heads, context_features=context_features,
                                            zero_init_output=True, rngs=rngs)
        as_temporal(self)

    def __call__(self, video, context, context_mask):
        """video: (B, T, H, W, C); context: (B, L, Cc); context_mask: (B, L)."""
        chex.assert_rank(video, 5)
        chex.assert_equal_shape_prefix([video, context, context_mask], 1)
        return video + attend_to_text(self.attention, add_position(self.position, self.norm(video)),
                                      context, context_mask)


def attend_in_chunks(attention: MultiHeadAttention, queries, keys, bias, chunk: int = 0):
    """Self-attention of query sequences (N, Lq, C) to key sequences (N, Lk, C); chunk > 0
    attends `chunk` sequences at a time (`jax.lax.map`), bounding the memory of the scores."""
    if 0 < chunk < queries.shape[0]:
        one = lambda pair: attention(pair[0][None], pair[1][None], bias=bias)[0]
        return jax.lax.map(one, (queries, keys), batch_size=chunk)
    return attention(queries, keys, bias=bias)


def attend_over_time(attention: MultiHeadAttention, position_bias: TemporalPositionBias, frames,
                     frame_sharding: FrameSharding, chunk: int = 0):
    """Per-pixel self-attention of a block of frames (B, t, H, W, C) (inside `map_frames`): its
    queries attend to every frame of the clip (gathered), with the bias rows of its own frames.
    chunk > 0 attends `chunk` pixel sequences at a time (`jax.lax.map`), bounding the memory of
    the scores."""
    batch, block, height, width, _ = frames.shape
    clip = frame_sharding.all_frames(frames)
    bias = jax.lax.dynamic_slice_in_dim(position_bias(clip.shape[1]),
                                        frame_sharding.first_frame(block), block, axis=2)
    sequences = lambda video: einops.rearrange(video, "b t h w c -> (b h w) t c")
    attended = attend_in_chunks(attention, sequences(frames), sequences(clip), bias, chunk)
    return einops.rearrange(attended, "(b h w) t c -> b t h w c", b=batch, h=height, w=width)


def attend_over_space_time(attention: MultiHeadAttention, position_bias: SpaceTimePositionBias,
                           frames, frame_sharding: FrameSharding, chunk: int = 0):
    """Self-attention of a block of frames (B, t, H, W, C) (inside `map_frames`) over space and
    time: each (frame, pixel) query attends to every (frame, pixel) of the clip (gathered).
    chunk > 0 attends `chunk` videos at a time (`jax.lax.map`)."""
    _, block, height, width, _ = frames.shape
    clip = frame_sharding.all_frames(frames)
    first = frame_sharding.first_frame(block)
    bias = position_bias(first + jnp.arange(block), jnp.arange(clip.shape[1]), height, width)
    sequences = lambda video: einops.rearrange(video, "b t h w c -> b (t h w) c")
    attended = attend_in_chunks(attention, sequences(frames), sequences(clip), bias, chunk)
    return einops.rearrange(attended, "b (t h w) c -> b t h w c", t=block, h=height, w=width)


# Each attention span: its position bias and the function that attends over it.
SPAN_PARTS = {"time": (TemporalPositionBias, attend_over_time),
              "space_time": (SpaceTimePositionBias, attend_over_space_time)}
ATTENTION_SPANS = tuple(SPAN_PARTS)


class TemporalDownsample(nnx.Module):
    """Identity-initialised 1D temporal conv, then stride 2 in time (keeps frames 0, 2, 4, ...)."""

    def __init__(self, features: int, kernel_size: int = 3, *, rngs: nnx.Rngs):
        self.conv = temporal_conv(features, kernel_size, rngs, kernel_init=identity_kernel_init)
        as_temporal(self)

    def __call__(self, video, frame_sharding: FrameSharding = UNSHARDED):
        chex.assert_rank(video, 5)
        if video.shape[1] % (2 * frame_sharding.shards):
            raise ValueError(f"Temporal downsampling needs an even number of frames per time shard, "
                             f"got {video.shape[1]} frames over {frame_sharding.shards} shard(s).")
        # Every block starts on an even frame, so striding each block strides the clip.
        return frame_sharding.map_frames(
            lambda frames, conv: conv_over_time(conv, frames, frame_sharding)[:, ::2], video,
            self.conv)


class TemporalUpsample(nnx.Module):
    """Frame duplication (each frame twice), then an identity-initialised 1D temporal conv."""

    def __init__(self, features: int, kernel_size: int = 3, *, rngs: nnx.Rngs):
        self.conv = temporal_conv(features, kernel_size, rngs, kernel_init=identity_kernel_init)
        as_temporal(self)

    def __call__(self, video, frame_sharding: FrameSharding = UNSHARDED):
        chex.assert_rank(video, 5)
        return frame_sharding.map_frames(
            lambda frames, conv: conv_over_time(conv, jnp.repeat(frames, 2, axis=1), frame_sharding),
            video, self.conv)

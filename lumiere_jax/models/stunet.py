"""Space-Time U-Net (STUNet): a 2D model inflated with temporal layers.

The 2D model is the submodule `spatial` (its parameter paths are its checkpoint's, prefixed by
`spatial`): the T2I model (the base STUNet, kind "stunet"), or with `ssr=SSRConfig(...)` the 2D
super-resolution model (Lumiere's SSR, kind "ssr"). The STUNet does not copy the U-Net walk: it runs `spatial.unet` on the frames
folded into the batch and inserts its temporal layers through the walk's hook.

Placement, for a U-Net with levels 0..L-1 (L-1 is the coarsest):
  - `down.{l}.{i}`, `up.{l}.{i}` for l < L-1 (res-block sites): TemporalConvBlock;
  - `down.{L-1}.{i}`, `middle.{i}`, `up.{L-1}.{i}`: `temporal_attention_layers` TemporalAttentionBlocks
    (TemporalConvBlocks where that is 0, as in the SSR);
  - at the res-block sites of `text_attention_levels`, a TemporalTextAttention after the conv
    block (none by default, as in the paper);
  - `down.{l}.downsample` for l in temporal_down_levels: TemporalDownsample (frames halve);
  - `up.{l+1}.upsample` for the same l: TemporalUpsample (frames double).
Every skip saved on the way down therefore meets the same number of frames on the way up.

`shard_frames(FrameSharding(mesh))` splits clips over the mesh axis 'time' (context parallelism):
the temporal layers then exchange halos or gather frames (see `nn.frame_sharding`). The clip
must split into whole blocks of frames; a coarser level whose frames do not split (or that would
halve an odd block) runs gathered: every time shard holds all of its frames (`gathered_sites`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import chex
import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.models.sr import SSRConfig, SuperResolution2D
from lumiere_jax.models.t2i import TextToImage, image_shape
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNet2D, UNetConfig, identity_hook
from lumiere_jax.nn.frame_sharding import UNSHARDED, FrameSharding, split_problem
from lumiere_jax.nn.temporal import (ATTENTION_SPANS, TemporalAttentionBlock, TemporalConvBlock,
                                     TemporalDownsample, TemporalParam, TemporalTextAttention,
                                     TemporalTextEmbedding, TemporalUpsample)


def distinct_levels(name: str, levels) -> tuple[int, ...]:
    """`levels` as a sorted tuple of ints; refused if one repeats."""
    levels = tuple(sorted(int(level) for level in levels))
    if len(set(levels)) != len(levels):
        raise ValueError(f"{name} repeats a level: {levels}.")
    return levels


@dataclasses.dataclass(frozen=True)
class STUNetConfig:
    """The temporal layers added to the U-Net.

    temporal_down_levels: U-Net levels whose spatial downsampling is followed by a temporal one;
      None means every level that has a spatial downsampling.
    temporal_attention_layers: stacked temporal attention blocks at each coarsest-level site;
      0 puts temporal conv blocks there too (no attention anywhere).
    text_pool: the temporal conv blocks read the text through a trainable attention pool of the
      frozen token features of their own (added to the conditioning embedding through a
      zero-initialised projection); False: only the spatial U-Net's pooled text.
    temporal_conv_spatial_kernel: 1 gives the paper's per-pixel 1D temporal convs; an odd k > 1
      makes the temporal conv blocks' convs span k x k pixels too (3D), so they can carry an
      object from pixel to pixel between frames (more weights: k^2 times the conv's).
    temporal_attention_span: "time" (the paper's) attends per pixel over the frames;
      "space_time" attends over every (frame, pixel) of the coarsest level at once.
    space_time_position: every temporal layer's input also holds its (frame, pixel)'s place in
      the clip (`nn.temporal.SpaceTimePosition`). The paper's temporal layers see only relative
      time; an object's expected place at a given frame ("moving left": on the right early,
      on the left late) needs absolute place and time.
    temporal_conv_gate: the temporal conv blocks multiply their activated, conditioned half by
      a second, linear half of the conv (a GLU; `TemporalConvBlock`).
    text_attention_levels: U-Net levels whose temporal conv blocks are followed by residual
      cross-attention from every (frame, pixel) to the text tokens (`TemporalTextAttention`);
      the paper reads the tokens only at the coarsest level, through its attention blocks.
    """
    temporal_down_levels: tuple[int, ...] | None = None
    temporal_attention_layers: int = 1
    temporal_conv_kernel: int = 3
    num_heads: int = 4
    text_pool: bool = False
    temporal_conv_spatial_kernel: int = 1
    temporal_attention_span: str = "time"
    space_time_position: bool = False
    text_attention_levels: tuple[int, ...] = ()
    temporal_conv_gate: bool = False

    def __post_init__(self):
        for name in ("temporal_down_levels", "text_attention_levels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, distinct_levels(name, getattr(self, name)))
        if self.temporal_attention_layers < 0:
            raise ValueError(f"temporal_attention_layers must be >= 0, got "
                             f"{self.temporal_attention_layers}.")
        if self.temporal_conv_kernel < 1 or self.temporal_conv_kernel % 2 == 0:
            raise ValueError(f"temporal_conv_kernel must be odd and >= 1, got "
                             f"{self.temporal_conv_kernel}.")
        if self.temporal_conv_spatial_kernel < 1 or self.temporal_conv_spatial_kernel % 2 == 0:
            raise ValueError(f"temporal_conv_spatial_kernel must be odd and >= 1, got "
                             f"{self.temporal_conv_spatial_kernel}.")
        if self.num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {self.num_heads}.")
        if self.temporal_attention_span not in ATTENTION_SPANS:
            raise ValueError(f"temporal_attention_span must be one of {ATTENTION_SPANS}, got "
                             f"{self.temporal_attention_span!r}.")

    def resolve(self, unet: UNetConfig) -> "STUNetConfig":
        """This config with its defaults filled in from `unet`, checked against it."""
        with_downsample = tuple(range(len(unet.channel_mult) - 1))
        levels = with_downsample if self.temporal_down_levels is None else self.temporal_down_levels
        invalid = [level for level in levels if level not in with_downsample]
        if invalid:
            raise ValueError(
                f"temporal_down_levels {invalid} have no spatial downsampling to follow: with "
                f"channel_mult of length {len(unet.channel_mult)} the levels that downsample are "
                f"{list(with_downsample)}.")
        coarsest_width = unet.base_channels * unet.channel_mult[-1]
        if coarsest_width % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} does not divide the coarsest level's "
                             f"width {coarsest_width} (base_channels * channel_mult[-1]).")
        num_levels = len(unet.channel_mult)
        # The coarsest level's attention blocks already read the tokens.
        with_convs = range(num_levels - 1 if self.temporal_attention_layers else num_levels)
        invalid = [level for level in self.text_attention_levels if level not in with_convs]
        if invalid:
            raise ValueError(
                f"text_attention_levels {invalid} have no temporal conv blocks to follow: the "
                f"levels that have them are {list(with_convs)} (the coarsest level's attention "
                f"blocks already read the text).")
        for level in self.text_attention_levels:
            width = unet.base_channels * unet.channel_mult[level]
            if width % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} does not divide level {level}'s "
                                 f"width {width}, so it cannot attend to the text there.")
        return dataclasses.replace(self, temporal_down_levels=levels)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The pretrained part of a video model that its config's `backbone` export restores: an
    export of `kind`, whose config sections must equal `configs`, restored into the weights of
    `module` that `params` (an nnx filter) selects."""
    kind: str
    module: nnx.Module
    configs: dict
    params: Any


def frame_stride(config: STUNetConfig) -> int:
    """How many input frames one frame of the coarsest level stands for."""
    if config.temporal_down_levels is None:
        raise ValueError("Resolve the STUNetConfig against its U-Net config first (config.resolve).")
    return 2 ** len(config.temporal_down_levels)


def allowed_frame_counts(config: STUNetConfig, near: int = 0, count: int = 3) -> tuple[int, ...]:
    """`count` clip lengths the temporal strides divide, starting around `near`."""
    stride = frame_stride(config)
    first = max(1, near // stride)
    return tuple(stride * k for k in range(first, first + count))


def check_frame_count(config: STUNetConfig, frames: int) -> None:
    """Refuses a clip length that the temporal downsamplings cannot halve exactly."""
    stride = frame_stride(config)
    if frames < stride or frames % stride:
        examples = ", ".join(str(n) for n in allowed_frame_counts(config, frames))
        raise ValueError(
            f"{frames} frames cannot be halved by the {len(config.temporal_down_levels)} temporal "
            f"downsampling(s) at U-Net levels {list(config.temporal_down_levels)}: use a multiple "
            f"of {stride}: {examples}, ...")


def shard_problem(config: STUNetConfig, frames: int, shards: int) -> str | None:
    """Why `frames` frames (a length the temporal strides divide) cannot be split over `shards`
    time shards; None if they can. Only the clip itself must split: a coarser level whose frames
    do not runs gathered (`STUNet.gathered_sites`)."""
    problem = split_problem(frames, shards, halo=config.temporal_conv_kernel // 2)
    if problem is None:
        return None
    return f"U-Net level 0 would hold {problem} (temporal conv kernel {config.temporal_conv_kernel})"


def allowed_sharded_frame_counts(config: STUNetConfig, shards: int,
                                 count: int = 3) -> tuple[int, ...]:
    """The `count` shortest clip lengths that split over `shards` time shards."""
    step = math.lcm(shards, frame_stride(config))
    lengths = (step * k for k in range(1, 64 * count))
    return tuple(n for n in lengths if shard_problem(config, n, shards) is None)[:count]


def check_frames_per_shard(config: STUNetConfig, frames: int, shards: int) -> None:
    """Refuses a clip that cannot be split over the time shards."""
    problem = shard_problem(config, frames, shards) if shards > 1 else None
    if problem:
        examples = ", ".join(str(n) for n in allowed_sharded_frame_counts(config, shards))
        raise ValueError(
            f"A {frames}-frame clip cannot be split over the mesh's time axis of {shards} "
            f"shards: {problem}. Clip lengths that fit this mesh: {examples}, ... (or lower "
            f"config.mesh.time).")


def site_key(site: str) -> str:
    """Walk site name -> the key of its temporal layers (`down.1.0` -> `down_1_0`)."""
    return site.replace(".", "_")


def site_level_and_kind(site: str, num_levels: int) -> tuple[int, str]:
    """`down.1.0` -> (1, 'block'); `up.2.upsample` -> (2, 'upsample'); `middle.0` -> (L-1, 'block')."""
    parts = site.split(".")
    if parts[0] == "middle":
        return num_levels - 1, "block"
    kind = parts[2] if parts[2] in ("downsample", "upsample") else "block"
    return int(parts[1]), kind


def walk_sites(unet: UNet2D) -> tuple[tuple[str, int], ...]:
    """(site, channels) in walk order, read off the U-Net's own walk (traced, not run)."""
    config = unet.config
    size = config.patch_size * 2 ** (len(config.channel_mult) - 1)
    seen = []

    def record(site, h):
        seen.append((site, h.shape[-1]))
        return h

    image = jnp.zeros((1, size, size, config.in_channels))
    context = jnp.zeros((1, 1, config.context_features))
    jax.eval_shape(lambda: unet(image, jnp.zeros((1,)), context, jnp.ones((1, 1), bool),
                                hook=record, emb=jnp.zeros((1, unet.emb_features))))
    return tuple(seen)


def count_frames_by_site(config: STUNetConfig, sites, num_levels: int, frames: int) -> dict[str, int]:
    """Frames of the hidden state the walk hands to each site (before its temporal layer)."""
    counts = {}
    for site in sites:
        counts[site] = frames
        level, kind = site_level_and_kind(site, num_levels)
        if kind == "downsample" and level in config.temporal_down_levels:
            frames //= 2
        elif kind == "upsample" and level - 1 in config.temporal_down_levels:
            frames *= 2
    return counts


def fold_frames(video):
    """(B, T, ...) -> (B * T, ...): clips as the 2D model's batch of frames."""
    return einops.rearrange(video, "b t ... -> (b t) ...")


class STUNet(nnx.Module):
    """Denoises whole clips (B, T, H, W, C): the frozen 2D model per frame plus trainable temporal
    layers. With `ssr` the 2D model is the super-resolution model (the "ssr" kind)."""

    trainable = TemporalParam
    is_video = True

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig,
                 config: STUNetConfig, *, rngs: nnx.Rngs, ssr: SSRConfig | None = None):
        self.spatial = self.build_spatial(text_config, unet_config, ssr, rngs)
        self.config = config.resolve(unet_config)
        self.num_levels = len(unet_config.channel_mult)
        sites = walk_sites(self.spatial.unet)
        self.sites = tuple(site for site, _ in sites)
        emb_features = self.spatial.unet.emb_features
        kernel = self.config.temporal_conv_kernel
        with_attention = self.config.temporal_attention_layers > 0
        convs, attention, text_attention, downsamples, upsamples = {}, {}, {}, {}, {}
        for site, channels in sites:
            level, kind = site_level_and_kind(site, self.num_levels)
            key = site_key(site)
            if kind == "block" and level == self.num_levels - 1 and with_attention:
                attention[key] = nnx.List([
                    TemporalAttentionBlock(channels, self.config.num_heads,
                                           unet_config.context_features,
                                           span=self.config.temporal_attention_span,
                                           position=self.config.space_time_position, rngs=rngs)
                    for _ in range(self.config.temporal_attention_layers)])
            elif kind == "block":
                convs[key] = TemporalConvBlock(
                    channels, emb_features, kernel,
                    spatial_kernel=self.config.temporal_conv_spatial_kernel,
                    position=self.config.space_time_position,
                    gate=self.config.temporal_conv_gate, rngs=rngs)
                if level in self.config.text_attention_levels:
                    text_attention[key] = TemporalTextAttention(
                        channels, self.config.num_heads, unet_config.context_features,
                        position=self.config.space_time_position, rngs=rngs)
            elif kind == "downsample" and level in self.config.temporal_down_levels:
                downsamples[key] = TemporalDownsample(channels, kernel, rngs=rngs)
            elif kind == "upsample" and level - 1 in self.config.temporal_down_levels:
                upsamples[key] = TemporalUpsample(channels, kernel, rngs=rngs)
        self.temporal_convs = nnx.Dict(convs)
        self.temporal_attention = nnx.Dict(attention)
        self.temporal_text_attention = nnx.Dict(text_attention)
        self.temporal_downsamples = nnx.Dict(downsamples)
        self.temporal_upsamples = nnx.Dict(upsamples)
        self.temporal_text = (TemporalTextEmbedding(unet_config.context_features, emb_features,
                                                    self.config.num_heads, rngs=rngs)
                              if self.config.text_pool else None)
        self.frame_sharding = UNSHARDED

    @staticmethod
    def build_spatial(text_config: TextEncoderConfig, unet_config: UNetConfig,
                      ssr: SSRConfig | None, rngs: nnx.Rngs) -> TextToImage:
        """The 2D model it inflates: the T2I model, or the SR model given `ssr`."""
        if ssr is None:
            return TextToImage(text_config, unet_config, rngs=rngs)
        return SuperResolution2D(text_config, unet_config, ssr, rngs=rngs)

    def backbone(self) -> Backbone:
        """What a `backbone` export restores: the 2D model (an export of its kind), every weight."""
        return Backbone(self.spatial.kind, self.spatial, self.spatial.part_configs(), nnx.Param)

    def shard_frames(self, frame_sharding: FrameSharding) -> None:
        """Splits clips over `frame_sharding`'s time axis in every later call (static, traced in)."""
        self.frame_sharding = frame_sharding

    @property
    def per_frame_inputs(self) -> tuple[str, ...]:
        """The conditions that hold one entry per frame (cut with the clip into windows)."""
        return self.spatial.per_frame_inputs

    @property
    def self_conditioned(self) -> bool:
        """Whether its backbone reads an x0 estimate (one per frame; see `models.t2i`)."""
        return self.spatial.self_conditioned

    @property
    def text_encoder(self):
        """The (frozen) text encoder, where T2I code looks for it."""
        return self.spatial.text_encoder

    @property
    def resolution(self) -> int:
        """Side of the frames it denoises."""
        return self.spatial.resolution

    def input_shape(self, batch: int, frames: int | None = None) -> tuple[int, ...]:
        """(B, T, H, W, 3) for T = `frames`, refused unless the temporal strides divide it."""
        if frames is None:
            raise ValueError("A video model needs the clip length (frames).")
        self.check_frame_count(frames)
        shape = image_shape(batch, self.resolution, self.spatial.unet.config.out_channels)
        return shape[:1] + (frames,) + shape[1:]

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict:
        """The 2D model's inputs besides the text, for clips of `frames` frames (the SSR's
        low-res clip; none for the base STUNet)."""
        return self.spatial.conditioning_shapes(batch, frames)

    def allowed_frame_counts(self, near: int = 0, count: int = 3) -> tuple[int, ...]:
        return allowed_frame_counts(self.config, near, count)

    def check_frame_count(self, frames: int, shards: int | None = None) -> None:
        """Refuses clip lengths the temporal strides (and the time shards, default this model's
        own frame sharding) cannot divide."""
        check_frame_count(self.config, frames)
        shards = self.frame_sharding.shards if shards is None else shards
        check_frames_per_shard(self.config, frames, shards)

    def frame_counts_by_site(self, frames: int) -> dict[str, int]:
        """Frames of the hidden state at every walk site, for a clip of `frames` frames."""
        self.check_frame_count(frames)
        return count_frames_by_site(self.config, self.sites, self.num_levels, frames)

    def site_frame_sharding(self, site: str, frames: int) -> FrameSharding:
        """Layout of the temporal layers at `site` for a hidden state of `frames` frames: the
        model's frame sharding, or its gathered form where those frames do not split."""
        key = site_key(site)
        mixes = key in self.temporal_convs or key in self.temporal_downsamples or \
            key in self.temporal_upsamples
        return self.frame_sharding.for_frames(
            frames, halo=self.config.temporal_conv_kernel // 2 if mixes else 0,
            halving=key in self.temporal_downsamples)

    def gathered_sites(self, frames: int) -> tuple[str, ...]:
        """The walk sites whose temporal layers run gathered (every frame on each time shard)
        for a clip of `frames` frames under this model's frame sharding."""
        counts = self.frame_counts_by_site(frames)
        return tuple(site for site in self.sites
                     if self.site_frame_sharding(site, counts[site]).gathered)

    def temporal_layers(self, site: str, video, emb, context, context_mask,
                        frame_sharding: FrameSharding):
        """Applies the temporal layer(s) placed at `site` (if any) to video (B, T', H, W, C),
        laid out by `frame_sharding` (`site_frame_sharding`)."""
        key = site_key(site)
        if key in self.temporal_convs:
            video = self.temporal_convs[key](video, emb, frame_sharding)
            if key in self.temporal_text_attention:
                video = self.temporal_text_attention[key](video, context, context_mask)
            return video
        if key in self.temporal_attention:
            for block in self.temporal_attention[key]:
                video = block(video, context, context_mask, frame_sharding)
            return video
        if key in self.temporal_downsamples:
            return self.temporal_downsamples[key](video, frame_sharding)
        if key in self.temporal_upsamples:
            return self.temporal_upsamples[key](video, frame_sharding)
        return video

    def encode_text(self, tokens):
        """tokens (B, L) -> condition dict with `context` (B, L, C) and `mask` (B, L)."""
        return self.spatial.encode_text(tokens)

    def condition_on(self, cond, clean, keys):
        """Training: what the 2D model derives from the clean clips (B, T, H, W, C) (the SSR's
        augmented low-res clip, one augmentation level per clip); keys (B, 2): one per clip."""
        return self.spatial.condition_on(cond, clean, keys)

    def enlarged_input(self, conditions: dict, resolution: int):
        """The 2D model's enlarged input, per frame (None for a text-to-video model)."""
        return self.spatial.enlarged_input(conditions, resolution)

    def prepare_conditions(self, conditions: dict, rng, noise_aug: float | None = None) -> dict:
        """Sampling: the 2D model's preparation of the given inputs (the SSR's noise
        augmentation of its low-res clip, to `noise_aug`)."""
        return self.spatial.prepare_conditions(conditions, rng, noise_aug)

    def per_frame_conditions(self, cond: dict) -> dict:
        """cond for the 2D model: its per-frame inputs folded to (B * T, ...), the rest (the
        text, one per clip) as given."""
        return {name: fold_frames(value) if name in self.spatial.per_frame_inputs else value
                for name, value in cond.items()}

    def denoise(self, x_t, t, cond):
        """Model output (v or eps) for noisy clips x_t (B, T, H, W, C) at times t (B,)."""
        return self._walk(x_t, t, cond, temporal=True)

    def denoise_per_frame(self, x_t, t, cond):
        """The frozen 2D model alone on each frame of x_t (B, T, H, W, C) at times t (B,): the
        temporal layers skipped, for the sampler's low-noise steps (`sample.per_frame_below`)."""
        return self._walk(x_t, t, cond, temporal=False)

    def _walk(self, x_t, t, cond, temporal: bool):
        """The 2D model's walk over the frames, the temporal layers hooked in where `temporal`."""
        chex.assert_rank(x_t, 5)
        batch, frames = x_t.shape[:2]
        chex.assert_shape(t, (batch,))
        context, mask = cond["context"], cond["mask"]
        frames_at = self.frame_counts_by_site(frames)
        # One embedding per video: the walk repeats it (and the text) to each frame it holds.
        emb = self.spatial.embed(t, cond)
        temporal_emb = emb if self.temporal_text is None else emb + self.temporal_text(context, mask)

        def hook(site, h):
            video = einops.rearrange(h, "(b t) h w c -> b t h w c", b=batch, t=frames_at[site])
            layout = self.site_frame_sharding(site, frames_at[site])
            video = self.temporal_layers(site, layout.constrain(video), temporal_emb, context, mask,
                                         layout)
            return einops.rearrange(video, "b t h w c -> (b t) h w c")

        out = self.spatial.denoise(fold_frames(x_t), t, self.per_frame_conditions(cond),
                                   hook=hook if temporal else identity_hook, emb=emb)
        return einops.rearrange(out, "(b t) h w c -> b t h w c", b=batch, t=frames)

    def __call__(self, x_t, t, tokens):
        return self.denoise(x_t, t, self.encode_text(tokens))


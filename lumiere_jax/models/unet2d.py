"""Imagen-style U-Net for images, with a block walk that video inflation can hook into.

The walk calls `hook(site, h)` after every block, so the STUNet inserts temporal layers at those
sites without copying the walk. Sites are named `down.{level}.{i}`, `down.{level}.downsample`,
`middle.{i}`, `up.{level}.{i}` and `up.{level}.upsample`; the T2I model uses the identity hook.

`remat` (a runtime switch, not part of the config: `set_remat`) rematerialises the walk in the
backward pass: "block" keeps only each site's input (res block, attention and hook recomputed),
"level" only each level's; "none" stores every activation. Results are the same either way.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.names import EMBED, MLP
from lumiere_jax.nn.attention import AttentionPool, SpatialAttentionBlock
from lumiere_jax.nn.embeddings import sinusoidal_embedding
from lumiere_jax.nn.resblock import Downsample, ResBlock, Upsample, group_norm
from lumiere_jax.nn.sharding import conv_axes, named_axes
from lumiere_jax.settings import REMAT_POLICIES

Hook = Callable[[str, jax.Array], jax.Array]


def identity_hook(site: str, h):
    """The T2I walk: nothing is inserted."""
    del site
    return h


def per_row(condition, rows: int):
    """Conditioning (B, ...) repeated to the walk's `rows` (B * frames, video-major).

    Image models pass one row per image and get it back unchanged; the STUNet passes one row per
    video, because its temporal layers change the number of frames (rows) between blocks.
    """
    given = condition.shape[0]
    if given == rows:
        return condition
    if rows % given:
        raise ValueError(f"Conditioning for {given} inputs cannot be spread over {rows} rows.")
    return einops.repeat(condition, "b ... -> (b frames) ...", frames=rows // given)


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Widths and layout of the U-Net."""
    resolution: int = 32
    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (8,)
    num_heads: int = 4
    context_features: int = 128
    # Side of the pixel patches folded into channels before the first block (simple diffusion's
    # space-to-depth stem): 1 = none; 2 runs every level at half the side, a quarter of the cost.
    patch_size: int = 1
    # Res blocks of a full-resolution head after a patch stem (needs patch_size > 1): it reads
    # the noisy input at full resolution and the U-Net's last features spread back to pixels
    # (a conv to base * patch**2 channels, unpatched), and adds its (zero-initialised)
    # prediction to the U-Net's, so pixel-scale outlines are drawn at full resolution. 0 = none.
    refine_blocks: int = 0
    # Super-resolution U-Nets are also told the noise-augmentation level of their low-res input
    # (embedded like the diffusion time and added to the conditioning embedding).
    aug_conditioning: bool = False
    # Self-conditioning (Chen et al. 2022, "Analog Bits"): the U-Net also reads an estimate of
    # x0 (the previous sampling step's, or in training its own first guess half of the time,
    # else zeros) through `self_condition_in`, a conv added to `conv_in`'s output.
    self_condition: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))
        if self.num_res_blocks < 1 or not self.channel_mult:
            raise ValueError("The U-Net needs at least one level and one res block per level.")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 (1 = no patching), got {self.patch_size}.")
        check_resolution(self.resolution, len(self.channel_mult), self.patch_size)
        if self.refine_blocks < 0 or (self.refine_blocks and self.patch_size == 1):
            raise ValueError(
                f"refine_blocks must be 0, or >= 1 with a patch stem (patch_size > 1); got "
                f"refine_blocks={self.refine_blocks} with patch_size={self.patch_size}.")

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Side of the feature maps at each level (what `attention_resolutions` names)."""
        first = self.resolution // self.patch_size
        return tuple(first // 2**level for level in range(len(self.channel_mult)))


def to_patches(x, patch: int):
    """(N, H, W, C) -> (N, H / patch, W / patch, patch * patch * C): each cell holds one
    patch x patch block of neighbouring pixels."""
    return einops.rearrange(x, "n (h p) (w q) c -> n h w (p q c)", p=patch, q=patch)


def from_patches(h, patch: int):
    """The inverse of `to_patches`."""
    return einops.rearrange(h, "n h w (p q c) -> n (h p) (w q) c", p=patch, q=patch)


def check_resolution(resolution: int, num_levels: int, patch_size: int = 1) -> None:
    """Refuses a resolution that the patch stem and the U-Net's (num_levels - 1) halvings cannot
    divide."""
    factor = patch_size * 2 ** (num_levels - 1)
    if resolution < factor or resolution % factor:
        raise ValueError(
            f"Resolution {resolution} cannot be halved {num_levels - 1} times: use a multiple of "
            f"{factor} (e.g. {factor * max(1, resolution // factor)} or {factor * (resolution // factor + 1)}).")


class Level(nnx.Module):
    """The res blocks (and optional attention blocks) of one level on one side of the U-Net."""

    def __init__(self, in_widths: list[int], width: int, emb: int, use_attention: bool,
                 config: UNetConfig, *, rngs: nnx.Rngs):
        self.res = nnx.List([ResBlock(c, width, emb, rngs=rngs) for c in in_widths])
        self.attention = nnx.List(
            [SpatialAttentionBlock(width, config.num_heads, config.context_features, rngs=rngs)
             for _ in in_widths] if use_attention else [])


class RefineHead(nnx.Module):
    """Full-resolution res blocks after a patch stem: pixels in, a prediction to add out."""

    def __init__(self, config: UNetConfig, unet_width: int, emb: int, *, rngs: nnx.Rngs):
        width, area = config.base_channels, config.patch_size ** 2
        self.patch_size = config.patch_size
        self.from_input = named_axes(nnx.Conv(config.in_channels, width, (3, 3), rngs=rngs),
                                     *conv_axes(2))
        self.from_unet = named_axes(nnx.Conv(unet_width, width * area, (1, 1), rngs=rngs),
                                    *conv_axes(2))
        self.blocks = nnx.List([ResBlock(width, width, emb, rngs=rngs)
                                for _ in range(config.refine_blocks)])
        self.norm_out = group_norm(width, rngs)
        self.conv_out = named_axes(nnx.Conv(width, config.out_channels, (3, 3),
                                            kernel_init=nnx.initializers.zeros_init(), rngs=rngs),
                                   *conv_axes(2))

    def __call__(self, x, features, emb):
        """x: the input (N, H, W, C_in); features: the U-Net's last (N, H / p, W / p, C)."""
        h = self.from_input(x) + from_patches(self.from_unet(features), self.patch_size)
        for block in self.blocks:
            h = block(h, emb)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))


class UNet2D(nnx.Module):
    """Predicts v (or eps) for a noisy image batch given diffusion time and text tokens."""

    def __init__(self, config: UNetConfig, *, rngs: nnx.Rngs):
        self.config = config
        base = config.base_channels
        emb = 4 * base
        self.emb_features = emb
        widths = [base * m for m in config.channel_mult]
        self.time_mlp_in = named_axes(nnx.Linear(base, emb, rngs=rngs), EMBED, MLP)
        self.time_mlp_out = named_axes(nnx.Linear(emb, emb, rngs=rngs), MLP, EMBED)
        self.text_pool = AttentionPool(config.context_features, config.num_heads, rngs=rngs)
        self.text_to_emb = named_axes(nnx.Linear(config.context_features, emb, rngs=rngs),
                                      EMBED, MLP)
        if config.aug_conditioning:
            self.aug_mlp_in = named_axes(nnx.Linear(base, emb, rngs=rngs), EMBED, MLP)
            self.aug_mlp_out = named_axes(nnx.Linear(emb, emb, rngs=rngs), MLP, EMBED)
        patch_area = config.patch_size ** 2
        self.conv_in = named_axes(nnx.Conv(config.in_channels * patch_area, base, (3, 3), rngs=rngs),
                                  *conv_axes(2))
        if config.self_condition:
            self.self_condition_in = named_axes(
                nnx.Conv(config.out_channels * patch_area, base, (3, 3), use_bias=False,
                         rngs=rngs), *conv_axes(2))

        skip_widths = [base]
        current = base
        down, downsamples = [], []
        for level, width in enumerate(widths):
            attn = config.level_resolutions[level] in config.attention_resolutions
            ins = [current] + [width] * (config.num_res_blocks - 1)
            down.append(Level(ins, width, emb, attn, config, rngs=rngs))
            current = width
            skip_widths += [width] * config.num_res_blocks
            if level < len(widths) - 1:
                downsamples.append(Downsample(width, rngs=rngs))
                skip_widths.append(width)
        self.down = nnx.List(down)
        self.downsamples = nnx.List(downsamples)
        self.middle = Level([current, current], current, emb, True, config, rngs=rngs)

        up, upsamples = [], []
        for level in reversed(range(len(widths))):
            width = widths[level]
            attn = config.level_resolutions[level] in config.attention_resolutions
            ins = []
            for _ in range(config.num_res_blocks + 1):
                ins.append(current + skip_widths.pop())
                current = width
            up.append(Level(ins, width, emb, attn, config, rngs=rngs))
            if level > 0:
                upsamples.append(Upsample(width, rngs=rngs))
        self.up = nnx.List(up)
        self.upsamples = nnx.List(upsamples)
        self.norm_out = group_norm(current, rngs)
        self.conv_out = named_axes(nnx.Conv(current, config.out_channels * patch_area, (3, 3),
                                            kernel_init=nnx.initializers.zeros_init(), rngs=rngs),
                                   *conv_axes(2))
        self.refine = (RefineHead(config, current, emb, rngs=rngs) if config.refine_blocks
                       else None)
        self.remat = "none"

    def set_remat(self, policy: str) -> None:
        """Rematerialisation of the walk in every later call: one of REMAT_POLICIES."""
        if policy not in REMAT_POLICIES:
            raise ValueError(f"Unknown remat policy {policy!r}; allowed: {REMAT_POLICIES}.")
        self.remat = policy

    def estimate_input(self, x0_estimate):
        """What a self-conditioned U-Net adds to `conv_in`'s output for an x0 estimate
        (N, H, W, C_out) in the model range: (N, H / patch, W / patch, base_channels)."""
        if not self.config.self_condition:
            raise ValueError("Only a U-Net with self_condition=True reads an x0 estimate.")
        return self.self_condition_in(to_patches(x0_estimate, self.config.patch_size))

    def embed(self, t, context, context_mask, aug_level=None):
        """Conditioning embedding: diffusion time plus attention-pooled text (plus, with
        `aug_conditioning`, the low-res input's augmentation level (B,)), (B, 4 * base)."""
        if (aug_level is None) == self.config.aug_conditioning:
            raise ValueError("aug_level is needed by, and only by, a U-Net with "
                             "aug_conditioning=True (a super-resolution U-Net).")
        base = self.config.base_channels
        h = self.time_mlp_out(jax.nn.silu(self.time_mlp_in(sinusoidal_embedding(t, base))))
        h = h + self.text_to_emb(self.text_pool(context, context_mask))
        if aug_level is not None:
            aug = sinusoidal_embedding(aug_level, base)
            h = h + self.aug_mlp_out(jax.nn.silu(self.aug_mlp_in(aug)))
        return h

    def __call__(self, x, t, context, context_mask, *, hook: Hook = identity_hook, emb=None,
                 extra_input=None):
        """x: (N, H, W, C_in); t: (N,); context: (N, L, C_ctx); context_mask: (N, L) -> (N, H, W, C_out).

        `emb` may be given precomputed (the STUNet embeds once per video, not once per frame).
        `extra_input` (N, H / patch, W / patch, base_channels) is added to `conv_in`'s output: a
        widened first conv's contribution from input channels beyond x's (the conditional STUNet).
        `emb`, `context` and `context_mask` may have one row per video instead of one per row of
        x; each block repeats them to the rows it sees (see `per_row`).
        """
        check_resolution(x.shape[1], len(self.config.channel_mult), self.config.patch_size)
        if emb is None:
            emb = self.embed(t, context, context_mask)

        remat = lambda fn, policy: jax.checkpoint(fn) if self.remat == policy else fn

        def run_site(level: Level, i: int, site: str, h, skip=None):
            if skip is not None:  # concatenated inside, so remat keeps only h (skip is kept anyway)
                h = jnp.concatenate([h, skip], axis=-1)
            rows = h.shape[0]
            h = level.res[i](h, per_row(emb, rows))
            if len(level.attention):
                h = level.attention[i](h, per_row(context, rows), per_row(context_mask, rows))
            return hook(site, h)

        def run_level(level: Level, side: str, index: int, h, skips=()):
            """-> (h, every block's output); `skips` are concatenated in, last first."""
            skips, outputs = list(skips), []
            for i in range(len(level.res)):
                skip = skips.pop() if skips else None
                site = f"{side}.{index}.{i}" if side != "middle" else f"middle.{i}"
                h = remat(functools.partial(run_site, level, i, site), "block")(h, skip)
                outputs.append(h)
            return h, outputs

        def walk_level(level: Level, side: str, index: int, h, skips=()):
            return remat(functools.partial(run_level, level, side, index), "level")(h, skips)

        patch = self.config.patch_size
        h = self.conv_in(to_patches(x, patch))
        if extra_input is not None:
            h = h + extra_input.astype(h.dtype)
        saved = [h]
        for level, blocks in enumerate(self.down):
            h, outputs = walk_level(blocks, "down", level, h)
            saved += outputs
            if level < len(self.downsamples):
                h = hook(f"down.{level}.downsample", self.downsamples[level](h))
                saved.append(h)
        h, _ = walk_level(self.middle, "middle", 0, h)
        num_levels = len(self.up)
        for position, blocks in enumerate(self.up):
            level = num_levels - 1 - position
            skips = saved[len(saved) - len(blocks.res):]
            del saved[len(saved) - len(blocks.res):]
            h, _ = walk_level(blocks, "up", level, h, skips)
            if level > 0:
                h = hook(f"up.{level}.upsample", self.upsamples[position](h))
        out = from_patches(self.conv_out(jax.nn.silu(self.norm_out(h))), patch)
        if self.refine is not None:
            out = out + self.refine(x, h, per_row(emb, x.shape[0]))
        return out

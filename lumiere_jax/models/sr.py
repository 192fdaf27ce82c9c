"""2D super-resolution (Imagen's SR stages): the U-Net reads the noisy high-res image and the
low-res image enlarged to that size, concatenated on channels.

The low-res input is corrupted by noise-conditioning augmentation (Imagen, Ho et al. 2022's
cascades): in training each example's low-res image is noised to a level drawn from
U(0, noise_aug_max), and the level is given to the U-Net (embedded like the diffusion time), so
at sampling time a chosen level (`SSRConfig.noise_aug`, a user setting) tells it how much to
trust its input. A level s noises x to cos(pi s / 2) x + sin(pi s / 2) eps (variance preserving).

Lumiere's SSR is this model trained on frames, frozen, and inflated with temporal layers
(`STUNet(..., ssr=...)`, the "ssr" kind); on its own it is the "sr" kind.
"""
from __future__ import annotations

import dataclasses
import math

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig

LOW_RES = "low_res"
AUG_LEVEL = "aug_level"


@dataclasses.dataclass(frozen=True)
class SSRConfig:
    """low_resolution: side of the images or clips it upsamples (the output side is
    unet.resolution). noise_aug_max: training draws the augmentation level from
    U(0, noise_aug_max). noise_aug: the level used when sampling unless the caller names one."""
    low_resolution: int = 128
    noise_aug_max: float = 0.5
    # A sampling default, not a property of the weights: exports need not agree on it.
    noise_aug: float = dataclasses.field(default=0.1, metadata={"sampling_default": True})


def check_ssr_config(ssr: SSRConfig, unet: UNetConfig) -> None:
    """Refuses an SR config that does not fit its U-Net (ValueError)."""
    if unet.in_channels != 2 * unet.out_channels:
        raise ValueError(f"An SR U-Net reads the noisy image and the enlarged low-res image: "
                         f"unet.in_channels must be 2 x out_channels = {2 * unet.out_channels}, "
                         f"got {unet.in_channels}.")
    if not unet.aug_conditioning:
        raise ValueError("An SR U-Net is told its input's noise-augmentation level: set "
                         "unet.aug_conditioning=True.")
    if not 0 < ssr.low_resolution < unet.resolution or unet.resolution % ssr.low_resolution:
        raise ValueError(f"ssr.low_resolution must divide the output resolution {unet.resolution} "
                         f"and be smaller, got {ssr.low_resolution}.")
    if not 0.0 <= ssr.noise_aug_max <= 1.0 or not 0.0 <= ssr.noise_aug <= 1.0:
        raise ValueError(f"Noise-augmentation levels are in [0, 1], got noise_aug_max="
                         f"{ssr.noise_aug_max} and noise_aug={ssr.noise_aug}.")


def shrink_frames(images: jax.Array, factor: int) -> jax.Array:
    """(..., H, W, C) -> (..., H / factor, W / factor, C): the mean of each factor^2 block."""
    return einops.reduce(images, "... (h p) (w q) c -> ... h w c", "mean", p=factor, q=factor)


def enlarge_frames(images: jax.Array, resolution: int) -> jax.Array:
    """(..., h, w, C) -> (..., resolution, resolution, C), bilinear."""
    shape = images.shape[:-3] + (resolution, resolution, images.shape[-1])
    return jax.image.resize(images, shape, "linear")


def augment(low_res: jax.Array, level: jax.Array, eps: jax.Array) -> jax.Array:
    """Noise-conditioning augmentation: low_res (B, ...) noised to `level` (B,) with `eps`."""
    level = level.reshape(level.shape + (1,) * (low_res.ndim - 1)).astype(low_res.dtype)
    angle = 0.5 * math.pi * level
    return jnp.cos(angle) * low_res + jnp.sin(angle) * eps.astype(low_res.dtype)


class SuperResolution2D(TextToImage):
    """The T2I model's parts (frozen pretrained text encoder, U-Net) as an SR model: the U-Net
    reads 6 channels and is told the augmentation level. Works on images (B, H, W, C) and, for
    the inflated SSR, on frames folded into the batch: its conditioning is per example, its
    low-res input per image."""

    kind = "sr"
    per_frame_inputs = (LOW_RES,)

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig,
                 ssr_config: SSRConfig, *, rngs: nnx.Rngs):
        check_ssr_config(ssr_config, unet_config)
        super().__init__(text_config, unet_config, rngs=rngs)
        self.ssr_config = ssr_config

    def part_configs(self) -> dict:
        """The configs (by `config.model` section) an export of this model must match."""
        return dict(super().part_configs(), ssr=self.ssr_config)

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict:
        """`low_res`: the images (or clips, given `frames`) to upsample."""
        side = self.ssr_config.low_resolution
        leading = (batch,) if frames is None else (batch, frames)
        return {LOW_RES: leading + (side, side, self.unet.config.out_channels)}

    def condition_on(self, cond: dict, clean: jax.Array, keys: jax.Array) -> dict:
        """Training: cond plus `low_res`, the clean batch shrunk to the low resolution and
        augmented to a level drawn per example from U(0, noise_aug_max) (`aug_level`).
        keys: (B, 2) uint32 key data, one per example."""
        low_res = shrink_frames(clean, clean.shape[-2] // self.ssr_config.low_resolution)

        def draw(key, example):
            level_key, noise_key = jax.random.split(jax.random.wrap_key_data(key))
            level = jax.random.uniform(level_key, (), maxval=self.ssr_config.noise_aug_max)
            return level, jax.random.normal(noise_key, example.shape)

        levels, eps = jax.vmap(draw)(keys, low_res)
        return dict(cond, **{LOW_RES: augment(low_res, levels, eps), AUG_LEVEL: levels})

    def prepare_conditions(self, conditions: dict, rng: jax.Array,
                           noise_aug: float | None = None) -> dict:
        """Sampling: the given `low_res` augmented once to `noise_aug` (default the config's)."""
        level = self.ssr_config.noise_aug if noise_aug is None else float(noise_aug)
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"The noise-augmentation level must be in [0, 1], got {level}.")
        low_res = conditions[LOW_RES]
        levels = jnp.full((low_res.shape[0],), level, jnp.float32)
        eps = jax.random.normal(rng, low_res.shape, low_res.dtype)
        return dict(conditions, **{LOW_RES: augment(low_res, levels, eps), AUG_LEVEL: levels})

    def enlarged_input(self, conditions: dict, resolution: int):
        """The (un-augmented) low-res input (..., h, w, C), model range, enlarged bilinearly to
        `resolution`: where sampling may start (SDEdit) instead of pure noise."""
        return enlarge_frames(conditions[LOW_RES], resolution)

    def embed(self, t, cond: dict):
        """The U-Net's conditioning embedding: time, pooled text and augmentation level."""
        if AUG_LEVEL not in cond:
            raise ValueError("The SR model needs the augmentation level cond['aug_level'] (B,); "
                             "see condition_on / prepare_conditions.")
        return self.unet.embed(t, cond["context"], cond["mask"], aug_level=cond[AUG_LEVEL])

    def unet_input(self, x_t, cond: dict):
        """[x_t, low_res enlarged to x_t's side] on channels; x_t (N, H, W, C) and low_res
        (N, h, w, C) with one low-res image per row."""
        if LOW_RES not in cond:
            raise ValueError("The SR model needs the low-resolution input cond['low_res']; see "
                             "condition_on / prepare_conditions.")
        low_res = cond[LOW_RES]
        side = self.ssr_config.low_resolution
        expected = x_t.shape[:-3] + (side, side, x_t.shape[-1])
        if low_res.shape != expected:
            raise ValueError(f"cond['low_res'] has shape {low_res.shape}, expected {expected}.")
        return jnp.concatenate([x_t, enlarge_frames(low_res.astype(x_t.dtype), x_t.shape[-2])],
                               axis=-1)

    def __call__(self, x_t, t, tokens, low_res, aug_level):
        cond = dict(self.encode_text(tokens), **{LOW_RES: low_res, AUG_LEVEL: aug_level})
        return self.denoise(x_t, t, cond)

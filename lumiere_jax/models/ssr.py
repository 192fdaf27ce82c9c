"""Spatial super-resolution (SSR) video model: a STUNet that also reads the low-resolution clip.

Lumiere's SSR lifts the base model's clip (128 px) to 1024 px. As in Imagen's SR stages the
low-resolution clip is resized to the output resolution and concatenated to the noisy clip on
channels, so the U-Net takes 3 + 3 input channels and predicts 3. The SSR runs on temporal windows
of the clip (MultiDiffusion), so by default its temporal layers keep the frame count.

The conditioning travels in the same `cond` dict as the text: `condition_on(cond, clean)` adds
`low_res` (the clean clip downsampled, for training), or a sampler puts the base model's clip
there.
"""
from __future__ import annotations

import dataclasses

import chex
import einops
import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.t2i import ALL_BUT_TEXT
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.nn.frame_sharding import FrameSharding


@dataclasses.dataclass(frozen=True)
class SSRConfig:
    """low_resolution: side of the clips the model upsamples (the output side is unet.resolution)."""
    low_resolution: int = 128


def check_ssr_config(ssr: SSRConfig, unet: UNetConfig) -> None:
    if unet.in_channels != 2 * unet.out_channels:
        raise ValueError(f"An SSR U-Net reads the noisy clip and the upsampled low-res clip: "
                         f"unet.in_channels must be 2 x out_channels = {2 * unet.out_channels}, "
                         f"got {unet.in_channels}.")
    if not 0 < ssr.low_resolution < unet.resolution or unet.resolution % ssr.low_resolution:
        raise ValueError(f"ssr.low_resolution must divide the output resolution {unet.resolution} "
                         f"and be smaller, got {ssr.low_resolution}.")


def shrink_frames(video: jax.Array, factor: int) -> jax.Array:
    """(B, T, H, W, C) -> (B, T, H / factor, W / factor, C): the mean of each factor^2 block."""
    return einops.reduce(video, "b t (h p) (w q) c -> b t h w c", "mean", p=factor, q=factor)


def enlarge_frames(video: jax.Array, resolution: int) -> jax.Array:
    """(B, T, h, w, C) -> (B, T, resolution, resolution, C), bilinear."""
    batch, frames, _, _, channels = video.shape
    return jax.image.resize(video, (batch, frames, resolution, resolution, channels), "linear")


class SuperResolution(nnx.Module):
    """STUNet (`video`) over [noisy clip, upsampled low-res clip]; same train/sample interface.

    Every weight but the frozen text encoder trains (no pretrained 2D SR model exists yet)."""

    trainable = ALL_BUT_TEXT
    is_video = True

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig,
                 temporal_config: STUNetConfig, ssr_config: SSRConfig, *, rngs: nnx.Rngs):
        check_ssr_config(ssr_config, unet_config)
        self.ssr_config = ssr_config
        self.video = STUNet(text_config, unet_config, temporal_config, rngs=rngs)

    @property
    def text_encoder(self):
        return self.video.text_encoder

    @property
    def config(self) -> STUNetConfig:
        return self.video.config

    @property
    def resolution(self) -> int:
        """Side of the frames it outputs."""
        return self.video.resolution

    def input_shape(self, batch: int, frames: int | None = None) -> tuple[int, ...]:
        """(B, T, H, W, 3): the noisy high-resolution clip."""
        return self.video.input_shape(batch, frames)

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict:
        """`low_res`: the clip to upsample, (B, T, h, w, 3) at the low resolution."""
        side = self.ssr_config.low_resolution
        shape = self.input_shape(batch, frames)
        return {"low_res": shape[:2] + (side, side, shape[-1])}

    def shard_frames(self, frame_sharding: FrameSharding) -> None:
        self.video.shard_frames(frame_sharding)

    def check_frame_count(self, frames: int, shards: int | None = None) -> None:
        self.video.check_frame_count(frames, shards)

    def encode_text(self, tokens):
        return self.video.encode_text(tokens)

    def condition_on(self, cond: dict, clean: jax.Array) -> dict:
        """cond plus `low_res`: the clean clips (B, T, H, W, 3) shrunk to the low resolution."""
        factor = clean.shape[2] // self.ssr_config.low_resolution
        return dict(cond, low_res=shrink_frames(clean, factor))

    def denoise(self, x_t, t, cond):
        """Model output for noisy high-res clips x_t (B, T, H, W, 3) given cond['low_res']."""
        if "low_res" not in cond:
            raise ValueError("The SSR model needs the low-resolution clip: cond['low_res'] "
                             "(B, T, h, w, 3); see condition_on.")
        low_res = cond["low_res"]
        side = self.ssr_config.low_resolution
        chex.assert_shape(low_res, x_t.shape[:2] + (side, side, x_t.shape[-1]))
        upsampled = enlarge_frames(low_res.astype(x_t.dtype), x_t.shape[2])
        return self.video.denoise(jnp.concatenate([x_t, upsampled], axis=-1), t, cond)

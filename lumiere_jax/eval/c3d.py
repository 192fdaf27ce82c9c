"""C3D (Tran et al. 2015) as a Flax NNX module: the UCF101 action classifier of the video
Inception Score (Saito et al. 2017, TGAN; the IS of Lumiere's zero-shot UCF101 table).

Input: clips (N, 16, 112, 112, 3) float RGB pixel values in [0, 255] for the published
weights; the network subtracts its `input_mean` (a per-channel variable stored with the weights)
first. Eight 3x3x3 convs with bias and ReLU in five pooled stages (pool1 1x2x2, pool2-5 2x2x2;
pool5 pads height and width by 1 on each side), then fc6, fc7 (ReLU) and fc8: class logits.

Parameter paths (the npz keys of `npz_weights`): `input_mean` (3,), `conv1a/kernel`
(3, 3, 3, 3, 64), `conv1a/bias`, ..., `fc6/kernel` (8192, 4096), ..., `fc8/kernel` (4096, 101),
`fc8/bias` (101,). fc6 reads the pool5 output flattened channels-last, in (t, h, w, c) order;
docs/metrics.md says how to convert weights stored in other orders.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

# conv name -> output channels, in order; a pool follows each name in POOL_AFTER.
CONV_CHANNELS = {"conv1a": 64, "conv2a": 128, "conv3a": 256, "conv3b": 256, "conv4a": 512,
                 "conv4b": 512, "conv5a": 512, "conv5b": 512}
POOL_AFTER = {"conv1a": (1, 2, 2), "conv2a": (2, 2, 2), "conv3b": (2, 2, 2),
              "conv4b": (2, 2, 2), "conv5b": (2, 2, 2)}
POOL5_PADDING = ((0, 0), (1, 1), (1, 1))
FC_WIDTH = 4096


class InputMean(nnx.Variable):
    """The per-channel pixel mean subtracted from the input (a statistic, not trained)."""


@dataclasses.dataclass(frozen=True)
class C3DConfig:
    """num_classes: 101 UCF101 actions; frames and size: the input clip (the fc6 width depends
    on them); width: multiplies every channel and fc width (1 = the published network; smaller
    only for tests)."""

    num_classes: int = 101
    frames: int = 16
    size: int = 112
    width: float = 1.0

    def channels(self, count: int) -> int:
        return max(1, round(count * self.width))

    def pool5_shape(self) -> tuple[int, int, int]:
        """(t, h, w) of the pool5 output for an input of `frames` x `size` x `size`."""
        t, h = self.frames, self.size
        for name, (pool_t, pool_h, _) in POOL_AFTER.items():
            pad_t, pad_h = (POOL5_PADDING[0][0] * 2, POOL5_PADDING[1][0] * 2) \
                if name == "conv5b" else (0, 0)
            t, h = (t + pad_t - pool_t) // pool_t + 1, (h + pad_h - pool_h) // pool_h + 1
        if min(t, h) < 1:
            raise ValueError(f"C3D needs clips of at least 16 frames and 16x16 pixels, got "
                             f"{self.frames} x {self.size} x {self.size}.")
        return t, h, h


class C3D(nnx.Module):
    """`__call__(clips (N, frames, size, size, 3))` -> class logits (N, num_classes)."""

    def __init__(self, config: C3DConfig = C3DConfig(), *, rngs: nnx.Rngs):
        self.config = config
        self.input_mean = InputMean(jnp.zeros((3,), jnp.float32))
        channels = 3
        for name, out in CONV_CHANNELS.items():
            setattr(self, name, nnx.Conv(channels, config.channels(out), kernel_size=(3, 3, 3),
                                         padding=((1, 1),) * 3, use_bias=True, rngs=rngs))
            channels = config.channels(out)
        t, h, w = config.pool5_shape()
        width = config.channels(FC_WIDTH)
        self.fc6 = nnx.Linear(t * h * w * channels, width, rngs=rngs)
        self.fc7 = nnx.Linear(width, width, rngs=rngs)
        self.fc8 = nnx.Linear(width, config.num_classes, rngs=rngs)

    def __call__(self, clips: jax.Array) -> jax.Array:
        expected = (self.config.frames, self.config.size, self.config.size, 3)
        if clips.ndim != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(f"C3D reads clips (N, {', '.join(map(str, expected))}), got shape "
                             f"{clips.shape}.")
        x = clips - self.input_mean.get_value()
        for name in CONV_CHANNELS:
            x = jax.nn.relu(getattr(self, name)(x))
            if name in POOL_AFTER:
                padding = POOL5_PADDING if name == "conv5b" else "VALID"
                x = nnx.max_pool(x, POOL_AFTER[name], POOL_AFTER[name], padding=padding)
        x = rearrange(x, "n t h w c -> n (t h w c)")
        return self.fc8(jax.nn.relu(self.fc7(jax.nn.relu(self.fc6(x)))))

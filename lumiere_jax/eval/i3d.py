"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman 2017), the network behind FVD
(Unterthiner et al. 2018), as Flax NNX modules.

Input: clips (N, T, H, W, 3) float RGB in [-1, 1], 224x224 and 16 or more frames for the
published weights (any size runs: every conv and pool pads 'SAME', as TensorFlow does). Output:
(features, logits): the 1024-d average-pooled layer before the logits, and the 400 Kinetics
class logits. The final average pool (2x7x7, stride 1) is clamped to the feature map, and its
outputs are averaged over the remaining positions (at 16x224x224 exactly one position, as in
the original; logits are the 1x1x1 conv of that average, which equals the original's average
of per-position logits because the conv is affine).

Parameter paths (the npz keys of `npz_weights`) follow the original TensorFlow/Sonnet names:
`Conv3d_1a_7x7/conv/kernel`, `Conv3d_1a_7x7/bn/{scale,bias,mean,var}`,
`Mixed_3b/Branch_1/Conv3d_0b_3x3/conv/kernel`, ..., `Logits/Conv3d_0c_1x1/{kernel,bias}`;
docs/metrics.md lists them with their shapes. Batch norm: epsilon 1e-3, running statistics only
(inference).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

BATCH_NORM_EPSILON = 1e-3

# Mixed block name -> (Branch_0 1x1, Branch_1 (1x1, 3x3), Branch_2 (1x1, 3x3), Branch_3 pool 1x1)
MIXED_CHANNELS = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}
# The max pools before each stage: name -> (window, strides); padding 'SAME'.
POOLS = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}
FINAL_POOL = (2, 7, 7)


@dataclasses.dataclass(frozen=True)
class I3DConfig:
    """num_classes: logits (400 Kinetics classes); width: multiplies every channel count (1 =
    the published network; smaller only for tests); input_size: the side clips are resized to."""

    num_classes: int = 400
    width: float = 1.0
    input_size: int = 224

    def channels(self, count: int) -> int:
        return max(1, round(count * self.width))


class Unit3D(nnx.Module):
    """Conv3D without bias, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int],
                 strides: tuple[int, int, int] = (1, 1, 1), *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(in_channels, out_channels, kernel_size=kernel, strides=strides,
                             padding="SAME", use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(out_channels, use_running_average=True,
                                epsilon=BATCH_NORM_EPSILON, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x)))


class PointBranch(nnx.Module):
    """Branch_0: a 1x1x1 unit."""

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        self.Conv3d_0a_1x1 = Unit3D(in_channels, out_channels, (1, 1, 1), rngs=rngs)

    def __call__(self, x):
        return self.Conv3d_0a_1x1(x)


class ConvBranch(nnx.Module):
    """Branch_1 / Branch_2: a 1x1x1 unit reducing channels, then a 3x3x3 unit."""

    def __init__(self, in_channels: int, reduced: int, out_channels: int, *, rngs: nnx.Rngs):
        self.Conv3d_0a_1x1 = Unit3D(in_channels, reduced, (1, 1, 1), rngs=rngs)
        self.Conv3d_0b_3x3 = Unit3D(reduced, out_channels, (3, 3, 3), rngs=rngs)

    def __call__(self, x):
        return self.Conv3d_0b_3x3(self.Conv3d_0a_1x1(x))


class PoolBranch(nnx.Module):
    """Branch_3: a 3x3x3 max pool (stride 1), then a 1x1x1 unit."""

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        self.Conv3d_0b_1x1 = Unit3D(in_channels, out_channels, (1, 1, 1), rngs=rngs)

    def __call__(self, x):
        return self.Conv3d_0b_1x1(nnx.max_pool(x, (3, 3, 3), (1, 1, 1), padding="SAME"))


class Mixed(nnx.Module):
    """Inception block: four branches concatenated on channels."""

    def __init__(self, in_channels: int, channels, config: I3DConfig, *, rngs: nnx.Rngs):
        point, (reduce_1, out_1), (reduce_2, out_2), pooled = channels
        c = config.channels
        self.Branch_0 = PointBranch(in_channels, c(point), rngs=rngs)
        self.Branch_1 = ConvBranch(in_channels, c(reduce_1), c(out_1), rngs=rngs)
        self.Branch_2 = ConvBranch(in_channels, c(reduce_2), c(out_2), rngs=rngs)
        self.Branch_3 = PoolBranch(in_channels, c(pooled), rngs=rngs)
        self.out_channels = c(point) + c(out_1) + c(out_2) + c(pooled)

    def __call__(self, x):
        branches = (self.Branch_0, self.Branch_1, self.Branch_2, self.Branch_3)
        return jnp.concatenate([branch(x) for branch in branches], axis=-1)


class Logits(nnx.Module):
    """The classifier: a 1x1x1 conv with bias on the pooled features."""

    def __init__(self, in_channels: int, num_classes: int, *, rngs: nnx.Rngs):
        self.Conv3d_0c_1x1 = nnx.Conv(in_channels, num_classes, kernel_size=(1, 1, 1),
                                      use_bias=True, rngs=rngs)

    def __call__(self, features: jax.Array) -> jax.Array:
        return self.Conv3d_0c_1x1(features[:, None, None, None, :])[:, 0, 0, 0, :]


class I3D(nnx.Module):
    """Inception-v1 inflated to 3D; `__call__(clips)` -> (features (N, 1024), logits (N, 400))."""

    def __init__(self, config: I3DConfig = I3DConfig(), *, rngs: nnx.Rngs):
        self.config = config
        c = config.channels
        self.Conv3d_1a_7x7 = Unit3D(3, c(64), (7, 7, 7), (2, 2, 2), rngs=rngs)
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64), (1, 1, 1), rngs=rngs)
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), (3, 3, 3), rngs=rngs)
        channels = c(192)
        for name, block_channels in MIXED_CHANNELS.items():
            block = Mixed(channels, block_channels, config, rngs=rngs)
            setattr(self, name, block)
            channels = block.out_channels
        self.feature_width = channels
        self.Logits = Logits(channels, config.num_classes, rngs=rngs)

    def _stage(self, x, pool: str, blocks) -> jax.Array:
        window, strides = POOLS[pool]
        x = nnx.max_pool(x, window, strides, padding="SAME")
        for name in blocks:
            x = getattr(self, name)(x)
        return x

    def __call__(self, clips: jax.Array) -> tuple[jax.Array, jax.Array]:
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"I3D reads clips (N, T, H, W, 3), got shape {clips.shape}.")
        x = self.Conv3d_1a_7x7(clips)
        x = self._stage(x, "MaxPool3d_2a_3x3", ())
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = self._stage(x, "MaxPool3d_3a_3x3", ("Mixed_3b", "Mixed_3c"))
        x = self._stage(x, "MaxPool3d_4a_3x3",
                        ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"))
        x = self._stage(x, "MaxPool3d_5a_2x2", ("Mixed_5b", "Mixed_5c"))
        window = tuple(min(w, size) for w, size in zip(FINAL_POOL, x.shape[1:4]))
        pooled = nnx.avg_pool(x, window, (1, 1, 1), padding="VALID")
        features = pooled.mean(axis=(1, 2, 3))
        return features, self.Logits(features)

"""Does the pixel-major layout of the temporal convs pay? Forward + backward time of one
temporal conv (kernel 3 over time, per pixel) applied three ways to a video (B, T, H, W, C):

- `transpose`: the library's own path (`lumiere_jax.nn.temporal.over_time`): every pixel's
  frames become a sequence, (B, T, H, W, C) -> (B*H*W, T, C), a 1D conv, and back (two layout
  transposes per conv; the profile of the shapes STUNet step puts 10-12% of its time in them);
- `conv3d`: no transpose, the same kernel as a (K, 1, 1) 3D conv over (T, H, W);
- `shifted`: no transpose, the sum over taps of the shifted frames times each tap's matrix.

    python benchmarks/temporal_layout.py [--batch 4] [--repeats 7] [--jsonl F]

Shapes: the shapes STUNet's temporal levels (frames, pixels, channels), with the halo frames
that `conv_over_time` pads. All three are checked against each other before timing.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks import measure  # noqa: E402
from lumiere_jax.nn.temporal import over_time, temporal_conv  # noqa: E402

# (frames + 2 halo frames, pixels, channels) of the shapes STUNet's temporal conv sites.
LEVELS = ((18, 16, 64), (10, 8, 128), (6, 4, 128))


def conv3d(conv: nnx.Conv, video):
    """The temporal conv as a (K, 1, 1) 3D conv on (B, T, H, W, C): no transpose."""
    kernel = conv.kernel[...][:, None, None]
    out = jax.lax.conv_general_dilated(video, kernel, (1, 1, 1), "VALID",
                                       dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    return out + conv.bias[...]


def shifted(conv: nnx.Conv, video):
    """The temporal conv as a sum over taps of shifted frames times the tap's matrix."""
    kernel = conv.kernel[...]
    taps, out_frames = kernel.shape[0], video.shape[1] - kernel.shape[0] + 1
    out = sum(jnp.einsum("bthwc,cd->bthwd", video[:, tap:tap + out_frames], kernel[tap])
              for tap in range(taps))
    return out + conv.bias[...]


LAYOUTS = {"transpose": over_time, "conv3d": conv3d, "shifted": shifted}


def timed_layouts(batch: int, frames: int, pixels: int, channels: int, repeats: int) -> dict:
    """Median seconds of a jitted forward + backward (input and kernel grads) per layout."""
    conv = temporal_conv(channels, 3, nnx.Rngs(0))
    graphdef, params = nnx.split(conv)
    video = jax.random.normal(jax.random.key(1), (batch, frames, pixels, pixels, channels))
    reference = over_time(conv, video)
    seconds = {}
    for name, layout in LAYOUTS.items():
        np.testing.assert_allclose(layout(conv, video), reference, rtol=1e-4, atol=1e-4)

        def loss(params, video, layout=layout):
            return jnp.sum(layout(nnx.merge(graphdef, params), video) ** 2)

        step = jax.jit(jax.grad(loss, argnums=(0, 1)))
        seconds[name] = measure.time_rounds(lambda: step(params, video), steps=repeats,
                                            rounds=1, warmup=1)["median_s"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--jsonl", default=None)
    args = parser.parse_args()
    for frames, pixels, channels in LEVELS:
        seconds = timed_layouts(args.batch, frames, pixels, channels, args.repeats)
        measure.write_record({"benchmark": "temporal_layout", "batch": args.batch,
                              "frames": frames, "pixels": pixels, "channels": channels,
                              **{f"{name}_s": s for name, s in seconds.items()},
                              **measure.environment()}, args.jsonl)


if __name__ == "__main__":
    main()

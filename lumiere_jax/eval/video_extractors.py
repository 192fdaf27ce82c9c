"""uint8 clips -> I3D features (FVD) or C3D class probabilities (IS), batch by batch.

Both networks are built without random initialisation (`nnx.eval_shape`) and filled from an npz
weight file (`npz_weights`). Clips of any size are resized so that their shorter side is the
network's input side, then centre-cropped to a square; I3D reads them in [-1, 1], C3D in
[0, 255] (it subtracts its own mean). Each batch is padded to the same size, so each network
compiles once.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax.eval.c3d import C3D, C3DConfig
from lumiere_jax.eval.i3d import I3D, I3DConfig
from lumiere_jax.eval.npz_weights import load_npz

I3D_OUTPUTS = ("features", "logits")


@functools.lru_cache(maxsize=8)
def _abstract_parts(network_class, config):
    return nnx.split(nnx.eval_shape(lambda: network_class(config, rngs=nnx.Rngs(0))))


def abstract_network(network_class, config) -> nnx.Module:
    """A new `network_class(config)` with shapes but no values (nothing initialised): fill it
    with `load_npz`. The structure is traced once per class and config (seconds for I3D)."""
    graphdef, state = _abstract_parts(network_class, config)
    return nnx.merge(graphdef, state, copy=True)


def load_i3d(path: str, config: I3DConfig = I3DConfig()) -> I3D:
    """I3D with the weights of the npz file `path` (layout: docs/metrics.md)."""
    return load_npz(abstract_network(I3D, config), path, what="I3D network")


def load_c3d(path: str, config: C3DConfig = C3DConfig()) -> C3D:
    """C3D with the weights of the npz file `path` (layout: docs/metrics.md)."""
    return load_npz(abstract_network(C3D, config), path, what="C3D network")


def _check_clips(clips) -> np.ndarray:
    clips = np.asarray(clips)
    if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"clips must be uint8 (N, T, H, W, 3), got {clips.dtype} "
                         f"{clips.shape}.")
    return clips


@functools.partial(jax.jit, static_argnames=("size", "low", "high"))
def resize_and_centre_crop(clips, size: int, low: float = 0.0, high: float = 255.0) -> jax.Array:
    """uint8 clips (N, T, H, W, 3) -> float32 (N, T, size, size, 3) with pixel values mapped
    from [0, 255] to [low, high]: the shorter side resized (bilinear, antialiased) to `size`,
    then the centre square cut out."""
    n, t, height, width, _ = clips.shape
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = jax.image.resize(jnp.asarray(clips, jnp.float32), (n, t, new_h, new_w, 3),
                               "linear")
    top, left = (new_h - size) // 2, (new_w - size) // 2
    cropped = resized[:, :, top:top + size, left:left + size, :]
    return low + cropped * ((high - low) / 255.0)


@functools.partial(jax.jit, static_argnames="graphdef")
def _apply(state, inputs, *, graphdef):
    """The network on its own input size: one compile per network structure, whatever the
    clips' size (two networks of one structure share it)."""
    return nnx.merge(graphdef, state)(inputs)


def _batched(network: nnx.Module, prepare: Callable, select: Callable,
             batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """clips -> np.ndarray of `select(network(prepare(clips)))`, `batch` clips per call."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    graphdef, state = nnx.split(network)

    def run(clips) -> np.ndarray:
        clips = _check_clips(clips)
        outputs = []
        for start in range(0, len(clips), batch):
            chunk = clips[start:start + batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            output = _apply(state, prepare(padded), graphdef=graphdef)
            outputs.append(np.asarray(select(output))[:len(chunk)])
        return np.concatenate(outputs).astype(np.float64)

    return run


def i3d_extractor(network: I3D, batch: int = 8, output: str = "features"):
    """clips uint8 (N, T, H, W, 3) -> (N, 1024) pooled features (`output="features"`, the
    default) or (N, 400) logits (`"logits"`, what the TF-Hub FVD module returns)."""
    if output not in I3D_OUTPUTS:
        raise ValueError(f"output must be one of {I3D_OUTPUTS}, got {output!r}.")
    size, index = network.config.input_size, I3D_OUTPUTS.index(output)
    return _batched(network, lambda clips: resize_and_centre_crop(clips, size, -1.0, 1.0),
                    lambda outputs: outputs[index], batch)


def c3d_classifier(network: C3D, batch: int = 8):
    """clips uint8 (N, T >= frames, H, W, 3) -> (N, classes) softmax probabilities of their
    first `frames` frames (16 for the published network)."""
    frames = network.config.frames
    run = _batched(network, lambda clips: resize_and_centre_crop(clips, network.config.size),
                   lambda logits: jax.nn.softmax(logits, axis=-1), batch)

    def classify(clips) -> np.ndarray:
        clips = _check_clips(clips)
        if clips.shape[1] < frames:
            raise ValueError(f"C3D reads {frames} frames; the clips have {clips.shape[1]}.")
        return run(clips[:, :frames])

    return classify

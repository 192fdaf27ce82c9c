"""MultiDiffusion over time (Bar-Tal et al. 2023, as Lumiere's SSR uses it).

A clip longer than the denoiser's window is cut into overlapping windows of whole frames; the
denoiser runs on every window at once (`jax.vmap`, or `chunk` windows at a time), and each frame
gets the mean of the predictions of the windows that hold it. Done at every sampling step, this
is the least-squares reconciliation of the windows' predictions, so neighbouring windows agree
where they overlap and no seam is left at window boundaries.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """First frame of every window: 0, stride, 2 * stride, ..., with the last window anchored at
    the clip's end (so every frame is covered). Refuses windows longer than the clip and strides
    that are not in 1..window (a larger stride would leave frames no window covers)."""
    if window < 1 or num_frames < 1:
        raise ValueError(f"A window of {window} frames over a clip of {num_frames}: both must be "
                         f">= 1.")
    if window > num_frames:
        raise ValueError(f"The window ({window} frames) is longer than the clip ({num_frames} "
                         f"frames): use a window of at most {num_frames} frames.")
    if not 1 <= stride <= window:
        raise ValueError(f"stride={stride} with a window of {window} frames: use 1 <= stride <= "
                         f"{window} (0 never moves; more than the window skips frames).")
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return np.asarray(starts, np.int32)


def temporal_multidiffusion(denoise: Callable, clips, window: int, stride: int, *,
                            chunk: int = 0) -> jax.Array:
    """The per-frame mean of `denoise` over overlapping temporal windows of `clips`.

    denoise(*window_clips) -> (B, window, ...): any denoiser over one window; `clips` is an
    array (B, T, ...) or a tuple of them with the same T (e.g. the noisy clip and the low-res
    clip it is conditioned on), cut into the same windows. chunk > 0 runs at most that many
    windows at a time (less memory); 0 runs them all in one `vmap`. Returns (B, T, ...).
    """
    clips = clips if isinstance(clips, tuple) else (clips,)
    num_frames = clips[0].shape[1]
    if any(c.ndim < 2 or c.shape[1] != num_frames for c in clips):
        raise ValueError(f"Every clip needs the same number of frames on axis 1, got shapes "
                         f"{[c.shape for c in clips]}.")
    if chunk < 0:
        raise ValueError(f"chunk={chunk}: use a positive number of windows, or 0 for all at once.")
    starts = window_starts(num_frames, window, stride)
    frames = starts[:, None] + np.arange(window)[None]                 # (windows, window)
    # (windows, B, window, ...): window w of every clip.
    windows = tuple(jnp.moveaxis(jnp.take(c, frames, axis=1), 1, 0) for c in clips)
    run = lambda args: denoise(*args)
    predictions = (jax.lax.map(run, windows, batch_size=chunk) if chunk else jax.vmap(run)(windows))
    expected = (len(starts), clips[0].shape[0], window)
    if predictions.shape[:3] != expected:
        raise ValueError(f"The denoiser must return (B, window, ...) = {expected[1:]}, got "
                         f"{predictions.shape[1:]}.")
    total = jnp.zeros((num_frames,) + predictions.shape[1:2] + predictions.shape[3:],
                      predictions.dtype)
    total = total.at[frames.reshape(-1)].add(
        jnp.swapaxes(predictions, 1, 2).reshape((-1,) + total.shape[1:]))
    counts = np.bincount(frames.reshape(-1), minlength=num_frames).astype(np.float32)
    mean = total / counts.reshape((-1,) + (1,) * (total.ndim - 1)).astype(total.dtype)
    return jnp.swapaxes(mean, 0, 1)

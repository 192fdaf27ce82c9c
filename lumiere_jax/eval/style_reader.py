"""Reads the render style of shapes-world frames back: plain (filled) or outlined.

An outlined shape covers only a band inside its outline, so the object's pixels fill a smaller
part of the silhouette they enclose (holes filled) than a plain shape's do. `fill_ratio` is that
fraction per frame; a frame reads as outlined below OUTLINED_BELOW, a threshold set where the
ground-truth renders of the two styles separate (`tests/test_applications.py` checks it).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

OUTLINED_BELOW = 0.9


def fill_ratio(frames: np.ndarray) -> np.ndarray:
    """(F,) object pixels / filled silhouette pixels of uint8 frames (F, H, W, 3); NaN where no
    object stands out from the background (the median of the border pixels)."""
    frames = np.asarray(frames, np.float64)
    border = np.concatenate([frames[:, [0, -1]].reshape(len(frames), -1, 3),
                             frames[:, :, [0, -1]].reshape(len(frames), -1, 3)], axis=1)
    background = np.median(border, axis=1)[:, None, None]
    distance = np.abs(frames - background).max(axis=-1)
    peak = np.percentile(distance.reshape(len(frames), -1), 99.5, axis=1)
    ratios = np.full(len(frames), np.nan)
    for i, (frame_distance, frame_peak) in enumerate(zip(distance, peak)):
        if frame_peak < 64:
            continue
        mask = frame_distance > 0.5 * frame_peak
        filled = ndimage.binary_fill_holes(mask)
        ratios[i] = mask.sum() / max(filled.sum(), 1)
    return ratios


def outlined_fraction(clips: np.ndarray) -> float:
    """Fraction of clips (N, T, H, W, 3) whose frames mostly read as outlined."""
    clips = np.asarray(clips)
    votes = []
    for clip in clips:
        ratios = fill_ratio(clip)
        seen = ratios[~np.isnan(ratios)]
        votes.append(bool(len(seen)) and float(np.mean(seen < OUTLINED_BELOW)) > 0.5)
    return float(np.mean(votes))

"""Reads the render style of shapes-world frames back: plain (filled) or outlined.

An outlined shape is a thin band inside its outline, so almost none of its pixels lie inside the
object with all four neighbours in it too, while a filled shape's do (a third or more, even for
small shapes at 32 px). `interior_fraction` is that fraction per frame; a frame reads as
outlined below OUTLINED_BELOW, set between the two styles' ground-truth renders (100 validation
clips: plain frames >= 0.18, 1st percentile 0.27; outlined frames <= 0.21, 99th percentile
0.12). Broken or unclosed strokes read as outlined too, which a hole-filling test would miss.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

OUTLINED_BELOW = 0.2


def object_masks(frames: np.ndarray) -> list[np.ndarray | None]:
    """Per uint8 frame (F, H, W, 3): the pixels far from the background (the median of the
    border pixels), or None where nothing stands out."""
    frames = np.asarray(frames, np.float64)
    border = np.concatenate([frames[:, [0, -1]].reshape(len(frames), -1, 3),
                             frames[:, :, [0, -1]].reshape(len(frames), -1, 3)], axis=1)
    background = np.median(border, axis=1)[:, None, None]
    distance = np.abs(frames - background).max(axis=-1)
    peak = np.percentile(distance.reshape(len(frames), -1), 99.5, axis=1)
    return [frame > 0.5 * top if top >= 64 else None for frame, top in zip(distance, peak)]


def interior_fraction(frames: np.ndarray) -> np.ndarray:
    """(F,) fraction of each frame's object pixels whose four neighbours are object pixels too;
    NaN where no object stands out."""
    return np.array([np.nan if mask is None or not mask.any()
                     else ndimage.binary_erosion(mask).sum() / mask.sum()
                     for mask in object_masks(frames)])


def outlined_fraction(clips: np.ndarray) -> float:
    """Fraction of clips (N, T, H, W, 3) whose frames mostly read as outlined."""
    votes = []
    for clip in np.asarray(clips):
        fractions = interior_fraction(clip)
        seen = fractions[~np.isnan(fractions)]
        votes.append(bool(len(seen)) and float(np.mean(seen < OUTLINED_BELOW)) > 0.5)
    return float(np.mean(votes))

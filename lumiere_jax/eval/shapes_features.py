"""A feature extractor for shapes-world clips that needs no weight file, and the "shapes FVD":
the Frechet distance of these features between two sets of clips.

Per frame, the shapes evaluator's measurements (`shapes_evaluator.measure_frames`): object and
background colour, object count and visibility, the square root of the object area, its
centroid and its harmonic shape features (h3, h4, h5). Per clip, over time: their mean and std,
the net drift over the clip (signed: direction of motion, growth), the mean rate of absolute
change and the largest frame-to-frame change (flicker, jitter, jumps) and the mean absolute
second difference (acceleration, so smooth motion differs from erratic motion). Rates are per
clip duration, so temporal incoherence weighs as much as content (colours, shapes) in the
distance. Optionally (`pixel_grid` > 0, default 2) the mean absolute change of the mean colour
of each block of a grid, which sees changes the measurements miss (e.g. blotches appearing away
from the object).

The features are deterministic and computed clip by clip: a clip's vector does not depend on
the other clips it is measured with.
"""
from __future__ import annotations

import numpy as np
from einops import rearrange, reduce

from lumiere_jax.eval import shapes_evaluator
from lumiere_jax.eval.frechet import frechet_distance

FRAME_MEASUREMENTS = ("object_r", "object_g", "object_b", "background_r", "background_g",
                      "background_b", "visible", "objects", "sqrt_area", "cx", "cy", "h3", "h4",
                      "h5")
TEMPORAL_SUMMARIES = ("mean", "std", "drift", "mean_abs_change", "max_abs_change",
                      "mean_abs_acceleration")
PIXEL_GRID = 2
MAX_OBJECTS = 4   # object counts above this are clipped (fragments of a failed sample)


def _check_clips(clips) -> np.ndarray:
    clips = np.asarray(clips)
    if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"clips must be uint8 (N, T, H, W, 3), got {clips.dtype} "
                         f"{clips.shape}.")
    if clips.shape[1] < 3:
        raise ValueError(f"clips need at least 3 frames (second differences), got "
                         f"{clips.shape[1]}.")
    return clips


def _frame_measurements(clips: np.ndarray) -> np.ndarray:
    """(N, T, len(FRAME_MEASUREMENTS)) from the evaluator's per-frame readings."""
    n = len(clips)
    measured = shapes_evaluator.measure_frames(rearrange(clips, "n t h w c -> (n t) h w c"))
    columns = np.concatenate([
        measured["object_rgb"] / 255.0, measured["background_rgb"] / 255.0,
        measured["visible"][:, None].astype(np.float64),
        np.minimum(measured["objects"], MAX_OBJECTS)[:, None].astype(np.float64),
        np.sqrt(np.maximum(measured["area"], 0.0))[:, None],
        measured["cx"][:, None], measured["cy"][:, None], measured["harmonics"]], axis=1)
    return rearrange(columns, "(n t) d -> n t d", n=n)


def _temporal_summaries(series: np.ndarray) -> np.ndarray:
    """(N, T, D) -> (N, len(TEMPORAL_SUMMARIES) * D): statistics over time. Rates are per clip
    duration (a frame step is 1 / (T - 1)), so clips of other lengths are comparable and the
    change between frames weighs as much as the content."""
    steps = series.shape[1] - 1
    change = np.diff(series, axis=1) * steps
    acceleration = np.diff(series, n=2, axis=1) * steps
    return np.concatenate([
        series.mean(axis=1), series.std(axis=1), series[:, -1] - series[:, 0],
        np.abs(change).mean(axis=1), np.abs(change).max(axis=1) / steps,
        np.abs(acceleration).mean(axis=1)], axis=1)


def _pixel_statistics(clips: np.ndarray, grid: int) -> np.ndarray:
    """(N, grid * grid * 3): mean |change| of the block-mean colours a clip duration."""
    height, width = clips.shape[2:4]
    if min(height, width) < grid:
        raise ValueError(f"pixel_grid {grid} is larger than the frames ({height}x{width}).")
    cropped = clips[:, :, :height - height % grid, :width - width % grid] / 255.0
    blocks = reduce(cropped, "n t (g1 h) (g2 w) c -> n t (g1 g2 c)", "mean", g1=grid, g2=grid)
    return np.abs(np.diff(blocks, axis=1)).mean(axis=1) * (clips.shape[1] - 1)


def shapes_feature_names(pixel_grid: int = PIXEL_GRID) -> list[str]:
    """The name of each column of `shapes_clip_features`, e.g. "drift/cx" or
    "pixel_change/0_1_g" (block row 0, column 1, green)."""
    names = [f"{summary}/{measurement}" for summary in TEMPORAL_SUMMARIES
             for measurement in FRAME_MEASUREMENTS]
    return names + [f"pixel_change/{row}_{column}_{channel}" for row in range(pixel_grid)
                    for column in range(pixel_grid) for channel in "rgb"]


def shapes_clip_features(clips, pixel_grid: int = PIXEL_GRID) -> np.ndarray:
    """Feature vectors (N, D) of uint8 clips (N, T >= 3, H, W, 3), D = 84 + 3 * pixel_grid^2
    (no pixel statistics when pixel_grid is 0); columns named by `shapes_feature_names`."""
    clips = _check_clips(clips)
    parts = [_temporal_summaries(_frame_measurements(clips))]
    if pixel_grid:
        parts.append(_pixel_statistics(clips, int(pixel_grid)))
    return np.concatenate(parts, axis=1)


def shapes_fvd(clips_1, clips_2, pixel_grid: int = PIXEL_GRID) -> float:
    """The shapes FVD: Frechet distance between the shapes features of two clip sets (each of
    at least 2 clips; the clip lengths and sizes may differ between the sets)."""
    return frechet_distance(shapes_clip_features(clips_1, pixel_grid),
                            shapes_clip_features(clips_2, pixel_grid))

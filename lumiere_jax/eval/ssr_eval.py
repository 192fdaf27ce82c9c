"""Scores a video super-resolution (SSR) model on ground truth: shapes clips rendered at the
SSR's resolution are shrunk to its input resolution, lifted back over temporal windows, and
compared with the originals.

- `seam_ratio`: the mean frame-to-frame change across window boundaries over the mean change
  inside windows (1 = no seam; independent windows jump at their boundaries).
- PSNR against the ground truth (and, as a floor, of the bilinear enlargement).
- The shapes evaluator's accuracies on the SSR clips and on its low-res inputs.
"""
from __future__ import annotations

import math

import jax
import numpy as np

from lumiere_jax.data import shapes
from lumiere_jax.diffusion.multidiffusion import window_starts
from lumiere_jax.eval import shapes_evaluator
from lumiere_jax.eval.split_sampling import prompts_and_specs, render_clips

ATTRIBUTES = ("colour", "shape", "size", "background", "motion", "speed")


def boundary_pairs(num_frames: int, window: int, stride: int) -> np.ndarray:
    """(T - 1,) bool: whether frames t and t + 1 are covered by different sets of windows (a
    window ends at t or starts at t + 1), i.e. the pair straddles a window boundary."""
    starts = window_starts(num_frames, window, stride)
    covers = np.zeros((len(starts), num_frames), bool)
    for row, start in enumerate(starts):
        covers[row, start:start + window] = True
    return np.any(covers[:, 1:] != covers[:, :-1], axis=0)


def seam_ratio(clips: np.ndarray, window: int, stride: int) -> float:
    """Mean |frame t+1 - frame t| over pairs at window boundaries / the same inside windows,
    for uint8 clips (N, T, H, W, 3); NaN when there are no pairs of one kind."""
    clips = np.asarray(clips, np.float64)
    if clips.ndim != 5:
        raise ValueError(f"clips must be (N, T, H, W, 3), got shape {clips.shape}.")
    change = np.abs(np.diff(clips, axis=1)).mean(axis=(0, 2, 3, 4))  # (T - 1,)
    boundary = boundary_pairs(clips.shape[1], window, stride)
    if boundary.all() or not boundary.any():
        return float("nan")
    return float(change[boundary].mean() / max(change[~boundary].mean(), 1e-12))


def psnr(predicted: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 arrays of the same shape."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"PSNR of shapes {predicted.shape} and {target.shape}.")
    mse = float(np.mean((predicted - target) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def shrink_uint8(clips: np.ndarray, factor: int) -> np.ndarray:
    """(N, T, H, W, 3) uint8 -> (N, T, H / factor, W / factor, 3): each block's mean, rounded."""
    n, t, h, w, c = clips.shape
    blocks = clips.reshape(n, t, h // factor, factor, w // factor, factor, c).astype(np.float64)
    return np.round(blocks.mean(axis=(3, 5))).clip(0, 255).astype(np.uint8)


def enlarge_uint8(clips: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear enlargement of uint8 clips (the floor an SR model must beat)."""
    shape = clips.shape[:2] + (resolution, resolution, clips.shape[-1])
    return np.asarray(jax.image.resize(clips.astype(np.float32), shape, "linear")).round().clip(
        0, 255).astype(np.uint8)


def ground_truth(split: str, num: int, resolution: int, low_resolution: int,
                 frames: int | None):
    """(captions, specs, truth, low_res) for the first `num` captions of `split`: clips
    (N, T, H, W, 3) rendered at `resolution` (the middle frame, (N, H, W, 3), when `frames` is
    None) and the same shrunk to `low_resolution`."""
    captions, specs = prompts_and_specs(split, num)
    if frames is None:
        truth = np.stack([shapes.render_frame(spec, 8, resolution, 16) for spec in specs])
        low_res = shrink_uint8(truth[:, None], resolution // low_resolution)[:, 0]
    else:
        truth = render_clips(specs, resolution, frames)
        low_res = shrink_uint8(truth, resolution // low_resolution)
    return captions, specs, truth, low_res


def evaluate_sr_fidelity(pipeline, low_resolution: int, *, num: int, batch: int, steps: int,
                         frames: int | None = None, split: str = "validation",
                         seed: int = 0) -> dict:
    """What training logs for an SR model (images, or whole clips of `frames` frames): PSNR
    against the ground truth, the bilinear PSNR, and the evaluator's accuracies on the output."""
    captions, specs, truth, low_res = ground_truth(split, num, pipeline.resolution,
                                                   low_resolution, frames)
    lifted = np.concatenate([
        pipeline.sample(captions[i:i + batch], seed=seed + i, steps=steps, frames=frames,
                        conditions={"low_res": low_res[i:i + batch]}, allow_empty=True)
        for i in range(0, num, batch)])
    enlarged = enlarge_uint8(low_res if frames else low_res[:, None], pipeline.resolution)
    score = shapes_evaluator.score_clips if frames else shapes_evaluator.score_frames
    scores = {key: float(value) for key, value in score(lifted, specs, captions).items()
              if not key.startswith("mean_")}
    return dict(scores, psnr=psnr(lifted, truth),
                psnr_bilinear=psnr(enlarged if frames else enlarged[:, 0], truth))


def evaluate_ssr(pipeline, low_resolution: int, *, num: int = 32, batch: int = 8,
                 split: str = "validation", seed: int = 0, frames: int = 16,
                 window: int = 8, stride: int = 4, steps: int | None = None,
                 noise_aug: float | None = None, window_chunk: int = 0,
                 enlarged_start: float | None = None) -> dict:
    """Scores of an SSR `pipeline` (a `ModelSampler`) on the first `num` clips of `split`,
    rendered at its resolution with `frames` frames: the overlapping windows (`stride`) against
    non-overlapping ones (stride = window) for the seam ratio and PSNR, the bilinear PSNR, and
    the evaluator's accuracies on the SSR clips and on their low-res inputs. `window_chunk`
    windows are denoised at a time (0 = all at once)."""
    if frames % window:
        raise ValueError(f"frames ({frames}) must be a multiple of the window ({window}) so the "
                         f"non-overlapping baseline tiles the clip.")
    resolution = pipeline.resolution
    captions, specs, truth, low_res = ground_truth(split, num, resolution, low_resolution, frames)
    lifted = {}
    for name, step in (("overlap", stride), ("separate", window)):
        lifted[name] = np.concatenate([
            pipeline.sample(captions[i:i + batch], seed=seed + i, steps=steps, frames=frames,
                            conditions={"low_res": low_res[i:i + batch]}, noise_aug=noise_aug,
                            enlarged_start=enlarged_start,
                            window=window, stride=step, window_chunk=window_chunk)
            for i in range(0, num, batch)])
    scores = {"split": split, "num": num, "frames": frames, "window": window, "stride": stride,
              "psnr_bilinear": psnr(enlarge_uint8(low_res, resolution), truth)}
    for name, clips in lifted.items():
        scores[f"seam_{name}"] = seam_ratio(clips, window, stride if name == "overlap" else window)
        scores[f"psnr_{name}"] = psnr(clips, truth)
    scores["seam_ground_truth"] = seam_ratio(truth, window, window)
    for name, clips in (("ssr", lifted["overlap"]), ("input", low_res)):
        accuracies = shapes_evaluator.score_clips(clips, specs, captions)
        scores.update({f"{name}_{key}": float(accuracies[key]) for key in ATTRIBUTES + ("all",)})
    return scores

"""Measures the applications on shapes-world cases built from validation clips (ground truth
rendered at the model's size), each case's caption as the prompt. Every figure is taken on the
model's own pixels (`keep_known=False`): copying the known pixels in would make them exact.

- image-to-video: frame 0 given; PSNR of the model's frame 0 against it, the evaluator's
  accuracies on the clips (motion and speed above all: the image shows neither).
- inpainting: the box around everywhere the object goes, hidden in the middle half of the
  frames; PSNR inside the known region, the evaluator's accuracies on the completed clips.
- cinemagraph: frame 0 given, the box around what moves animated; the mean change from frame 0
  outside the box (should be ~0) and inside it (the animation), in pixel levels.
- stylized generation: for each alpha, the outlined fraction (`eval.style_reader`) and the
  evaluator's accuracies of text-to-video clips of the blended model.
- video stylization (SDEdit): ground-truth clips noised to a strength and denoised by a
  (blended) model: the outlined fraction and the evaluator's accuracies (motion kept?).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lumiere_jax.applications.edit import generate_conditioned, stylize_video
from lumiere_jax.data import shapes
from lumiere_jax.eval import shapes_evaluator, style_reader
from lumiere_jax.eval.split_sampling import prompts_and_specs, sample_in_batches
from lumiere_jax.eval.ssr_eval import psnr
from lumiere_jax.models import masks
from lumiere_jax.models.conditional import KNOWN_MASK, KNOWN_VIDEO

APPLICATIONS = ("image_to_video", "inpainting", "cinemagraph")


def cases(split: str, num: int, resolution: int, frames: int):
    """(captions, specs, clips (N, T, H, W, 3) uint8) of the first `num` clips of `split`."""
    captions, specs = prompts_and_specs(split, num)
    clips = np.stack([shapes.render_clip(spec, resolution, frames) for spec in specs])
    return captions, specs, clips


def known_layout(application: str, clip: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: the known pixels of the evaluation case of `application` on `clip`."""
    frames, height, width = clip.shape[:3]
    if application == "image_to_video":
        return np.asarray(masks.first_frame_known(frames, height, width))
    region = np.asarray(masks.moving_region(jnp.asarray(clip, jnp.float32) / 127.5 - 1.0))
    if application == "cinemagraph":
        return np.asarray(masks.cinemagraph_known(jnp.asarray(region), frames))
    if application == "inpainting":
        whole = object_box(clip)
        middle = (np.arange(frames) >= frames // 4) & (np.arange(frames) < frames - frames // 4)
        return ~(whole[None] & middle[:, None, None])
    raise ValueError(f"Unknown application {application!r}; allowed: {APPLICATIONS}.")


def object_box(clip: np.ndarray, margin: int = 1) -> np.ndarray:
    """(H, W): the box, grown by `margin`, around every pixel that differs from the background
    (the clip's corner pixel) in some frame."""
    differs = np.abs(clip.astype(np.int32) - clip[0, 0, 0].astype(np.int32)).max(axis=(0, 3)) > 25
    height, width = differs.shape
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    box = np.zeros((height, width), bool)
    if len(rows):
        box[max(rows[0] - margin, 0):rows[-1] + margin + 1,
            max(cols[0] - margin, 0):cols[-1] + margin + 1] = True
    return box


def application_conditions(application: str, clips: np.ndarray) -> dict:
    """uint8 <C, M> for each clip's evaluation case (a cinemagraph repeats frame 0)."""
    known = np.stack([known_layout(application, clip) for clip in clips])
    source = np.broadcast_to(clips[:, :1], clips.shape) if application == "cinemagraph" else clips
    return {KNOWN_VIDEO: np.where(known[..., None], source, 0).astype(np.uint8),
            KNOWN_MASK: (known[..., None] * 255).astype(np.uint8)}


def masked_psnr(predicted: np.ndarray, target: np.ndarray, where: np.ndarray) -> float:
    """PSNR over the pixels of `where` (N, T, H, W) only."""
    return psnr(predicted[where], target[where])


def evaluate_application(sampler, application: str, *, num: int = 32, batch: int = 8,
                         split: str = "validation", seed: int = 0, **sample_settings) -> dict:
    """The figures of one application (see the module doc) on the first `num` clips of `split`."""
    captions, specs, clips = cases(split, num, sampler.resolution, sampler.default_frames)
    conditions = application_conditions(application, clips)
    generated = np.concatenate([
        generate_conditioned(sampler, captions[i:i + batch],
                             {name: value[i:i + batch] for name, value in conditions.items()},
                             keep_known=False, seed=seed + i, **sample_settings)
        for i in range(0, num, batch)])
    known = conditions[KNOWN_MASK][..., 0] > 0
    scores = {"application": application, "split": split, "num": num}
    accuracies = shapes_evaluator.score_clips(generated, specs, captions)
    scores.update({key: float(value) for key, value in accuracies.items()
                   if not key.startswith("mean_")})
    if application == "image_to_video":
        scores["first_frame_psnr"] = psnr(generated[:, 0], clips[:, 0])
    elif application == "inpainting":
        scores["known_psnr"] = masked_psnr(generated, clips, known)
        scores["hidden_psnr"] = masked_psnr(generated, clips, ~known)
    else:
        change = np.abs(generated.astype(np.float64) - generated[:, :1]).mean(axis=-1)[:, 1:]
        scores["change_outside"] = float(change[known[:, 1:]].mean())
        scores["change_inside"] = float(change[~known[:, 1:]].mean())
        truth = np.abs(clips.astype(np.float64) - clips[:, :1]).mean(axis=-1)[:, 1:]
        scores["truth_change_inside"] = float(truth[~known[:, 1:]].mean())
    return scores


def evaluate_style(sampler, *, num: int = 32, batch: int = 8, split: str = "validation",
                   seed: int = 0, **sample_settings) -> dict:
    """Text-to-video clips of `sampler` (a plain or style-blended STUNet) on `split`'s captions:
    the outlined fraction and the evaluator's accuracies."""
    captions, specs = prompts_and_specs(split, num)
    clips = sample_in_batches(sampler, captions, batch=batch, seed=seed, **sample_settings)
    scores = {key: float(value) for key, value in
              shapes_evaluator.score_clips(clips, specs, captions).items()
              if not key.startswith("mean_")}
    return dict(scores, outlined=style_reader.outlined_fraction(clips), split=split, num=num)


def evaluate_sdedit(pipeline, strength: float, *, num: int = 32, split: str = "validation",
                    seed: int = 0, **sample_settings) -> dict:
    """SDEdit of the first `num` ground-truth clips of `split` at `strength` by `pipeline` (a
    plain or style-blended STUNet): the outlined fraction and the evaluator's accuracies."""
    captions, specs, clips = cases(split, num, pipeline.resolution, pipeline.default_frames)
    edited = np.stack([stylize_video(pipeline, clip, caption, strength, seed=seed + i,
                                     **sample_settings)
                       for i, (clip, caption) in enumerate(zip(clips, captions))])
    scores = {key: float(value) for key, value in
              shapes_evaluator.score_clips(edited, specs, captions).items()
              if not key.startswith("mean_")}
    return dict(scores, outlined=style_reader.outlined_fraction(edited), strength=strength,
                split=split, num=num)

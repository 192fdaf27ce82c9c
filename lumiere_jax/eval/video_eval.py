"""Scores a text-to-video model: sample clips from split captions, read them back, and compare
their distribution with the ground-truth clips of the same captions (the shapes FVD)."""
from __future__ import annotations

import numpy as np

from lumiere_jax.eval import shapes_evaluator
from lumiere_jax.eval.shapes_features import shapes_fvd
from lumiere_jax.eval.split_sampling import evaluate_on_split, render_clips


def score_clips_and_shapes_fvd(clips, specs, captions) -> dict[str, float]:
    """`shapes_evaluator.score_clips`, the motion accuracy of each motion asked for
    (`motion_<motion>`), and `shapes_fvd`: the shapes FVD of the clips against the specs'
    ground truth rendered at the clips' resolution and length (NaN for one clip)."""
    readings = [shapes_evaluator.read_clip(clip) for clip in clips]
    scores = dict(shapes_evaluator.score_readings(readings, specs, captions),
                  **shapes_evaluator.accuracy_by_motion(readings, specs, captions))
    clips = np.asarray(clips)
    if len(clips) < 2:
        return dict(scores, shapes_fvd=float("nan"))
    truth = render_clips(specs, clips.shape[2], clips.shape[1])
    return dict(scores, shapes_fvd=shapes_fvd(clips, truth))


def evaluate_video(pipeline, *, num: int = 128, batch: int = 16, split: str = "validation",
                   seed: int = 0, **sample_kwargs) -> dict:
    """Evaluator accuracies (colour, shape, size, background, motion, speed, all, and motion by
    motion: `motion_<motion>`), the mean
    temporal-consistency figures (`mean_<name>`, NaN when no clip shows an object) and the
    shapes FVD against the ground truth (`shapes_fvd`, NaN for num 1) of clips sampled for the
    first `num` captions of `split`. `pipeline` is any sampler of clips, e.g. a STUNet pipeline
    or `PerFrameT2I`; `sample_kwargs` go to `pipeline.sample` (steps, guidance, sampler,
    frames)."""
    return evaluate_on_split(pipeline, score_clips_and_shapes_fvd, num=num, batch=batch,
                             split=split, seed=seed, **sample_kwargs)

"""Scores a text-to-video model: sample clips from split captions, read them back."""
from __future__ import annotations

from lumiere_jax.eval import shapes_evaluator
from lumiere_jax.eval.split_sampling import evaluate_on_split


def evaluate_video(pipeline, *, num: int = 128, batch: int = 16, split: str = "validation",
                   seed: int = 0, **sample_kwargs) -> dict:
    """Evaluator accuracies (colour, shape, size, background, motion, speed, all) and the mean
    temporal-consistency figures (`mean_<name>`, NaN when no clip shows an object) of clips
    sampled for the first `num` captions of `split`. `sample_kwargs` go to `pipeline.sample`
    (steps, guidance, sampler, frames)."""
    return evaluate_on_split(pipeline, shapes_evaluator.score_clips, num=num, batch=batch,
                             split=split, seed=seed, **sample_kwargs)

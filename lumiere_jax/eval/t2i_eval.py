"""Scores a text-to-image model: sample from validation captions, read the images back."""
from __future__ import annotations

from lumiere_jax.eval import shapes_evaluator
from lumiere_jax.eval.split_sampling import evaluate_on_split, prompts_and_specs  # noqa: F401


def evaluate_t2i(pipeline, *, num: int = 256, batch: int = 64, split: str = "validation",
                 seed: int = 0, **sample_kwargs) -> dict:
    """Evaluator accuracies (colour, shape, size, background, all) of samples for split captions.

    `size` is only indicative: T2I training frames come from any time of a growing or
    shrinking clip, while the caption names the start size.
    """
    return evaluate_on_split(pipeline, shapes_evaluator.score_frames, num=num, batch=batch,
                             split=split, seed=seed, **sample_kwargs)

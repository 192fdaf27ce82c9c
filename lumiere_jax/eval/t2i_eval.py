"""Scores a text-to-image model: sample from validation captions, read the images back."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.eval import shapes_evaluator


def prompts_and_specs(split: str, num: int):
    """The first `num` captions of a dataset split with the specs they describe."""
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}.")
    captions, specs = [], []
    for index in range(num):
        seed = tfds_shapes.example_seed(split, index)
        captions.append(tfds_shapes.render_example(seed, split, 16, 2)["caption"])
        specs.append(shapes.spec_for_seed(seed, split))
    return captions, specs


def evaluate_t2i(pipeline, *, num: int = 256, batch: int = 64, split: str = "validation",
                 seed: int = 0, **sample_kwargs) -> dict:
    """Evaluator accuracies (colour, shape, size, background, all) of samples for split captions.

    `size` is only indicative: T2I training frames come from any time of a growing or
    shrinking clip, while the caption names the start size.
    """
    captions, specs = prompts_and_specs(split, num)
    images = []
    for start in tqdm(range(0, num, batch), desc="sampling", unit="batch"):
        chunk = captions[start:start + batch]
        images.append(pipeline.sample(chunk, seed=seed + start, **sample_kwargs))
    images = np.concatenate(images)
    scores = shapes_evaluator.score_frames(images, specs)
    return {"split": split, "num": num, **{k: float(v) for k, v in scores.items()}}

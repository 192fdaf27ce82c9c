"""Samples a model on a dataset split's captions, batch by batch, and scores what comes back."""
from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm import tqdm

from lumiere_jax.data import shapes, tfds_shapes


def prompts_and_specs(split: str, num: int):
    """The first `num` captions of a dataset split with the specs they describe."""
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}.")
    pairs = [tfds_shapes.caption_for_seed(tfds_shapes.example_seed(split, index), split)
             for index in range(num)]
    return [caption for caption, _ in pairs], [spec for _, spec in pairs]


def render_clips(specs, resolution: int, frames: int) -> np.ndarray:
    """The ground truth of specs: uint8 clips (N, frames, resolution, resolution, 3)."""
    return np.stack([shapes.render_clip(spec, resolution, frames) for spec in specs])


def sample_in_batches(pipeline, prompts, *, batch: int, seed: int = 0, **sample_kwargs) -> np.ndarray:
    """One sample per prompt, `batch` prompts per call (batch starting at i uses seed + i)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    samples = []
    for start in tqdm(range(0, len(prompts), batch), desc="sampling", unit="batch"):
        chunk = prompts[start:start + batch]
        samples.append(pipeline.sample(chunk, seed=seed + start, **sample_kwargs))
    return np.concatenate(samples)


def evaluate_on_split(pipeline, score: Callable, *, num: int, batch: int, split: str, seed: int,
                      **sample_kwargs) -> dict:
    """`score(samples, specs, captions)` of samples for the first `num` captions of `split`
    (each attribute scored where the caption names it), plus split/num."""
    captions, specs = prompts_and_specs(split, num)
    samples = sample_in_batches(pipeline, captions, batch=batch, seed=seed, **sample_kwargs)
    scores = score(samples, specs, captions)
    return {"split": split, "num": num, **{k: float(v) for k, v in scores.items()}}

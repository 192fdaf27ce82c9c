"""What a video model's trained layers add, noise level by noise level: its denoising loss on true
shapes clips against the same model with the weights its stage trains put back at their
initialisation. For a STUNet that reference is its frozen T2I run per frame (the temporal layers
start as the identity), so a ratio above 1 at some t says the temporal layers make the
denoising worse there than no temporal layers at all (docs/training.md section 12)."""
from __future__ import annotations

import types

import numpy as np
from flax import nnx

from lumiere_jax.eval.caption_swap import per_example_losses
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import ModelSettings


def with_trained_weights_reset(model: nnx.Module, settings: ModelSettings) -> nnx.Module:
    """A copy of `model` whose trainable weights (`model.trainable`) are freshly initialised and
    whose other weights (the frozen backbone and text encoder) are `model`'s."""
    if not model.is_video:
        raise ValueError(f"The temporal gain compares a video model with its temporal layers at "
                         f"initialisation; this is a {settings.kind!r} model (an image model).")
    reset = build_model(settings)
    nnx.update(reset, nnx.state(model, nnx.Not(model.trainable)))
    return reset


def loss_by_t(pipeline, settings: ModelSettings, clips: np.ndarray, captions: list[str],
              times, seed: int = 0) -> dict[float, dict[str, float]]:
    """For each t: the mean loss of the model (`trained`), of the model with its trained weights
    reset (`reset`) and their `ratio`, on uint8 `clips` (N, T, H, W, 3) with their captions,
    the same noise for both. `pipeline` is a loaded video pipeline (model, diffusion, tokenize)."""
    reset = types.SimpleNamespace(model=with_trained_weights_reset(pipeline.model, settings),
                                  diffusion=pipeline.diffusion, tokenize=pipeline.tokenize)
    table = {}
    for t in times:
        trained = float(per_example_losses(pipeline, clips, captions, t, seed).mean())
        reference = float(per_example_losses(reset, clips, captions, t, seed).mean())
        table[float(t)] = dict(trained=trained, reset=reference, ratio=trained / reference)
    return table

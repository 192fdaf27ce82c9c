"""Sampling a text-conditioned model (any kind of the models protocol): prompts -> images or clips.

The pipeline (exports and run checkpoints) and the trainer's in-loop evaluation (EMA weights of
the running state) both sample through `ModelSampler`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax.diffusion.guidance import classifier_free_guidance
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.models import tokenizer
from lumiere_jax.settings import DiffusionSettings, SampleSettings


def to_uint8(x) -> np.ndarray:
    """Model range [-1, 1] -> uint8 pixels."""
    return np.asarray(jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8))


@functools.partial(jax.jit, static_argnames=("graphdef", "shape", "schedule", "prediction", "steps",
                                               "sampler", "guidance", "dynamic_threshold", "progress"))
def sample_model(graphdef, state, tokens, rng, *, shape, schedule, prediction, steps, sampler,
                 guidance, dynamic_threshold, progress):
    """x0 (shape) for `tokens`, with classifier-free guidance (the conditional and the null
    prompt batched into one call of the model per step)."""
    model = nnx.merge(graphdef, state)
    cond = model.encode_text(tokens)
    denoise = lambda x_t, t, c: model.denoise(x_t, t, c)
    if guidance == 1.0:
        predict = lambda x_t, t: denoise(x_t, t, cond)
    else:
        null = jnp.asarray(tokenizer.tokenize("", tokens.shape[1], allow_empty=True))[None]
        predict = classifier_free_guidance(denoise, cond, model.encode_text(null), guidance)
    return sample(predict, shape, rng, schedule, steps=steps, sampler=sampler,
                  prediction=prediction, dynamic_threshold=dynamic_threshold, progress=progress)


class ModelSampler:
    """A model (T2I or video), split for jit, with its diffusion and sampling settings."""

    def __init__(self, graphdef, state, model, diffusion: DiffusionSettings,
                 sample_defaults: SampleSettings, default_frames: int):
        self.graphdef, self.state, self.model = graphdef, state, model
        self.diffusion, self.sample_defaults = diffusion, sample_defaults
        self.default_frames = default_frames

    @property
    def is_video(self) -> bool:
        return self.model.is_video

    @property
    def resolution(self) -> int:
        unet = self.model.spatial.unet if self.is_video else self.model.unet
        return unet.config.resolution

    def tokenize(self, prompts) -> np.ndarray:
        return tokenizer.tokenize_batch(prompts, self.model.text_encoder.config.max_length)

    def sample(self, prompts, *, seed: int = 0, steps: int | None = None,
               guidance: float | None = None, sampler: str | None = None,
               frames: int | None = None, progress: bool = False) -> np.ndarray:
        """One sample per prompt: uint8 images (N, H, W, 3), or clips (N, T, H, W, 3) from a
        video model (T = `frames`, default the training length; the whole clip in one pass)."""
        defaults = self.sample_defaults
        tokens = self.tokenize(prompts)
        shape = (tokens.shape[0], self.resolution, self.resolution, 3)
        if self.is_video:
            frames = self.default_frames if frames is None else int(frames)
            self.model.check_frame_count(frames)
            shape = shape[:1] + (frames,) + shape[1:]
        elif frames is not None:
            raise ValueError("frames is only for video models; this checkpoint is an image model.")
        x = sample_model(
            self.graphdef, self.state, jnp.asarray(tokens), jax.random.key(seed), shape=shape,
            schedule=self.diffusion.noise_schedule(), prediction=self.diffusion.prediction,
            steps=int(steps or defaults.steps), sampler=sampler or defaults.sampler,
            guidance=float(defaults.guidance if guidance is None else guidance),
            dynamic_threshold=defaults.dynamic_threshold or None, progress=progress)
        return to_uint8(x)

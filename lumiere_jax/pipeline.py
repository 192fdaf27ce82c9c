"""What the CLI and notebooks call: load shipped or trained models and sample from them."""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax import diffusion
from lumiere_jax.models import tokenizer
from lumiere_jax.models.io import CheckpointError, load_exported
from lumiere_jax.settings import DiffusionSettings, SampleSettings, from_config

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
SHIPPED = {"t2i": os.path.join(WEIGHTS_DIR, "t2i_shapes"),
           "stunet": os.path.join(WEIGHTS_DIR, "stunet_shapes")}


def shipped_checkpoint(name: str) -> str:
    """Path of a model shipped inside the package."""
    if name not in SHIPPED:
        raise CheckpointError(f"No shipped model {name!r}; shipped: {sorted(SHIPPED)}.")
    return SHIPPED[name]


def resolve_checkpoint(path: str) -> str:
    """An export dir as given, or a training workdir's `export/` subfolder."""
    path = os.fspath(path)
    if os.path.isdir(os.path.join(path, "export")) and not os.path.isfile(os.path.join(path, "config.json")):
        return os.path.join(path, "export")
    return path


def to_uint8(x) -> np.ndarray:
    """Model range [-1, 1] -> uint8 pixels."""
    return np.asarray(jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8))


@functools.partial(jax.jit, static_argnames=("graphdef", "shape", "schedule", "prediction", "steps",
                                               "sampler", "guidance", "dynamic_threshold", "progress"))
def _sample(graphdef, state, tokens, rng, *, shape, schedule, prediction, steps, sampler,
                   guidance, dynamic_threshold, progress):
    model = nnx.merge(graphdef, state)
    cond = model.encode_text(tokens)
    denoise = lambda x_t, t, c: model.denoise(x_t, t, c)
    if guidance == 1.0:
        predict = lambda x_t, t: denoise(x_t, t, cond)
    else:
        null = jnp.asarray(tokenizer.tokenize("", tokens.shape[1], allow_empty=True))[None]
        predict = diffusion.classifier_free_guidance(denoise, cond, model.encode_text(null), guidance)
    return diffusion.sample(predict, shape, rng, schedule, steps=steps, sampler=sampler,
                            prediction=prediction, dynamic_threshold=dynamic_threshold,
                            progress=progress)


class LumierePipeline:
    """A loaded T2I or STUNet model with its config: prompts -> uint8 images or clips."""

    def __init__(self, model, config):
        self.model = model
        self.config = config
        self.diffusion = from_config(DiffusionSettings, config.diffusion, "diffusion")
        self.sample_defaults = from_config(SampleSettings, config.get("sample", {}), "sample")
        self.graphdef, self.state = nnx.split(model)

    @classmethod
    def from_checkpoint(cls, path: str | None = None, default: str = "t2i") -> "LumierePipeline":
        """Loads an exported checkpoint (default: the shipped model named `default`), or the EMA
        weights of a training workdir's latest checkpoint when it has no export yet."""
        path = resolve_checkpoint(path) if path else shipped_checkpoint(default)
        if os.path.isdir(os.path.join(path, "checkpoints")):
            from lumiere_jax.train.loop import load_run_ema
            return cls(*load_run_ema(path))
        model, config = load_exported(path)
        return cls(model, config)

    @property
    def is_video(self) -> bool:
        return hasattr(self.model, "check_frame_count")

    @property
    def resolution(self) -> int:
        unet = self.model.spatial.unet if self.is_video else self.model.unet
        return unet.config.resolution

    @property
    def default_frames(self) -> int:
        """The clip length the video model was trained on."""
        return int(self.config.data.num_frames)

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
        threshold = defaults.dynamic_threshold or None
        x = _sample(
            self.graphdef, self.state, jnp.asarray(tokens), jax.random.key(seed), shape=shape,
            schedule=self.diffusion.noise_schedule(), prediction=self.diffusion.prediction,
            steps=int(steps or defaults.steps), sampler=sampler or defaults.sampler,
            guidance=float(defaults.guidance if guidance is None else guidance),
            dynamic_threshold=threshold, progress=progress)
        return to_uint8(x)

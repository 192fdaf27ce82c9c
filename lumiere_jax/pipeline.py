"""What the CLI and notebooks call: load shipped or trained models and sample from them."""
from __future__ import annotations

import os

from flax import nnx

from lumiere_jax.checkpoints.exported import CheckpointError, load_exported
from lumiere_jax.checkpoints.paths import WEIGHTS_DIR
from lumiere_jax.diffusion.model_sampling import ModelSampler
from lumiere_jax.train.loop import load_run_ema
from lumiere_jax.train.settings import parse_run_config

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


class LumierePipeline(ModelSampler):
    """A loaded model of any kind (T2I, STUNet, SSR) with its config: prompts (and, for the SSR
    model, low-resolution clips) -> uint8 images or clips (`sample`, see `ModelSampler`)."""

    def __init__(self, model, config):
        self.config = config
        run = parse_run_config(config)
        graphdef, state = nnx.split(model)
        super().__init__(graphdef, state, model, run.diffusion, run.sample, run.data.num_frames)

    @classmethod
    def from_checkpoint(cls, path: str | None = None, default: str = "t2i") -> "LumierePipeline":
        """Loads an exported checkpoint (default: the shipped model named `default`), or the EMA
        weights of a training workdir's latest checkpoint when it has no export yet."""
        path = resolve_checkpoint(path) if path else shipped_checkpoint(default)
        if os.path.isdir(os.path.join(path, "checkpoints")):
            return cls(*load_run_ema(path))
        model, config = load_exported(path)
        return cls(model, config)

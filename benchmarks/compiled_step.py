"""The trainer's own step, compiled for a config on a fixed random batch: what the train-step
benchmark times and the profile traces."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from benchmarks import measure
from lumiere_jax.parallel import batch as batching
from lumiere_jax.text.tokenizer import VOCAB_SIZE
from lumiere_jax.train.settings import RunSettings, parse_run_config
from lumiere_jax.train.setup import TrainSetup, setup


@dataclasses.dataclass
class CompiledStep:
    """The run's setup, its global batch on the mesh, the compiled step and its compile time."""
    run: RunSettings
    train_setup: TrainSetup
    batch: dict
    compiled: jax.stages.Compiled
    compile_s: float


def random_batch(train_setup: TrainSetup, seed: int = 0) -> dict:
    """A fixed batch of this process's rows: uniform uint8 frames and in-vocabulary tokens."""
    shapes = {name: spec.shape for name, spec in train_setup.abstract_batch().items()}
    rows = shapes["frames"][0] // train_setup.row_group.count
    rng = np.random.default_rng(seed)
    return {"frames": rng.integers(0, 256, (rows,) + shapes["frames"][1:], dtype=np.uint8),
            "tokens": rng.integers(1, VOCAB_SIZE, (rows,) + shapes["tokens"][1:], dtype=np.int32)}


def compile_train_step(config) -> CompiledStep:
    """The trainer's setup (`lumiere_jax.train.setup`) for `config` and its step compiled ahead of
    time (the same sharded state, donated buffers and optimizer as a training run)."""
    run = parse_run_config(config)
    train_setup = setup(run)
    batch = batching.global_batch(random_batch(train_setup), train_setup.batch_shardings,
                                  train_setup.row_group)
    compiled, compile_s = measure.compile_timed(train_setup.step.lower(train_setup.state, batch))
    return CompiledStep(run, train_setup, batch, compiled, compile_s)

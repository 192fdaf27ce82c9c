"""The training loop: data, model, state, resume, jitted steps, metrics, checkpoints, export."""
from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

from lumiere_jax import settings as S
from lumiere_jax.checkpoints.exported import restore_params, save_exported
from lumiere_jax.checkpoints.pretrained import build_pretrained
from lumiere_jax.data import pipeline, tfds_shapes
from lumiere_jax.eval.in_training import evaluate_weights
from lumiere_jax.models.build import build_model
from lumiere_jax.names import TIME
from lumiere_jax.nn.frame_sharding import FrameSharding
from lumiere_jax.parallel import batch as batching
from lumiere_jax.parallel.mesh import make_mesh
from lumiere_jax.parallel.partition import shard_train_state, state_shardings
from lumiere_jax.train import metrics as M
from lumiere_jax.train.checkpointing import RunCheckpoints
from lumiere_jax.train.settings import RunSettings, parse_run_config
from lumiere_jax.train.state import create_train_state, learning_rate_schedule, make_optimizer
from lumiere_jax.train.step import jit_sharded_train_step, make_train_step


class TrainingDiverged(FloatingPointError):
    """The loss or gradients became NaN or infinite."""


def default_data_dir() -> str:
    return os.environ.get("LUMIERE_DATA_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "lumiere_jax", "datasets"))


def prepare_dataset(data: S.DataSettings):
    """The shapes dataset's builder. With several processes, process 0 builds it first while the
    others wait; each then opens it (and builds it too where its data_dir is a local disk)."""
    prepare = lambda: tfds_shapes.prepare_shapes_dataset(
        data.data_dir or default_data_dir(), data.resolution, data.num_frames,
        data.num_train, data.num_validation, data.num_heldout)
    if jax.process_count() == 1:
        return prepare()
    if jax.process_index() == 0:
        prepare()
    multihost_utils.sync_global_devices("lumiere_jax: shapes dataset prepared")
    return prepare()


def make_train_iterator(data: S.DataSettings, text_length: int, seed: int,
                        process_index: int | None = None, process_count: int | None = None):
    """Builds (if needed) the shapes dataset and returns a checkpointable iterator over one
    process's share of it (default: this process's)."""
    source = pipeline.make_data_source(prepare_dataset(data), "train")
    return pipeline.make_iterator(
        source, mode=data.mode, batch_size=data.batch_size, seed=data.seed + seed,
        text_length=text_length, worker_count=data.worker_count, process_index=process_index,
        process_count=process_count)


def check_data_fits_model(data: S.DataSettings, model, time_shards: int = 1) -> None:
    """Video models need whole clips of a length their temporal strides (and time shards) divide."""
    if model.is_video:
        if data.mode != "clips":
            raise S.ConfigError("A video model trains on whole clips: set config.data.mode='clips'.")
        model.check_frame_count(data.num_frames, time_shards)
    elif data.mode != "frames":
        raise S.ConfigError("An image model trains on single frames: set config.data.mode='frames'.")


def check_mesh_fits_data(data: S.DataSettings, mesh) -> None:
    """Only clips have frames to split over the mesh's time axis."""
    if mesh.shape[TIME] > 1 and data.mode != "clips":
        raise S.ConfigError(f"config.mesh.time={mesh.shape[TIME]} splits clips over devices, but "
                            f"single frames (an image model's data) have no time axis: set "
                            f"config.mesh.time=1.")
    batching.check_whole_clips_per_process(mesh)


def check_finite(step: int, metrics: dict) -> None:
    bad = [name for name, value in metrics.items() if not math.isfinite(float(value))]
    if bad:
        raise TrainingDiverged(
            f"Training diverged at step {step}: {', '.join(bad)} became NaN/inf. The last good "
            f"checkpoint is kept; lower optim.learning_rate or raise optim.warmup_steps and resume.")


def setup(config: ml_collections.ConfigDict):
    """(run settings, graphdef, fresh TrainState on the mesh, train step, train data iterator).

    The train step takes this process's batch (numpy, `frames` and `tokens`), assembles the
    global batch on the mesh and runs the jitted, sharded step.
    """
    run = parse_run_config(config)
    mesh = make_mesh(run.mesh)
    check_mesh_fits_data(run.data, mesh)
    model = build_pretrained(run.model, seed=run.seed)
    check_data_fits_model(run.data, model, mesh.shape[TIME])
    if mesh.shape[TIME] > 1:
        model.shard_frames(FrameSharding(mesh))
    optimizer = make_optimizer(run.optim)
    graphdef, state = create_train_state(model, optimizer, run.seed, model.trainable)
    shardings = state_shardings(state, mesh, run.mesh.rules)
    state = shard_train_state(state, mesh, run.mesh.rules)
    batch_shardings = batching.train_batch_shardings(
        mesh, run.data.batch_size * jax.process_count(), clips=run.data.mode == "clips")
    jitted = jit_sharded_train_step(make_train_step(graphdef, run.diffusion, run.optim, optimizer),
                                    mesh, shardings, batch_shardings)

    def train_step(state, local_batch):
        return jitted(state, batching.global_batch(local_batch, batch_shardings))

    iterator = make_train_iterator(run.data, run.model.text_encoder.max_length, run.seed)
    return run, graphdef, state, train_step, iterator


def train(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Trains (resuming from the workdir's latest checkpoint) and exports EMA weights.

    Returns the export directory `workdir/export`.
    """
    run, graphdef, state, train_step, iterator = setup(config)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)

    checkpoints = RunCheckpoints(workdir, run.checkpoint.every_steps, run.checkpoint.max_to_keep)
    state, resumed, resumed_metadata = checkpoints.resume_latest(state, iterator)
    if resumed is None and run.checkpoint.init_from:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state.params)
        params = restore_params(run.checkpoint.init_from, abstract)
        state = state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))
        print(f"Initialised from {run.checkpoint.init_from}.", flush=True)

    lr_schedule = learning_rate_schedule(run.optim)
    writer = M.MetricsWriter(workdir)
    metadata = {"config": config.to_dict(), "jax_version": jax.__version__}
    start = int(state.step)
    total = run.optim.total_steps
    timer = M.StepTimer(start, total)
    examples_per_step = run.data.batch_size * jax.process_count()
    interval_start = (start, time.perf_counter())
    evaluating = run.log.eval_every_steps > 0
    # Wall time of the training steps alone (no evaluation, no first compile), over every leg.
    train_seconds = float(resumed_metadata.get("train_seconds", 0.0))
    for step in range(start, total):
        step_start = time.perf_counter()
        batch = next(iterator)
        state, step_metrics = train_step(state, {"frames": batch["frames"], "tokens": batch["tokens"]})
        done = step + 1
        step_metrics = jax.device_get(step_metrics)
        check_finite(done, step_metrics)
        if done > start + 1:
            train_seconds += time.perf_counter() - step_start
        timer.tick(done)
        if done % run.log.every_steps == 0 or done == total:
            now = time.perf_counter()
            seconds = now - interval_start[1]
            record = dict(step_metrics, lr=float(lr_schedule(step)),
                          examples_per_s=examples_per_step * (done - interval_start[0]) / seconds)
            writer.write(done, record)
            interval_start = (done, now)
            print(M.progress_line(done, total, record, timer), flush=True)
        if evaluating and (done % run.log.eval_every_steps == 0 or done == total):
            scores = evaluate_weights(graphdef, state.ema_params, state.frozen, run,
                                      num=run.log.eval_num, steps=run.log.eval_steps,
                                      batch=run.log.eval_batch)
            scores["train_minutes"] = train_seconds / 60.0
            writer.write(done, scores)
            print(f"eval at step {done}: " + ", ".join(
                f"{name[5:]} {value:.3f}" for name, value in scores.items()
                if name.startswith("eval_") and name != "eval_seconds"), flush=True)
            interval_start = (interval_start[0], interval_start[1] + scores["eval_seconds"])
        metadata["train_seconds"] = train_seconds
        checkpoints.save(done, state, iterator, metadata, force=(done == total))
    checkpoints.close()

    export_dir = os.path.join(workdir, "export")
    ema_model = nnx.merge(graphdef, state.ema_params, state.frozen)
    save_exported(export_dir, nnx.state(ema_model, nnx.Param), config.to_dict())
    return export_dir


def load_run_ema(workdir: str, step: int | None = None):
    """(model with EMA weights, config) from a training workdir's checkpoint (latest by default)."""
    checkpoints = RunCheckpoints(workdir, every_steps=1, max_to_keep=1)
    try:
        step = checkpoints.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoints under {checkpoints.directory}.")
        config = ml_collections.ConfigDict(checkpoints.restore_metadata(step)["config"])
        run = parse_run_config(config)
        model = build_model(run.model, seed=run.seed)
        graphdef, state = create_train_state(model, make_optimizer(run.optim), run.seed,
                                             model.trainable)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        state = checkpoints.restore_state(step, abstract)
    finally:
        checkpoints.close()
    return nnx.merge(graphdef, state.ema_params, state.frozen), config

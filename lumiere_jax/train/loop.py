"""The training loop: resume, jitted steps, metrics, in-training evaluation, checkpoints, export.

Everything the loop runs comes from one `train.setup.setup` (the same the ahead-of-time plans
compile)."""
from __future__ import annotations

import math
import os
import time

import jax
import ml_collections
from flax import nnx

from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.eval.in_training import evaluate_weights
from lumiere_jax.models.build import build_model
from lumiere_jax.train import metrics as M
from lumiere_jax.train.checkpointing import RunCheckpoints
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup
from lumiere_jax.train.state import create_train_state, learning_rate_schedule, make_optimizer


class TrainingDiverged(FloatingPointError):
    """The loss or gradients became NaN or infinite."""


def check_finite(step: int, metrics: dict) -> None:
    bad = [name for name, value in metrics.items() if not math.isfinite(float(value))]
    if bad:
        raise TrainingDiverged(
            f"Training diverged at step {step}: {', '.join(bad)} became NaN/inf. The last good "
            f"checkpoint is kept; lower optim.learning_rate or raise optim.warmup_steps and resume.")


def train(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Trains (resuming from the workdir's latest checkpoint) and exports EMA weights.

    Returns the export directory `workdir/export`.
    """
    run_setup = setup(parse_run_config(config), initialize=False)
    run, graphdef = run_setup.run, run_setup.graphdef
    iterator = run_setup.make_iterator()
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)

    checkpoints = RunCheckpoints(workdir, run.checkpoint.every_steps, run.checkpoint.max_to_keep,
                                 cleanup=True)
    # A resumed run restores straight into the sharded abstract state; only a new run creates
    # (and initialises) the fresh one.
    state, resumed_metadata = checkpoints.resume_latest(run_setup.abstract_state(), iterator)
    if resumed_metadata is None:
        state, resumed_metadata = run_setup.initialize(), {}

    lr_schedule = learning_rate_schedule(run.optim)
    writer = M.MetricsWriter(workdir)
    # Steps logged after the restored checkpoint (by a run that was killed) are run again.
    writer.drop_after(int(state.step))
    metadata = {"config": config.to_dict(), "jax_version": jax.__version__}
    start = int(state.step)
    total = run.optim.total_steps
    timer = M.StepTimer(start, total)
    examples_per_step = run_setup.global_batch
    interval_start = (start, time.perf_counter())
    evaluating = run.log.eval_every_steps > 0
    # Wall time of the training steps alone (no evaluation, no first compile), over every leg.
    train_seconds = float(resumed_metadata.get("train_seconds", 0.0))
    clock = None  # the training clock's last reading; None until the compiling step is done
    for step in range(start, total):
        batch = next(iterator)
        state, step_metrics = run_setup.train_step(
            state, {"frames": batch["frames"], "tokens": batch["tokens"]})
        done = step + 1
        logging = done % run.log.every_steps == 0 or done == total
        eval_due = evaluating and (done % run.log.eval_every_steps == 0 or done == total)
        saving = done == total or checkpoints.due(done)
        # The host waits for the device only where it needs the step's results: to log, to
        # evaluate, before a checkpoint (never save a diverged state) and after the compiling
        # step; between those, steps are dispatched while the previous ones run.
        if not (logging or eval_due or saving or clock is None):
            continue
        step_metrics = jax.device_get(step_metrics)
        check_finite(done, step_metrics)
        now = time.perf_counter()
        if clock is not None:
            train_seconds += now - clock
        clock = now
        timer.tick(done)
        if logging:
            seconds = now - interval_start[1]
            record = dict(step_metrics, lr=float(lr_schedule(step)),
                          examples_per_s=examples_per_step * (done - interval_start[0]) / seconds)
            writer.write(done, record)
            interval_start = (done, now)
            print(M.progress_line(done, total, record, timer), flush=True)
        if eval_due:
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
        clock = time.perf_counter()  # evaluation and checkpoint writes are not training time
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
        built = {}

        def fresh_state():
            model = build_model(run.model, seed=run.seed)
            built["graphdef"], state = create_train_state(model, make_optimizer(run.optim),
                                                          run.seed, model.trainable)
            return state

        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                jax.eval_shape(fresh_state))
        state = checkpoints.restore_state(step, abstract)
        graphdef = built["graphdef"]
    finally:
        checkpoints.close()
    return nnx.merge(graphdef, state.ema_params, state.frozen), config

"""Speed of one training step for any config: compile time, then steps/s, clips/s and frames/s,
XLA's FLOPs, achieved TFLOP/s and MFU, and memory.

    python benchmarks/train_step.py --config configs/stunet_shapes.py [--config.x=y ...] \
        [--steps 5] [--rounds 2] [--jsonl results.jsonl] [--label NAME]

It runs the trainer's own setup and jitted step (`lumiere_jax.train.setup`): the same sharded
state, donated buffers and optimizer, on a fixed random batch (data loading is not timed).
Compile time is measured apart; step time is the median of `--rounds` round medians of
`--steps` steps each, after one warm-up step, each step waited for, with the minimum beside it;
`pipelined_s` is the time a step when steps are dispatched back to back and waited for once (as
the trainer runs between its logging steps). The record is printed and appended as a JSON line
to `--jsonl`.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks import measure  # noqa: E402
from benchmarks.compiled_step import compile_train_step  # noqa: E402
from lumiere_jax.settings import ConfigError, as_dict  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds of --steps steps.")
_JSONL = flags.DEFINE_string("jsonl", None, "Append the record to this JSON-lines file.")
_LABEL = flags.DEFINE_string("label", "", "A name for this run in the record.")
flags.mark_flags_as_required(["config"])


def benchmark(config, steps: int, rounds: int, label: str = "") -> dict:
    """The record of one config's train step (see the module docstring)."""
    step = compile_train_step(config)
    run, train_setup = step.run, step.train_setup
    costs = measure.compiled_costs(step.compiled)
    holder = {"state": train_setup.state}

    def one_step():
        holder["state"], metrics = step.compiled(holder["state"], step.batch)
        return holder["state"], metrics

    timing = measure.time_rounds(one_step, steps, rounds)
    timing["pipelined_s"] = measure.time_pipelined(one_step, steps, rounds)
    global_batch = train_setup.global_batch
    frames = global_batch * (run.data.num_frames if run.data.mode == "clips" else 1)
    seconds = timing["median_s"]
    trainable = sum(x.size for x in jax.tree.leaves(train_setup.state.params))
    return {"benchmark": "train_step", "label": label, "model": run.model.kind,
            "global_batch": global_batch, "frames_per_step": frames,
            "resolution": run.data.resolution, "trainable_params": int(trainable),
            "compute": as_dict(config.get("compute", {})), "compile_s": step.compile_s,
            **timing, "steps_per_s": 1.0 / seconds,
            ("clips_per_s" if run.data.mode == "clips" else "images_per_s"): global_batch / seconds,
            "frames_per_s": frames / seconds, **costs,
            **measure.throughput(seconds, costs["flops_per_device"],
                                 len(train_setup.mesh.devices.flat)),
            "device_peak_gib": measure.device_peak_gib(), **measure.environment()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        record = benchmark(_CONFIG.value, _STEPS.value, _ROUNDS.value, _LABEL.value)
    except ConfigError as error:
        raise app.UsageError(str(error)) from None
    measure.write_record(record, _JSONL.value)


if __name__ == "__main__":
    app.run(main)

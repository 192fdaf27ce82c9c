"""Where a train step's time goes: a `jax.profiler` trace of a few steps, summed per XLA
operation (each named with the jax operation it came from) and per kind of operation.

    python benchmarks/profile_step.py --config configs/stunet_shapes.py:variant=tiny \
        [--config.x=y ...] [--steps 3] [--top 25] [--trace_dir DIR] [--json FILE]

The step is the trainer's own (see `benchmarks/train_step.py`). The trace (TensorBoard /
Perfetto format) is kept in `--trace_dir` for a closer look in a trace viewer.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks.compiled_step import compile_train_step  # noqa: E402
from benchmarks.trace_summary import device_events, hlo_names, summarise  # noqa: E402
from lumiere_jax.settings import ConfigError  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 3, "Traced steps (after one warm-up step).")
_TOP = flags.DEFINE_integer("top", 25, "Operations to list.")
_TRACE_DIR = flags.DEFINE_string("trace_dir", None, "Keep the trace here (default: a temp dir).")
_JSON = flags.DEFINE_string("json", None, "Also write the table to this JSON file.")
flags.mark_flags_as_required(["config"])

def profile(config, steps: int, top: int, trace_dir: str) -> dict:
    """The table of the heaviest operations of `steps` train steps of `config`."""
    step = compile_train_step(config)
    compiled, batch = step.compiled, step.batch
    state, metrics = compiled(step.train_setup.state, batch)
    jax.block_until_ready(metrics)
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(steps):
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
    events = device_events(trace_dir)
    traced = sum(e.get("dur", 0.0) for e in events) / 1e3 / steps
    return {"ms_per_step_in_ops": traced, "trace_dir": trace_dir,
            **summarise(events, hlo_names(compiled.as_text()), steps, top)}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    trace_dir = _TRACE_DIR.value or tempfile.mkdtemp(prefix="lumiere_profile_")
    try:
        result = profile(_CONFIG.value, _STEPS.value, _TOP.value, trace_dir)
    except ConfigError as error:
        raise app.UsageError(str(error)) from None
    print(f"{result['ms_per_step_in_ops']:.1f} ms a step inside XLA operations; trace: "
          f"{trace_dir}")
    print("| kind of operation | ms / step | share |\n|---|---|---|")
    for row in result["kinds"]:
        print(f"| {row['kind']} | {row['ms_per_step']:.2f} | {row['share']:.1%} |")
    print("\n| op | opcode | ms / step | share | jax op |\n|---|---|---|---|---|")
    for row in result["ops"]:
        print(f"| {row['op']} | {row['opcode']} | {row['ms_per_step']:.2f} | "
              f"{row['share']:.1%} | {row['jax_op'][-90:]} |")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)

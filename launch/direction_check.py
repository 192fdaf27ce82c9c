"""Can a STUNet recipe learn the direction word? A minutes-long check before a full run: train on
clips whose captions differ only in the direction (left, right, up, down; quickly), then probe
the drift of the model's x0 estimate at high noise (`launch.trajectory_probe`) as it trains.

    python -m launch.direction_check --backbone runs/t2i_S/export --out runs/check --steps 2000 \
        [--subjects one|every] [--set model.temporal.space_time_position=True ...]

`--subjects one`: every clip is a small red circle on black; `every`: shape, colour, size and
background drawn as the data draws them. `--set KEY=VALUE` overrides the STUNet config
(`configs/stunet_shapes.py`, Python literals). Four times in the run the EMA weights are
exported to OUT/step_N and probed; each probe is printed and appended to OUT/curve.jsonl.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time

import numpy as np
from flax import nnx

from configs import stunet_shapes
from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.data import shapes
from lumiere_jax.eval.trajectory_probe import DIRECTIONS, trajectory_table, validation_subjects
from lumiere_jax.pipeline import LumierePipeline
from lumiere_jax.text import tokenizer
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup

ONE_SUBJECT = shapes.ClipSpec(shape="circle", colour="red", size="small", background="black",
                              motion="left", speed="quickly", x=0.5, y=0.5, angle=0.0)
PROBE_TIMES = (0.995, 0.99, 0.97, 0.9)


def override(config, assignment: str) -> None:
    """Applies one `dotted.key=python_literal` to an ml-collections config."""
    key, sep, text = assignment.partition("=")
    if not sep:
        raise ValueError(f"--set {assignment!r}: use KEY=VALUE, e.g. "
                         "model.temporal.space_time_position=True.")
    *path, last = key.split(".")
    node = config
    for part in path:
        if part not in node:
            raise ValueError(f"--set {key}: the config has no section {part!r}.")
        node = node[part]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word is a string
    node[last] = value


def direction_specs(rng: np.random.Generator, count: int, subjects: str) -> list[shapes.ClipSpec]:
    """`count` translating clips at random starts, one subject or every subject."""
    specs = []
    for _ in range(count):
        motion = list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
        subject = ONE_SUBJECT if subjects == "one" else shapes.sample_spec(rng)
        x, y = shapes.sample_start(rng, subject.size, motion, "quickly")
        specs.append(dataclasses.replace(subject, motion=motion, speed="quickly", x=float(x),
                                         y=float(y)))
    return specs


def probe_subjects(subjects: str) -> list[shapes.ClipSpec]:
    """The subjects the probe averages over."""
    if subjects == "one":
        return [ONE_SUBJECT]
    return validation_subjects(4)


def run_check(config, out: str, steps: int, subjects: str, seed: int = 0) -> list[dict]:
    """Trains `config`'s STUNet on direction-only batches for `steps` steps; returns the probes."""
    run = setup(parse_run_config(config))
    state = run.initialize()
    data = config.data
    rng = np.random.default_rng(seed)
    curve, start = [], time.perf_counter()
    every = max(steps // 4, 1)
    for step in range(1, steps + 1):
        specs = direction_specs(rng, data.batch_size, subjects)
        batch = {"frames": np.stack([shapes.render_clip(s, data.resolution, data.num_frames)
                                     for s in specs]),
                 "tokens": tokenizer.tokenize_batch([shapes.canonical_caption(s) for s in specs],
                                                    config.model.text_encoder.max_length)}
        state, _ = run.train_step(state, batch)
        if step % every == 0 or step == steps:
            export = os.path.join(out, f"step_{step}")
            ema = nnx.merge(run.graphdef, state.ema_params, state.frozen)
            save_exported(export, nnx.state(ema, nnx.Param), config.to_dict())
            table = trajectory_table(LumierePipeline.from_checkpoint(export),
                                     probe_subjects(subjects), PROBE_TIMES, noise_draws=4)
            record = {"step": step, "minutes": (time.perf_counter() - start) / 60.0,
                      "drift_ratio": {str(t): v["ratio"] for t, v in table.items()}}
            with open(os.path.join(out, "curve.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            curve.append(record)
            print(f"step {step} ({record['minutes']:.1f} min): drift ratio " + ", ".join(
                f"t={t} {v:.2f}" for t, v in record["drift_ratio"].items()), flush=True)
    return curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="", help="T2I export to inflate (default: shipped)")
    parser.add_argument("--variant", choices=stunet_shapes.VARIANTS, default="base")
    parser.add_argument("--out", required=True, help="folder for the exports and curve.jsonl")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--subjects", choices=("one", "every"), default="one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}.")
    arg = f"variant={args.variant}" + (f",backbone={args.backbone}" if args.backbone else "")
    config = stunet_shapes.get_config(arg)
    config.optim.total_steps = args.steps
    try:
        for assignment in args.set:
            override(config, assignment)
    except ValueError as error:
        parser.error(str(error))
    os.makedirs(args.out, exist_ok=True)
    run_check(config, args.out, args.steps, args.subjects, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

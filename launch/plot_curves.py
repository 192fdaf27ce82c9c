"""Learning curves of training runs: evaluator scores against training minutes, as a PNG and a
markdown table. Reads each run's `metrics.jsonl` (the `eval_*` records the trainer writes when
`config.log.eval_every_steps` > 0).

    python -m launch.plot_curves --run "label=WORKDIR" [--run ...] --out docs/curves.png \
        [--metrics shape,colour] [--table]

A run trained in legs (each leg a new workdir started with `--config.checkpoint.init_from=` the
previous leg's export) is one curve: `--run "label=LEG1+LEG2"`; each later leg's steps and
training minutes continue from the end of the leg before.

Needs matplotlib (`pip install -e ".[plots]"`, also in the dev extra; not a dependency of the
package).
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def read_curve(workdir: str) -> list[dict]:
    """The evaluation records of a run, in step order."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {workdir!r} a training workdir?")
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    evaluations = {r["step"]: r for r in records if "train_minutes" in r}
    return [evaluations[step] for step in sorted(evaluations)]


def join_legs(legs: list[list[dict]]) -> list[dict]:
    """One curve from the curves of consecutive legs: each leg's steps and training minutes are
    offset by the last step and minutes of the leg before it."""
    joined, step, minutes = [], 0, 0.0
    for leg in legs:
        joined += [dict(r, step=r["step"] + step, train_minutes=r["train_minutes"] + minutes)
                   for r in leg]
        if leg:
            step, minutes = joined[-1]["step"], joined[-1]["train_minutes"]
    return joined


def parse_run(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--run takes LABEL=WORKDIR, got {text!r}.")
    label, workdir = text.split("=", 1)
    return label, workdir


def markdown_table(curves: dict[str, list[dict]], metrics: list[str]) -> str:
    """One row per evaluation: run, step, training minutes, then each metric."""
    head = "| run | step | train min | " + " | ".join(metrics) + " |"
    rows = [head, "|" + "---|" * (3 + len(metrics))]
    for label, curve in curves.items():
        for r in curve:
            values = " | ".join(f"{r.get('eval_' + m, float('nan')):.3f}" for m in metrics)
            rows.append(f"| {label} | {r['step']} | {r['train_minutes']:.1f} | {values} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", type=parse_run, required=True)
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--metrics", default="shape,colour")
    parser.add_argument("--table", action="store_true", help="also print a markdown table")
    args = parser.parse_args(argv)
    if not args.out.endswith(".png"):
        parser.error(f"--out must be a .png file, got {args.out!r}.")
    metrics = [m for m in args.metrics.split(",") if m]
    curves = {label: join_legs([read_curve(leg) for leg in workdir.split("+")])
              for label, workdir in args.run}
    for label, workdir in args.run:
        if not curves[label]:
            parser.error(f"{workdir} has no evaluation records (eval_* in metrics.jsonl): train "
                         f"it with --config.log.eval_every_steps=N, N > 0.")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for label, curve in curves.items():
            axis.plot([r["train_minutes"] for r in curve], [r.get("eval_" + metric) for r in curve],
                      marker="o", label=label)
        axis.set_xlabel("training minutes (2-core CPU)")
        axis.set_ylabel(f"evaluator {metric} accuracy")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=100)
    if args.table:
        print(markdown_table(curves, metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())

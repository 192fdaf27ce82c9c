"""Does a video checkpoint know where its caption's motion puts the object, frame by frame? The
drift of its x0 estimate from pure noise along each direction, against the data's mean clip's,
by noise level, as a markdown table (see `lumiere_jax.eval.trajectory_probe`).

    python -m launch.trajectory_probe --checkpoint lumiere_jax/weights/stunet_shapes \
        [--subjects 4] [--draws 4] [--t 0.995,0.99,0.97,0.9]

A ratio of 1 means the estimate drifts as far as the data's mean; 0, that it ignores the
direction. A training workdir works too (its latest EMA weights).
"""
from __future__ import annotations

import argparse
import sys

from launch.probe_args import parse_times

from lumiere_jax.eval.trajectory_probe import DIRECTIONS, trajectory_table, validation_subjects
from lumiere_jax.pipeline import LumierePipeline


def markdown(table: dict) -> str:
    rows = ["| t | drift ratio | " + " | ".join(DIRECTIONS) + " | model drift | data drift |",
            "|---|---|" + "---|" * len(DIRECTIONS) + "---|---|"]
    for t, v in table.items():
        by_direction = " | ".join(f"{v['by_direction'][d]:.2f}" for d in DIRECTIONS)
        rows.append(f"| {t:.3f} | {v['ratio']:.2f} | {by_direction} | {v['model_drift']:.3f} | "
                    f"{v['data_drift']:.3f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="export or training workdir")
    parser.add_argument("--subjects", type=int, default=4,
                        help="validation subjects (colour, shape, size, background); default 4")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per caption (default 4)")
    parser.add_argument("--t", type=parse_times, default=(0.995, 0.99, 0.97, 0.9),
                        help="noise levels t, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.draws < 1:
        parser.error(f"--subjects and --draws must be at least 1, got {args.subjects} and "
                     f"{args.draws}.")
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    if not pipeline.is_video:
        parser.error("The trajectory probe needs a video model; this checkpoint is an image model.")
    subjects = validation_subjects(args.subjects)
    print(markdown(trajectory_table(pipeline, subjects, args.t, args.draws, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

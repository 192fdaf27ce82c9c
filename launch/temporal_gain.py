"""Where do a video model's trained temporal layers help or hurt? Its loss on true validation
clips against the same model with its temporal layers at initialisation (the frozen T2I per
frame), by noise level, as a markdown table.

    python -m launch.temporal_gain --checkpoint lumiere_jax/weights/stunet_shapes \
        [--num 32] [--t 0.05,0.1,0.2,0.3,0.5,0.7,0.9,0.98]

A ratio below 1 at t: the temporal layers denoise better there than none; above 1: worse. A
training workdir works too (its latest EMA weights).
"""
from __future__ import annotations

import sys

import numpy as np

from launch.probe_args import load_checkpoint, probe_parser
from lumiere_jax.data import shapes
from lumiere_jax.eval.split_sampling import prompts_and_specs
from lumiere_jax.eval.temporal_gain import loss_by_t
from lumiere_jax.models.settings import parse_model_config

DEFAULT_TIMES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.98)


def markdown(table: dict) -> str:
    rows = ["| t | loss, trained | loss, temporal layers at init | ratio |", "|---|---|---|---|"]
    return "\n".join(rows + [f"| {t:.2f} | {v['trained']:.5f} | {v['reset']:.5f} | "
                             f"{v['ratio']:.3f} |" for t, v in table.items()])


def main(argv=None) -> int:
    parser = probe_parser(__doc__.split("\n\n")[0], DEFAULT_TIMES)
    args = parser.parse_args(argv)
    pipeline = load_checkpoint(parser, args, video=True, why="--checkpoint")
    captions, specs = prompts_and_specs("validation", args.num)
    clips = np.stack([shapes.render_clip(s, pipeline.resolution, pipeline.default_frames)
                      for s in specs])
    table = loss_by_t(pipeline, parse_model_config(pipeline.config.model), clips, captions,
                      args.t, args.seed)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

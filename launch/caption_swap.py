"""Does a checkpoint read a caption word? Its loss on true validation data with the true caption
against the caption with one attribute changed, by noise level, as a markdown table.

    python -m launch.caption_swap --checkpoint lumiere_jax/weights/stunet_shapes \
        --attribute motion [--num 32] [--t 0.3,0.5,0.7,0.85]

`--attribute motion` reverses the motion (left/right, up/down, growing/shrinking; validation
clips with another motion are skipped), `colour` and `shape` replace the word. A video model is
scored on whole clips, an image model on frame 0. A training workdir works too (its latest EMA
weights).
"""
from __future__ import annotations

import sys

from launch.probe_args import load_checkpoint, probe_parser
from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.eval.caption_swap import REVERSED_MOTION, SWAPPABLE, caption_swap_table


def validation_specs(num: int, attribute: str) -> list[shapes.ClipSpec]:
    """The first `num` validation specs that `attribute` can be swapped in."""
    found, index = [], 0
    while len(found) < num:
        spec = shapes.spec_for_seed(tfds_shapes.example_seed("validation", index), "validation")
        if attribute != "motion" or spec.motion in REVERSED_MOTION:
            found.append(spec)
        index += 1
    return found


def markdown(table: dict, attribute: str) -> str:
    rows = [f"| t | loss, true caption | loss, {attribute} swapped | true lower in |",
            "|---|---|---|---|"]
    return "\n".join(rows + [f"| {t:.2f} | {v['true']:.4f} | {v['swapped']:.4f} | "
                             f"{v['true_lower']:.0%} |" for t, v in table.items()])


def main(argv=None) -> int:
    parser = probe_parser(__doc__.split("\n\n")[0], (0.3, 0.5, 0.7, 0.85))
    parser.add_argument("--attribute", choices=SWAPPABLE, default="motion")
    args = parser.parse_args(argv)
    pipeline = load_checkpoint(parser, args, video=args.attribute == "motion",
                               why="--attribute motion")
    table = caption_swap_table(pipeline, validation_specs(args.num, args.attribute),
                               args.attribute, args.t, args.seed)
    print(markdown(table, args.attribute))
    return 0


if __name__ == "__main__":
    sys.exit(main())

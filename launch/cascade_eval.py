"""Scores the cascade on validation captions: the base video model's clips and the SSR's lifts
of them (over temporal windows), both read by the shapes evaluator.

    python -m launch.cascade_eval [--base DIR] [--ssr DIR] [--num 32] [--batch 16] [--json F]

Defaults: the shipped `stunet_shapes` and `ssr_shapes`, the base model's sampling settings
(DDIM 25 steps here) and the SSR's windows (its training length, stride half of it).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lumiere_jax.eval.shapes_evaluator import score_clips
from lumiere_jax.eval.split_sampling import prompts_and_specs
from lumiere_jax.pipeline import CascadePipeline, LumierePipeline


def evaluate_cascade(cascade: CascadePipeline, *, num: int, batch: int, steps: int,
                     split: str = "validation") -> dict:
    """`base_<attribute>` and `ssr_<attribute>` accuracies of the cascade on `num` captions,
    and the wall `seconds` of sampling both stages (seed i for the batch starting at i)."""
    captions, specs = prompts_and_specs(split, num)
    start = time.perf_counter()
    base, lifted = [], []
    for i in range(0, num, batch):
        b, s = cascade.sample(captions[i:i + batch], seed=i, steps=steps)
        base.append(b)
        lifted.append(s)
    scores = {"split": split, "num": num, "steps": steps,
              "seconds": time.perf_counter() - start}
    for name, clips in (("base", np.concatenate(base)), ("ssr", np.concatenate(lifted))):
        scores.update({f"{name}_{key}": float(value)
                       for key, value in score_clips(clips, specs, captions).items()
                       if not key.startswith("mean_")})
    return scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="video model (default: shipped stunet)")
    parser.add_argument("--ssr", default=None, help="SSR model (default: shipped ssr)")
    parser.add_argument("--num", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25, help="base-stage DDIM steps")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if min(args.num, args.batch, args.steps) < 1:
        parser.error("--num, --batch and --steps must be >= 1")
    cascade = CascadePipeline(LumierePipeline.from_checkpoint(args.base, default="stunet"),
                              LumierePipeline.from_checkpoint(args.ssr, default="ssr"))
    scores = evaluate_cascade(cascade, num=args.num, batch=args.batch, steps=args.steps)
    print(json.dumps(scores, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)


if __name__ == "__main__":
    main()

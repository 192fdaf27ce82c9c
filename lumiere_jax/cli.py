"""The `lumiere-jax` command: sampling and evaluation with shipped or trained models."""
from __future__ import annotations

import argparse
import os
import sys
import time

from lumiere_jax.models.io import CheckpointError
from lumiere_jax.models.tokenizer import PromptError


def _add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="Exported checkpoint dir or training workdir (default: shipped model).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="Denoising steps (default: config).")
    parser.add_argument("--guidance", type=float, default=None,
                        help="Classifier-free guidance scale (default: config; 1 = no guidance).")
    parser.add_argument("--sampler", choices=("ddim", "ancestral"), default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumiere-jax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    image = commands.add_parser("sample-image", help="Sample images from the text-to-image model.")
    image.add_argument("--prompt", action="append", required=True,
                       help="Text prompt; repeat the flag for several prompts (one grid row each).")
    image.add_argument("--num", type=int, default=4, help="Samples per prompt (grid columns).")
    image.add_argument("--out", required=True, help="Output image (.png).")
    image.add_argument("--scale", type=int, default=4, help="Nearest-neighbour upscaling for viewing.")
    _add_sampling_flags(image)

    evaluate = commands.add_parser(
        "evaluate-t2i", help="Score a T2I model with the shapes evaluator on validation prompts.")
    evaluate.add_argument("--num", type=int, default=256, help="Number of validation prompts.")
    evaluate.add_argument("--batch", type=int, default=64)
    evaluate.add_argument("--split", default="validation", choices=("validation", "heldout"))
    evaluate.add_argument("--json", default=None, help="Also write the scores to this JSON file.")
    _add_sampling_flags(evaluate)
    return parser


def _check_positive(name: str, value) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be at least 1, got {value}.")


def run_sample_image(args) -> None:
    from lumiere_jax.data import video_io
    from lumiere_jax.pipeline import LumierePipeline

    _check_positive("num", args.num)
    _check_positive("steps", args.steps)
    _check_positive("scale", args.scale)
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out must end in .png, got {args.out!r}.")
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    prompts = [p for p in args.prompt for _ in range(args.num)]
    pipeline.tokenize(prompts)  # refuse bad prompts before compiling anything
    start = time.perf_counter()
    images = pipeline.sample(prompts, seed=args.seed, steps=args.steps, guidance=args.guidance,
                             sampler=args.sampler, progress=True)
    grid = video_io.image_grid(video_io.upscale_nearest(images, args.scale), columns=args.num)
    video_io.write_image(args.out, grid)
    print(f"Wrote {len(images)} samples to {args.out} in {time.perf_counter() - start:.1f} s.")


def run_evaluate_t2i(args) -> None:
    import json

    from lumiere_jax.eval.t2i_eval import evaluate_t2i
    from lumiere_jax.pipeline import LumierePipeline

    _check_positive("num", args.num)
    _check_positive("batch", args.batch)
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    scores = evaluate_t2i(pipeline, num=args.num, batch=args.batch, split=args.split,
                          seed=args.seed, steps=args.steps, guidance=args.guidance,
                          sampler=args.sampler)
    text = json.dumps(scores, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")


COMMANDS = {"sample-image": run_sample_image, "evaluate-t2i": run_evaluate_t2i}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (CheckpointError, PromptError, ValueError, FileNotFoundError) as error:
        print(f"lumiere-jax {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

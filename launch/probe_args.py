"""The command line that the checkpoint probes share (`launch.caption_swap`,
`launch.temporal_gain`): a checkpoint, how many validation examples, noise levels, a seed."""
from __future__ import annotations

import argparse

from lumiere_jax.pipeline import LumierePipeline


def parse_times(text: str) -> tuple[float, ...]:
    """Comma-separated noise levels t, each in (0, 1)."""
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"need noise levels in (0, 1), comma-separated, got {text!r}")
    return values


def probe_parser(description: str, default_times: tuple[float, ...]) -> argparse.ArgumentParser:
    """A parser with --checkpoint, --num, --t and --seed; add a probe's own options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True, help="export or training workdir")
    parser.add_argument("--num", type=int, default=32, help="validation examples (default 32)")
    parser.add_argument("--t", type=parse_times, default=default_times,
                        help="noise levels t, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_checkpoint(parser: argparse.ArgumentParser, args, *, video: bool = False,
                    why: str = "") -> LumierePipeline:
    """Checks --num, loads --checkpoint, and refuses an image model when `video` is asked."""
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}.")
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    if video and not pipeline.is_video:
        parser.error(f"{why} needs a video model; this checkpoint is an image model.")
    return pipeline

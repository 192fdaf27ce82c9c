"""Denoising error of a text-to-image checkpoint at fixed noise levels, as a markdown table.

    python -m launch.denoising_profile --checkpoint lumiere_jax/weights/t2i_shapes [--num 32]

Each row: a log-SNR, the mean squared error of the model's one-step x0 estimate on the first
`num` validation frames (with their captions) and of doing nothing (x_t / alpha). A run's
workdir works too (its latest EMA weights).
"""
from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.eval.denoising import DEFAULT_LOG_SNRS, validation_frames, x0_error_by_log_snr
from lumiere_jax.pipeline import LumierePipeline


def markdown(table: dict) -> str:
    rows = ["| log-SNR | model x0 MSE | identity x0 MSE |", "|---|---|---|"]
    rows += [f"| {snr:+.0f} | {v['model']:.4f} | {v['identity']:.4f} |" for snr, v in table.items()]
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="export or training workdir (T2I)")
    parser.add_argument("--num", type=int, default=32, help="validation frames (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}.")
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    if pipeline.is_video:
        parser.error("--checkpoint is a video model; the profile is for text-to-image models.")
    frames, captions = validation_frames(args.num, pipeline.resolution)
    model = nnx.merge(pipeline.graphdef, pipeline.state)
    cond = model.encode_text(jnp.asarray(pipeline.tokenize(captions)))
    predict = jax.jit(lambda x_t, t: model.denoise(x_t, t, cond))
    table = x0_error_by_log_snr(predict, frames_to_model_range(frames),
                                pipeline.diffusion.noise_schedule(), pipeline.diffusion.prediction,
                                DEFAULT_LOG_SNRS, args.seed)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

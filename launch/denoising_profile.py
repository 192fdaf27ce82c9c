"""Denoising error of a text-to-image checkpoint at fixed noise levels, as a markdown table.

    python -m launch.denoising_profile --checkpoint lumiere_jax/weights/t2i_shapes [--num 32]

Each row: a log-SNR, the mean squared error of the model's one-step x0 estimate on the first
`num` validation frames (with their captions) and of doing nothing (x_t / alpha). A run's
workdir works too (its latest EMA weights).

    python -m launch.denoising_profile --checkpoint RUN --recovery [--num 64 --steps 25]

`--recovery` instead noises the frames to each log-SNR of `RECOVERY_LOG_SNRS`, samples from
there (DDIM, the config's guidance) and reports the fraction whose shape the evaluator reads
back: where between pure noise and a clean frame the model loses the outline.
"""
from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax.data import shapes
from lumiere_jax.diffusion.model_sampling import guided_denoiser
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.eval.denoising import (DEFAULT_LOG_SNRS, shape_recovery_by_log_snr,
                                        validation_frames, x0_error_by_log_snr)
from lumiere_jax.eval.split_sampling import prompts_and_specs
from lumiere_jax.models.t2i import X0_ESTIMATE
from lumiere_jax.pipeline import LumierePipeline


def markdown(table: dict) -> str:
    rows = ["| log-SNR | model x0 MSE | identity x0 MSE |", "|---|---|---|"]
    rows += [f"| {snr:+.0f} | {v['model']:.4f} | {v['identity']:.4f} |" for snr, v in table.items()]
    return "\n".join(rows)


def recovery_markdown(table: dict) -> str:
    rows = ["| start log-SNR | shape read back |", "|---|---|"]
    return "\n".join(rows + [f"| {snr:+.0f} | {value:.3f} |" for snr, value in table.items()])


def shape_recovery(pipeline, num: int, steps: int, seed: int) -> dict:
    """`shape_recovery_by_log_snr` for the pipeline's model on the first `num` validation frames,
    sampled with its own guidance and the DDIM sampler in `steps` steps."""
    captions, specs = prompts_and_specs("validation", num)
    frames = np.stack([shapes.render_frame(spec, 0, pipeline.resolution) for spec in specs])
    model = nnx.merge(pipeline.graphdef, pipeline.state)
    predict = guided_denoiser(model, jnp.asarray(pipeline.tokenize(captions)), {},
                              jax.random.key(seed), guidance=pipeline.sample_defaults.guidance)
    schedule = pipeline.diffusion.noise_schedule()
    run = jax.jit(lambda x_init, t_start: sample(
        predict, x_init.shape, jax.random.key(seed + 1), schedule, steps=steps, sampler="ddim",
        prediction=pipeline.diffusion.prediction, x_init=x_init, t_start=t_start,
        self_condition=model.self_conditioned), static_argnums=1)
    return shape_recovery_by_log_snr(run, frames, specs, schedule, seed=seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="export or training workdir (T2I)")
    parser.add_argument("--num", type=int, default=32, help="validation frames (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recovery", action="store_true",
                        help="shape read back after denoising from partly noised frames")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps for --recovery")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}.")
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint)
    if pipeline.is_video:
        parser.error("--checkpoint is a video model; the profile is for text-to-image models.")
    if args.recovery:
        print(recovery_markdown(shape_recovery(pipeline, args.num, args.steps, args.seed)))
        return 0
    frames, captions = validation_frames(args.num, pipeline.resolution)
    model = nnx.merge(pipeline.graphdef, pipeline.state)
    cond = model.encode_text(jnp.asarray(pipeline.tokenize(captions)))
    if model.self_conditioned:  # one step: no earlier estimate, as at a sampler's first step
        predict = jax.jit(lambda x_t, t: model.denoise(
            x_t, t, dict(cond, **{X0_ESTIMATE: jnp.zeros_like(x_t)})))
    else:
        predict = jax.jit(lambda x_t, t: model.denoise(x_t, t, cond))
    table = x0_error_by_log_snr(predict, frames_to_model_range(frames),
                                pipeline.diffusion.noise_schedule(), pipeline.diffusion.prediction,
                                DEFAULT_LOG_SNRS, args.seed)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

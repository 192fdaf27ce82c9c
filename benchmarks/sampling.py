"""Sampling speed of a model (shipped name, export or workdir): seconds per batch, per clip and
per denoising step, compile time apart, XLA's FLOPs per model call, achieved TFLOP/s and MFU.

    python benchmarks/sampling.py [--checkpoint shapes-t2v] [--num 4] [--steps 25] \
        [--guidance G] [--frames T] [--rounds 3] [--jsonl results.jsonl] [--label NAME]

The sampler is the pipeline's own (`ModelSampler.sample`: the whole loop compiled once per
shape and step count, the guidance pair batched into one model call a step). The first call is
compile + run; `compile_s` is its time less the median of the `--rounds` calls after it. A
model with inputs besides the text (the SSR's low-res clip) gets random uint8 ones.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks import measure  # noqa: E402
from lumiere_jax.diffusion.model_sampling import guided_denoiser  # noqa: E402
from lumiere_jax.diffusion.pixels import frames_to_model_range  # noqa: E402
from lumiere_jax.eval.split_sampling import prompts_and_specs  # noqa: E402
from lumiere_jax.pipeline import LumierePipeline  # noqa: E402


def model_call_flops(pipeline, prompts, conditions: dict, frames, guidance: float) -> float:
    """FLOPs of one denoising step's model call (the guidance pair included), from XLA's cost
    analysis of that call alone (a compiled loop's analysis counts its body once)."""
    model = pipeline.model
    tokens = jnp.asarray(pipeline.tokenize(prompts))
    shape = model.input_shape(len(prompts), frames)
    conditions = {name: frames_to_model_range(value) for name, value in conditions.items()}

    def one_step(state, x_t, t):
        merged = nnx.merge(pipeline.graphdef, state)
        predict = guided_denoiser(merged, tokens, conditions, jax.random.key(0), guidance=guidance)
        return predict(x_t, t, x_t) if merged.self_conditioned else predict(x_t, t)

    lowered = jax.jit(one_step).lower(pipeline.state, jnp.zeros(shape), jnp.full(shape[:1], 0.5))
    cost = lowered.cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def benchmark(checkpoint: str, num: int, steps: int, guidance: float | None,
              frames: int | None, rounds: int, label: str = "") -> dict:
    """The record of one model's sampling (see the module docstring)."""
    pipeline = LumierePipeline.from_pretrained(checkpoint)
    prompts, _ = prompts_and_specs("validation", num)
    frames = (frames or pipeline.default_frames) if pipeline.is_video else None
    rng = np.random.default_rng(0)
    conditions = {name: rng.integers(0, 256, shape, dtype=np.uint8)
                  for name, shape in pipeline.model.conditioning_shapes(num, frames).items()}
    guidance = float(pipeline.sample_defaults.guidance if guidance is None else guidance)
    settings = dict(steps=steps, guidance=guidance, conditions=conditions or None)
    if pipeline.is_video:
        settings["frames"] = frames
    call = lambda: pipeline.sample(prompts, **settings)
    start = time.perf_counter()
    call()
    first_s = time.perf_counter() - start
    timing = measure.time_rounds(call, steps=1, rounds=rounds, warmup=0)
    seconds = timing["median_s"]
    flops = model_call_flops(pipeline, prompts, conditions, frames, guidance)
    per_frame = frames or 1
    return {"benchmark": "sampling", "label": label, "checkpoint": checkpoint,
            "model": type(pipeline.model).__name__, "batch": num, "frames": frames,
            "resolution": pipeline.resolution, "steps": steps, "guidance": guidance,
            "compile_s": max(first_s - seconds, 0.0), "first_call_s": first_s, **timing,
            "seconds_per_sample": seconds / num, "seconds_per_step": seconds / steps,
            "seconds_per_sample_step": seconds / (num * steps),
            "frames_per_s": num * per_frame / seconds, "flops_per_model_call": flops,
            **measure.throughput(seconds, flops * steps, 1),
            "device_peak_gib": measure.device_peak_gib(), **measure.environment()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="shapes-t2v",
                        help="Shipped name (shapes-t2v, shapes-t2i, ...), export or workdir.")
    parser.add_argument("--num", type=int, default=4, help="Samples per call (one batch).")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None, help="Default: the model's.")
    parser.add_argument("--frames", type=int, default=None, help="Video models: clip length.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed calls after the first.")
    parser.add_argument("--jsonl", default=None, help="Append the record to this file.")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    measure.write_record(benchmark(args.checkpoint, args.num, args.steps, args.guidance,
                                   args.frames, args.rounds, args.label), args.jsonl)


if __name__ == "__main__":
    main()

"""Memory and time of one SSR denoising step on a long clip: the whole clip at once against
temporal MultiDiffusion over overlapping windows, all windows in one vmap or a few at a time.

    python benchmarks/ssr_windows.py [--checkpoint DIR] [--frames 80] [--window 8] [--stride 4]

Memory is XLA's own account of the compiled step (`memory_analysis()`: arguments, outputs and
temporaries, on this backend); time is the median wall time of `--repeats` calls after the
compile. Default model: the shipped `ssr_shapes`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import measure  # noqa: E402
from lumiere_jax.diffusion.model_sampling import windowed
from lumiere_jax.diffusion.multidiffusion import window_starts
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.pipeline import LumierePipeline


def step_functions(model, window: int, stride: int, chunks: tuple[int, ...]) -> dict:
    """name -> f(x_t, t, cond): the whole-clip denoiser and its windowed variants."""
    functions = {"whole clip": model.denoise}
    for chunk in chunks:
        name = f"windows, {'all in one vmap' if chunk == 0 else f'{chunk} at a time'}"
        functions[name] = windowed(model.denoise, model.per_frame_inputs, window, stride, chunk)
    return functions


def measure_step(fn, args, repeats: int) -> dict:
    """Compiled memory (GiB) and median seconds of fn(*args)."""
    compiled, _ = measure.compile_timed(jax.jit(fn).lower(*args))
    costs = measure.compiled_costs(compiled)
    timing = measure.time_rounds(lambda: compiled(*args), steps=repeats, rounds=1)
    return {"temp_gib": costs["temp_gib"], "argument_gib": costs["argument_gib"],
            "output_gib": costs["output_gib"],
            "seconds": timing["median_s"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="SSR export (default: shipped ssr_shapes)")
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--chunks", default="0,1", help="windows at a time, 0 = all (comma list)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    pipeline = LumierePipeline.from_checkpoint(args.checkpoint, default="ssr")
    model = pipeline.model
    starts = window_starts(args.frames, args.window, args.stride)
    shapes = model.conditioning_shapes(args.batch, args.frames)
    rng = np.random.default_rng(0)
    low_res = frames_to_model_range(rng.integers(0, 256, shapes["low_res"], dtype=np.uint8))
    tokens = jnp.asarray(pipeline.tokenize(["a shape"] * args.batch))
    cond = dict(model.encode_text(tokens),
                **model.prepare_conditions({"low_res": low_res}, jax.random.key(0)))
    x_t = jnp.asarray(rng.standard_normal(model.input_shape(args.batch, args.frames)), jnp.float32)
    t = jnp.full((args.batch,), 0.5, jnp.float32)

    chunks = tuple(int(c) for c in args.chunks.split(","))
    rows = []
    for name, fn in step_functions(model, args.window, args.stride, chunks).items():
        rows.append(dict(mode=name, **measure_step(fn, (x_t, t, cond), args.repeats)))
    header = (f"{args.frames} frames of {pipeline.resolution} px, batch {args.batch}, "
              f"{len(starts)} windows of {args.window} (stride {args.stride}), "
              f"{jax.devices()[0].platform}")
    print(header)
    print("| mode | temporaries (GiB) | arguments (GiB) | seconds a step |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['temp_gib']:.3f} | {row['argument_gib']:.3f} | "
              f"{row['seconds']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setting": header, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

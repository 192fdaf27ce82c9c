"""Ahead-of-time plan of one windowed sampling step of a video model on a TPU topology.

    pip install -e ".[tpu]"      # libtpu: the TPU compiler, no TPU needed
    python -m launch.aot_sample --config configs/ssr_paper.py --topology v5p:2x2x4 \
        --mesh data=1,fsdp=2,time=8 --frames 80 --window 16 --stride 14 --window_chunk 1 \
        [--clips 1] [--guidance 1] [--steps 256] [--json plan.json]

What one denoising step of `lumiere-jax sample` / `upscale` asks of the model
(`diffusion.model_sampling.guided_denoiser`, the sampler's own code): the text encoded, the SSR's
low-res clip noise-augmented, the denoiser run over overlapping temporal windows of the clip and
averaged per frame (temporal MultiDiffusion, `--window_chunk` windows at a time, 0 = all at
once), and with guidance > 1 the conditional and null-prompt rows batched into one call. The
weights are laid out as the trainer lays them out (`train.setup.setup`, built abstractly: fsdp
over the weights, the config's frozen dtype), the layers run in `compute.dtype`, and the clip
has its rows over data x fsdp and its frames over time. Prints, per chip: memory (`memory_analysis`), whether it fits the chip's HBM,
the FLOPs of one step (`cost_analysis`), and the step's and the whole sample's time at peak.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compile for TPU, run nothing: no TPU needed here
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax  # noqa: E402  (the imports below read the platform set above)
import jax.numpy as jnp
import ml_collections
from absl import app, flags
from flax import nnx
from jax.experimental import topologies
from jax.sharding import NamedSharding, PartitionSpec as P
from ml_collections import config_flags

from launch.aot_compile import (CHIPS, GIB, compiler_oom_temporaries, parse_mesh, parse_topology,
                                 run_plan_command)
from lumiere_jax.diffusion.model_sampling import guided_denoiser
from lumiere_jax.diffusion.multidiffusion import window_starts
from lumiere_jax.models.memory import set_compute_dtype
from lumiere_jax.names import TIME
from lumiere_jax.nn.frame_sharding import batch_axes
from lumiere_jax.parallel.mesh import mesh_shape
from lumiere_jax.settings import ConfigError
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import TrainSetup, setup


def sampling_step(graphdef: nnx.GraphDef, *, guidance: float, window: int, stride: int,
                  window_chunk: int, noise_aug: float | None = None, dtype=jnp.float32):
    """step(params, frozen, x_t, t, tokens, conditions, rng) -> the model's prediction for the
    whole clip: one denoising step of the sampler, over temporal windows, its layers in
    `dtype` (as the trainer's `compute.dtype`; float32 results)."""
    dtype = jnp.dtype(dtype)

    def step(params, frozen, x_t, t, tokens, conditions, rng):
        model = nnx.merge(graphdef, params, frozen)
        if dtype != jnp.float32:
            set_compute_dtype(model, dtype)  # the layers cast the float32 weights where they run
        conditions = {name: value.astype(dtype) for name, value in conditions.items()}
        predict = guided_denoiser(model, tokens, conditions, rng, guidance=guidance,
                                  noise_aug=noise_aug, window=window, stride=stride,
                                  window_chunk=window_chunk)
        return predict(x_t.astype(dtype), t).astype(jnp.float32)
    return step


def abstract_inputs(trainer: TrainSetup, clips: int, frames: int) -> tuple[dict, dict]:
    """(arrays, shardings) of a sampling step's inputs besides the weights, as
    ShapeDtypeStructs: the noisy clip and the model's per-clip conditions (rows over data x
    fsdp, frames over time), the diffusion times, the tokens and a key."""
    mesh, model_settings = trainer.mesh, trainer.run.model
    model = nnx.merge(trainer.graphdef, trainer.state.params, trainer.state.frozen)
    rows = batch_axes(mesh, clips)
    clip = NamedSharding(mesh, P(rows, TIME))
    replicated = NamedSharding(mesh, P())
    struct = lambda shape, dtype, sharding: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
    conditions = {name: struct(shape, jnp.float32, clip)
                  for name, shape in model.conditioning_shapes(clips, frames).items()}
    arrays = {
        "x_t": struct(model.input_shape(clips, frames), jnp.float32, clip),
        "t": struct((clips,), jnp.float32, NamedSharding(mesh, P(rows))),
        "tokens": struct((clips, model_settings.text_encoder.max_length), jnp.int32,
                         NamedSharding(mesh, P(rows))),
        "conditions": conditions,
        "rng": struct((2,), jnp.uint32, replicated),
    }
    return arrays, jax.tree.map(lambda x: x.sharding, arrays)


def jit_sampling_step(trainer: TrainSetup, *, clips: int, frames: int, window: int,
                      stride: int, window_chunk: int, guidance: float):
    """(jitted step, its abstract arguments): the sampling step with the trainer's weight
    shardings and the clip's (`abstract_inputs`); `jitted.lower(*arguments)` plans it, and it
    runs on concrete arrays of those shapes (weights, x_t, t, tokens, conditions, key data)."""
    window_starts(frames, window, stride)  # refuses windows that do not fit the clip
    step = sampling_step(trainer.graphdef, guidance=guidance, window=window, stride=stride,
                         window_chunk=window_chunk, dtype=trainer.run.compute.dtype)
    arrays, shardings = abstract_inputs(trainer, clips, frames)
    weight_shardings = (trainer.state_shardings.params, trainer.state_shardings.frozen)
    jitted = jax.jit(lambda params, frozen, x_t, t, tokens, conditions, rng: step(
        params, frozen, x_t, t, tokens, conditions, jax.random.wrap_key_data(rng)),
        in_shardings=(*weight_shardings, shardings["x_t"], shardings["t"], shardings["tokens"],
                      shardings["conditions"], shardings["rng"]),
        out_shardings=shardings["x_t"])
    weights = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                           (trainer.state.params, trainer.state.frozen), weight_shardings)
    return jitted, (*weights, arrays["x_t"], arrays["t"], arrays["tokens"],
                    arrays["conditions"], arrays["rng"])


def plan(config: ml_collections.ConfigDict, topology: str, mesh_sizes: dict[str, int], *,
         clips: int, frames: int, window: int, stride: int, window_chunk: int,
         guidance: float, steps: int) -> dict:
    """Compile one sampling step for `topology` and return the per-chip figures."""
    generation, num_chips = parse_topology(topology)
    chip = CHIPS[generation]
    config = ml_collections.ConfigDict(config.to_dict())
    for axis, size in mesh_sizes.items():
        config.mesh[axis] = size
    config.data.num_frames = window  # the model sees one window at a time
    run = parse_run_config(config)
    if run.model.kind not in ("stunet", "ssr"):
        raise ConfigError(f"Windowed sampling plans are for video models; {run.model.kind!r} "
                          f"is not one.")
    devices = topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
    started = time.perf_counter()
    sizes = mesh_shape(run.mesh, num_chips)
    rows = sizes["data"] * sizes["fsdp"]
    trainer = setup(run, abstract=True, devices=devices, global_batch=max(clips, rows))
    result = {"topology": topology, "chips": num_chips, "mesh": dict(trainer.mesh.shape),
              "clips": clips, "frames": frames, "window": window, "stride": stride,
              "windows": len(window_starts(frames, window, stride)),
              "window_chunk": window_chunk, "guidance": guidance, "steps": steps,
              "resolution": run.data.resolution, "model_kind": run.model.kind,
              "dtype": run.compute.dtype, "frozen_dtype": run.compute.frozen_dtype,
              "hbm_gib": chip.hbm_gib}
    jitted, arguments = jit_sampling_step(trainer, clips=clips, frames=frames, window=window,
                                          stride=stride, window_chunk=window_chunk,
                                          guidance=guidance)
    lowered = jitted.lower(*arguments)
    try:
        compiled = lowered.compile()
    except jax.errors.JaxRuntimeError as error:
        temporaries = compiler_oom_temporaries(str(error), 0)
        if temporaries is None:
            raise
        return dict(result, compiled=False, fits=False, temp_gib=temporaries / GIB,
                    compile_s=time.perf_counter() - started, compiler_report=str(error)[:20_000])
    memory = compiled.memory_analysis()
    flops = compiled.cost_analysis()["flops"]
    peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    step_s = flops / (chip.peak_tflops * 1e12)
    return dict(result, compiled=True, argument_gib=memory.argument_size_in_bytes / GIB,
                temp_gib=memory.temp_size_in_bytes / GIB, peak_gib=peak / GIB,
                fits=peak / GIB <= chip.hbm_gib, chip_tflops_per_step=flops / 1e12,
                step_s_at_peak=step_s, sample_s_at_peak=steps * step_s,
                compile_s=time.perf_counter() - started)


def format_plan(result: dict) -> str:
    mesh = ", ".join(f"{axis}={size}" for axis, size in result["mesh"].items())
    lines = [f"{result['topology']} ({result['chips']} chips), mesh {mesh}: {result['clips']} "
             f"clip(s) of {result['frames']} frames at {result['resolution']} px, "
             f"{result['windows']} windows of {result['window']} (stride {result['stride']}, "
             f"{result['window_chunk'] or 'all'} at a time), guidance {result['guidance']:g}"]
    if result["compiled"]:
        lines += [f"  per-chip memory: {result['peak_gib']:.2f} GiB of {result['hbm_gib']} GiB HBM "
                  f"({'fits' if result['fits'] else 'does NOT fit'}): arguments "
                  f"{result['argument_gib']:.2f}, temporaries {result['temp_gib']:.2f}",
                  f"  {result['chip_tflops_per_step']:.1f} TFLOP per chip per step: "
                  f"{result['step_s_at_peak']:.3f} s at peak, {result['sample_s_at_peak']:.1f} s "
                  f"for {result['steps']} steps"]
    else:
        lines.append(f"  does NOT fit: the TPU compiler reports {result['temp_gib']:.2f} GiB of "
                     f"temporaries")
    lines.append(f"  ({'compiled' if result['compiled'] else 'tried'} in "
                 f"{result['compile_s']:.0f} s)")
    return "\n".join(lines)


def define_flags() -> None:
    """The command's flags (defined only when run as a command: launch.aot_compile, importable
    beside it, defines its own `--config`)."""
    config_flags.DEFINE_config_file("config", None, "Model config file.", lock_config=True)
    flags.DEFINE_string("topology", None, "TPU topology, e.g. v5p:2x2x4.")
    flags.DEFINE_string("mesh", "data=-1", "Mesh axis sizes, e.g. data=1,fsdp=2,time=8.")
    flags.DEFINE_integer("clips", 1, "Clips sampled together.")
    flags.DEFINE_integer("frames", 80, "Frames of each clip.")
    flags.DEFINE_integer("window", 16, "Temporal window of the model, in frames.")
    flags.DEFINE_integer("stride", 14, "Frames between window starts.")
    flags.DEFINE_integer("window_chunk", 1, "Windows denoised at a time (0 = all).")
    flags.DEFINE_float("guidance", 1.0, "Classifier-free guidance (1 = one pass).")
    flags.DEFINE_integer("steps", 256, "Denoising steps of a whole sample.")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.mark_flags_as_required(["config", "topology"])


def main(argv):
    run_plan_command(argv, lambda f: plan(
        f.config, f.topology, parse_mesh(f.mesh), clips=f.clips, frames=f.frames,
        window=f.window, stride=f.stride, window_chunk=f.window_chunk, guidance=f.guidance,
        steps=f.steps), format_plan)


if __name__ == "__main__":
    define_flags()
    app.run(main)

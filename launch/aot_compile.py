"""Ahead-of-time plan of a training run on a TPU topology, compiled on any machine (CPU too).

    pip install -e ".[tpu]"      # libtpu: the TPU compiler, no TPU needed
    python -m launch.aot_compile --config configs/stunet_paper.py --topology v5p:4x4x4 \
        --mesh data=1,fsdp=16,time=4 [--batch 16] [--json plan.json] [--config.data.num_frames=...]

Calls the trainer's own setup (`lumiere_jax.train.setup.setup`) abstractly: the train state as
ShapeDtypeStructs (no weights are allocated), laid out with the batch on a mesh of the topology's
chips, the same jitted step `python -m lumiere_jax.main` runs. It compiles that step with the TPU
compiler and prints, per chip: the memory the step needs
(`memory_analysis`: arguments = weights and optimizer state, temporaries = activations and
gradients), whether it fits the chip's HBM, the FLOPs of one step (`cost_analysis`), and the
step time and MFU those FLOPs imply at the chip's peak.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from typing import Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compile for TPU, run nothing: no TPU needed here
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # compile-only: plans may run side by side

import jax  # noqa: E402  (the imports below read the platform set above)
import ml_collections
from absl import app, flags
from jax.experimental import topologies
from ml_collections import config_flags

from launch.chips import TPU_CHIPS

from lumiere_jax.names import DATA, FSDP, MESH_AXES
from lumiere_jax.parallel.mesh import mesh_shape
from lumiere_jax.settings import ComputeSettings, ConfigError
from lumiere_jax.train.settings import RunSettings, parse_run_config
from lumiere_jax.train.setup import TrainSetup, setup

GIB = 2 ** 30
CHIPS = TPU_CHIPS  # the generations a topology can name


def parse_topology(name: str) -> tuple[str, int]:
    """'v5p:4x4x4' -> ('v5p', 64); a clear error for anything else."""
    match = re.fullmatch(r"(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})", name)
    if not match:
        raise ValueError(f"Unknown topology {name!r}: use GENERATION:SHAPE with GENERATION one of "
                         f"{', '.join(CHIPS)} and SHAPE like 4x4 or 2x2x4 (e.g. v5p:4x4x4, v5e:4x4).")
    return match[1], math.prod(int(n) for n in match[2].split("x"))


def parse_mesh(text: str) -> dict[str, int]:
    """'data=1,fsdp=16,time=4' -> sizes of the mesh axes (unnamed axes: 1, one may be -1)."""
    sizes = {axis: 1 for axis in MESH_AXES}
    for item in filter(None, text.split(",")):
        axis, _, value = item.partition("=")
        if axis not in sizes or not re.fullmatch(r"-?\d+", value):
            raise ValueError(f"Bad --mesh item {item!r}: use AXIS=SIZE with AXIS in {MESH_AXES}, "
                             "e.g. data=1,fsdp=16,time=4.")
        sizes[axis] = int(value)
    return sizes


def plan_setup(run: RunSettings, devices, global_batch: int) -> TrainSetup:
    """The trainer's setup of `run`, built abstractly on `devices` for a `global_batch`."""
    return setup(run, abstract=True, devices=devices, global_batch=global_batch)


def unpartitioned_flops(run: RunSettings, global_batch: int) -> float:
    """FLOPs of one step of the whole batch on one device, without rematerialisation (HLO cost
    analysis before partitioning, on the CPU): the model's useful work, which sharding and
    recomputation can only add to."""
    one_device = dataclasses.replace(run.mesh, data=1, fsdp=1, time=1)
    no_remat = dataclasses.replace(run.compute, remat="none")
    single = plan_setup(dataclasses.replace(run, mesh=one_device, compute=no_remat),
                        jax.local_devices(backend="cpu")[:1], global_batch)
    return float(single.lower().cost_analysis()["flops"])


# The TPU compiler's out-of-memory reports. Before its own rematerialisation it gives the
# temporaries alone: "the total memory required for HLO temporaries (172.38G) exceeds available
# HBM (95.73G)"; after it, the whole program's use, arguments included: "Ran out of memory in
# memory space hbm. Used 16.10G of 15.75G hbm. Exceeded hbm capacity by 356.62M."
_HBM_TEMPORARIES = re.compile(r"HLO temporaries \(([\d.]+)([KMGT])\) exceeds available HBM")
_HBM_USED = re.compile(r"Used ([\d.]+)([KMGT]) of [\d.]+[KMGT] hbm")
_UNITS = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
_REPORT_CHARS = 20_000  # of the compiler's report (it lists the largest allocations)


def compiler_oom_temporaries(message: str, argument_bytes: int) -> float | None:
    """Bytes of temporaries the TPU compiler's out-of-memory `message` reports (None when the
    message is not one): the figure it gives, or its total use less this chip's arguments."""
    if (found := _HBM_TEMPORARIES.search(message)) is not None:
        return float(found[1]) * _UNITS[found[2]]
    if (found := _HBM_USED.search(message)) is not None:
        return float(found[1]) * _UNITS[found[2]] - argument_bytes
    return None


def sharded_bytes(state, shardings) -> int:
    """Bytes of one chip's share of the train state under its shardings."""
    def shard_bytes(x, sharding):
        return math.prod(sharding.shard_shape(x.shape)) * x.dtype.itemsize
    return sum(jax.tree.leaves(jax.tree.map(shard_bytes, state, shardings)))


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def plan(config: ml_collections.ConfigDict, topology: str, mesh_sizes: dict[str, int],
         global_batch: int | None = None) -> dict:
    """Compile the sharded train step for `topology` and return the per-chip figures."""
    generation, num_chips = parse_topology(topology)
    chip = CHIPS[generation]
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy
    for axis, size in mesh_sizes.items():
        config.mesh[axis] = size
    run = parse_run_config(config)
    sizes = mesh_shape(run.mesh, num_chips)
    batch_size = global_batch or run.data.batch_size
    rows = sizes[DATA] * sizes[FSDP]
    if batch_size % rows:
        raise ConfigError(f"The global batch of {batch_size} must split over data x fsdp = "
                          f"{rows} chips: pass --batch with a multiple of {rows}.")
    devices = topologies.get_topology_desc(platform="tpu", topology_name=topology).devices

    started = time.perf_counter()
    planned = plan_setup(run, devices, batch_size)
    state = planned.state
    model_flops = unpartitioned_flops(run, batch_size)
    result = {
        "topology": topology, "chips": num_chips, "mesh": dict(planned.mesh.shape),
        "global_batch": batch_size, "frames": run.data.num_frames,
        "resolution": run.data.resolution,
        "params": count(state.params) + count(state.frozen),
        "trainable_params": count(state.params),
        "hbm_gib": chip.hbm_gib,
        "model_kind": run.model.kind,
        "compute": dataclasses.asdict(run.compute),
        "model_tflops_per_step": model_flops / 1e12,
    }
    try:
        compiled = planned.lower().compile()
    except jax.errors.JaxRuntimeError as error:
        arguments = sharded_bytes(state, planned.state_shardings)
        temporaries = compiler_oom_temporaries(str(error), arguments)
        if temporaries is None:
            raise
        # The TPU compiler stops when the step cannot fit: keep what it measured.
        return dict(result, compiled=False, argument_gib=arguments / GIB,
                    temp_gib=temporaries / GIB, peak_gib=(arguments + temporaries) / GIB,
                    fits=False, compile_s=time.perf_counter() - started,
                    compiler_report=str(error)[:_REPORT_CHARS])

    memory = compiled.memory_analysis()
    chip_flops = compiled.cost_analysis()["flops"]
    arguments = memory.argument_size_in_bytes
    peak = (arguments + memory.output_size_in_bytes - memory.alias_size_in_bytes
            + memory.temp_size_in_bytes)
    return dict(
        result, compiled=True, argument_gib=arguments / GIB,
        temp_gib=memory.temp_size_in_bytes / GIB, output_gib=memory.output_size_in_bytes / GIB,
        alias_gib=memory.alias_size_in_bytes / GIB, peak_gib=peak / GIB,
        fits=peak / GIB <= chip.hbm_gib, chip_tflops_per_step=chip_flops / 1e12,
        step_s_at_peak=chip_flops / (chip.peak_tflops * 1e12),
        # Useful work (unpartitioned, no remat) over the work each chip is compiled to do: the
        # MFU of a step that runs every chip at peak. Recomputation (remat) and work the sharding
        # repeats (e.g. gathered levels) lower it.
        mfu_at_peak=model_flops / (num_chips * chip_flops),
        compile_s=time.perf_counter() - started)


def switches(compute: dict) -> str:
    """The memory switches of a plan, as config overrides ('none' when all are off)."""
    defaults = dataclasses.asdict(ComputeSettings())
    changed = [f"{key}={value}" for key, value in compute.items() if value != defaults[key]]
    return " ".join(changed) or "none"


def format_plan(result: dict) -> str:
    mesh = ", ".join(f"{axis}={size}" for axis, size in result["mesh"].items())
    lines = [
        f"{result['topology']} ({result['chips']} chips), mesh {mesh}, global batch "
        f"{result['global_batch']} x {result['frames']} frames at {result['resolution']} px",
        f"  parameters {result['params']:,} ({result['trainable_params']:,} trainable); "
        f"switches: {switches(result['compute'])}",
        f"  per-chip memory: {result['peak_gib']:.2f} GiB of {result['hbm_gib']} GiB HBM "
        f"({'fits' if result['fits'] else 'does NOT fit'}): arguments {result['argument_gib']:.2f}, "
        f"temporaries {result['temp_gib']:.2f}",
        f"  FLOPs per step: {result['model_tflops_per_step']:.1f} TFLOP unpartitioned",
    ]
    if result["compiled"]:
        lines[-1] += f", {result['chip_tflops_per_step']:.1f} TFLOP per chip"
        lines.append(f"  at the chip's peak: {result['step_s_at_peak']:.3f} s/step, MFU "
                     f"{100 * result['mfu_at_peak']:.1f}%")
    else:
        lines.append("  (the TPU compiler stopped: the step does not fit the chip's HBM)")
    lines.append(f"  ({'compiled' if result['compiled'] else 'tried'} in {result['compile_s']:.0f} s)")
    return "\n".join(lines)


def define_flags() -> None:
    """The command's flags (defined only when run as a command, so that launch.aot_sample,
    which imports this module, can define its own)."""
    config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
    flags.DEFINE_string("topology", None, "TPU topology, e.g. v5p:4x4x4 or v5e:4x4.")
    flags.DEFINE_string("mesh", "data=-1", "Mesh axis sizes, e.g. data=1,fsdp=16,time=4.")
    flags.DEFINE_integer("batch", None, "Global batch (default: config.data.batch_size).")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.mark_flags_as_required(["config", "topology"])


def run_plan_command(argv, make_plan: Callable[[flags.FlagValues], dict],
                     describe: Callable[[dict], str]) -> None:
    """A plan command's body: the plan made from the parsed flags (bad values become usage
    errors), printed, and written to `--json` when given."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        result = make_plan(flags.FLAGS)
    except (ValueError, ConfigError) as error:
        raise app.UsageError(str(error)) from None
    print(describe(result), flush=True)
    if flags.FLAGS.json:
        with open(flags.FLAGS.json, "w") as out:
            json.dump(result, out, indent=2)


def main(argv):
    run_plan_command(argv, lambda f: plan(f.config, f.topology, parse_mesh(f.mesh), f.batch),
                     format_plan)


if __name__ == "__main__":
    define_flags()
    app.run(main)

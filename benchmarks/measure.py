"""What every benchmark reports, measured the same way: compile time apart from step time,
medians and minima of several rounds after a warm-up, XLA's FLOPs and memory, and MFU against
the chip's published peak (`launch.chips`). Results are appended to a JSON-lines file."""
from __future__ import annotations

import json
import platform
import statistics
import time
from typing import Callable

import jax

from launch.chips import chip_of

GIB = 2.0 ** 30


def compile_timed(lowered: jax.stages.Lowered) -> tuple[jax.stages.Compiled, float]:
    """(the compiled executable, seconds the compile took)."""
    start = time.perf_counter()
    compiled = lowered.compile()
    return compiled, time.perf_counter() - start


def compiled_costs(compiled: jax.stages.Compiled) -> dict:
    """XLA's own account of one call, per device: FLOPs and memory (GiB). `peak_gib` is what the
    call holds at once: arguments + outputs (less the donated, aliased ones) + temporaries."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per executable
        cost = cost[0]
    memory = compiled.memory_analysis()
    record = {"flops_per_device": float(cost.get("flops", 0.0))}
    if memory is not None:
        record.update(
            argument_gib=memory.argument_size_in_bytes / GIB,
            temp_gib=memory.temp_size_in_bytes / GIB,
            output_gib=memory.output_size_in_bytes / GIB,
            # outputs written over donated arguments: what donation saves
            aliased_gib=memory.alias_size_in_bytes / GIB,
            peak_gib=(memory.argument_size_in_bytes + memory.output_size_in_bytes
                      - memory.alias_size_in_bytes + memory.temp_size_in_bytes) / GIB)
    return record


def device_peak_gib() -> float | None:
    """The first local device's peak memory in use so far (GPU, TPU), or None (CPU keeps no
    such count)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / GIB


def time_rounds(call: Callable[[], object], steps: int, rounds: int, warmup: int = 1) -> dict:
    """Seconds per call: `warmup` calls first, then `rounds` rounds of `steps` calls, each call
    waited for. Returns the median of the round medians and the minimum of all calls."""
    if steps < 1 or rounds < 1:
        raise ValueError(f"Need steps >= 1 and rounds >= 1, got steps={steps}, rounds={rounds}.")
    for _ in range(warmup):
        jax.block_until_ready(call())
    medians, fastest = [], float("inf")
    for _ in range(rounds):
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            jax.block_until_ready(call())
            seconds.append(time.perf_counter() - start)
        medians.append(statistics.median(seconds))
        fastest = min(fastest, min(seconds))
    return {"median_s": statistics.median(medians), "min_s": fastest,
            "round_medians_s": medians}


def time_pipelined(call: Callable[[], object], steps: int, rounds: int) -> float:
    """Seconds per call when `steps` calls are dispatched back to back and waited for once at
    the end (no host sync between steps), the median over `rounds` rounds."""
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = None
        for _ in range(steps):
            result = call()
        jax.block_until_ready(result)
        per_call.append((time.perf_counter() - start) / steps)
    return statistics.median(per_call)


def throughput(seconds: float, flops_per_device: float, devices: int,
               device_kind: str | None = None) -> dict:
    """Achieved TFLOP/s per device and MFU against the bf16 peak of `device_kind` (default: this
    machine's first device); MFU is None on a chip that `launch.chips` does not know (a CPU)."""
    if seconds <= 0:
        raise ValueError(f"Need a positive time per call, got {seconds} s.")
    achieved = flops_per_device / seconds / 1e12
    chip = chip_of(device_kind or jax.devices()[0].device_kind)
    return {"tflops_per_device": achieved, "devices": devices,
            "chip": chip[0] if chip else None,
            "mfu": achieved / chip[1].peak_tflops if chip else None}


def environment() -> dict:
    """Where the figures were measured."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": device.device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_record(record: dict, jsonl: str | None) -> None:
    """Print the record and append it as one JSON line to `jsonl` (when given)."""
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if jsonl:
        with open(jsonl, "a") as f:
            f.write(line + "\n")

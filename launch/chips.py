"""Published per-chip figures, declared once for the ahead-of-time plans and the benchmarks:
HBM and the dense bf16 matmul peak (TPUs run f32 matmuls as bf16 passes; MFU is always quoted
against this peak)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Chip:
    """hbm_gib: memory per chip; peak_tflops: dense bf16 peak; kinds: what jax's
    `Device.device_kind` says on this chip (matched case-insensitively, as a prefix)."""
    hbm_gib: float
    peak_tflops: float
    kinds: tuple[str, ...] = ()


TPU_CHIPS = {
    "v4": Chip(hbm_gib=32, peak_tflops=275, kinds=("TPU v4",)),
    "v5e": Chip(hbm_gib=16, peak_tflops=197, kinds=("TPU v5 lite", "TPU v5e")),
    "v5p": Chip(hbm_gib=95, peak_tflops=459, kinds=("TPU v5p", "TPU v5")),
    "v6e": Chip(hbm_gib=32, peak_tflops=918, kinds=("TPU v6 lite", "TPU v6e")),
}
GPU_CHIPS = {
    "a100": Chip(hbm_gib=80, peak_tflops=312, kinds=("NVIDIA A100",)),
    "h100": Chip(hbm_gib=80, peak_tflops=989, kinds=("NVIDIA H100",)),
    "h200": Chip(hbm_gib=141, peak_tflops=989, kinds=("NVIDIA H200",)),
}
CHIPS = {**TPU_CHIPS, **GPU_CHIPS}


def chip_of(device_kind: str) -> tuple[str, Chip] | None:
    """The named chip whose device kind `device_kind` is (the longest matching prefix), or None
    (e.g. a CPU, which has no peak in this table)."""
    kind = device_kind.lower()
    matches = [(len(prefix), name) for name, chip in CHIPS.items() for prefix in chip.kinds
               if kind.startswith(prefix.lower())]
    if not matches:
        return None
    name = max(matches)[1]
    return name, CHIPS[name]

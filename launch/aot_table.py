"""Markdown table of ahead-of-time plans: `python -m launch.aot_table DIR` (JSON files written by
`python -m launch.aot_compile --json`, e.g. by launch/aot_plans.sh)."""
from __future__ import annotations

import glob
import json
import os
import sys

from launch.aot_compile import switches
from lumiere_jax.names import TIME

COLUMNS = ("plan", "topology", "mesh (data, fsdp, time)", "global batch", "switches",
           "clips x frames / chip", "per-chip GiB",
           "of which args", "of which temps", "fits HBM", "TFLOP / chip / step",
           "step s at peak", "MFU at peak")


def row(name: str, result: dict) -> list[str]:
    mesh = result["mesh"]
    time_shards = mesh[TIME]
    return [
        name, f"{result['topology']} ({result['chips']} chips)",
        f"({mesh['data']}, {mesh['fsdp']}, {time_shards})", str(result["global_batch"]),
        switches(result.get("compute", {})),
        f"{result['global_batch'] // (mesh['data'] * mesh['fsdp'])} x "
        f"{result['frames'] // time_shards} of {result['frames']} frames",
        f"{result['peak_gib']:.1f}", f"{result['argument_gib']:.1f}", f"{result['temp_gib']:.1f}",
        f"{'yes' if result['fits'] else 'no'} ({result['hbm_gib']} GiB)",
    ] + ([f"{result['chip_tflops_per_step']:.1f}", f"{result['step_s_at_peak']:.2f}",
          f"{100 * result['mfu_at_peak']:.0f}%"] if result["compiled"] else
         [f"({result['model_tflops_per_step'] / result['chips']:.1f} unpartitioned / chips)",
          "not compiled: OOM", "-"])


def table(directory: str) -> str:
    """One row per plan JSON under `directory`, sorted by file name."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            lines.append("| " + " | ".join(row(os.path.basename(path)[:-5], json.load(f))) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: python -m launch.aot_table DIR   (a folder of aot_compile --json files)")
    print(table(sys.argv[1]))

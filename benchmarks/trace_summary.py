"""A `jax.profiler` trace summed per XLA operation and per kind of operation, each operation
named with the jax operation it was lowered from (its HLO metadata)."""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re

# An HLO instruction with its jax operation: `%name = ... metadata={op_name="..." ...}`.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S+\s+(\w[\w\-]*)\(.*?"
                          r"op_name=\"([^\"]+)\"", re.M)


_HLO_NAME = re.compile(r"[a-z][\w\-]*(\.\d+)?")


def hlo_names(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (opcode, the jax op_name it was lowered from)."""
    return {name: (opcode, op_name) for name, opcode, op_name in _INSTRUCTION.findall(hlo_text)}


def device_events(trace_dir: str) -> list[dict]:
    """The complete ('X') events of the newest Perfetto trace under `trace_dir` that run an XLA
    operation (lower-case HLO names such as `fusion.12`; Python and runtime frames dropped)."""
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                             recursive=True), key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"No perfetto_trace.json.gz under {trace_dir}.")
    with gzip.open(paths[-1]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and _HLO_NAME.fullmatch(e["name"])]


def kind_of(name: str, names: dict) -> str:
    """What an operation does, for grouping: the last step of its jax op name (e.g.
    `conv_general_dilated`, `transpose`, `dot_general`), else its name without the number."""
    opcode, op_name = names.get(name, ("", ""))
    if op_name:
        return op_name.rsplit("/", 1)[-1]
    return opcode or name.rsplit(".", 1)[0]


def summarise(events: list[dict], names: dict, steps: int, top: int) -> dict:
    """Milliseconds a step and share of the traced time: per operation (the `top` heaviest, with
    opcode and jax op) and per kind of operation (`kind_of`)."""
    totals, kinds = collections.Counter(), collections.Counter()
    for event in events:
        totals[event["name"]] += event.get("dur", 0.0)
        kinds[kind_of(event["name"], names)] += event.get("dur", 0.0)
    whole = sum(totals.values()) or 1.0
    row = lambda micros: {"ms_per_step": micros / 1e3 / steps, "share": micros / whole}
    ops = [dict(op=name, opcode=names.get(name, ("", ""))[0],
                jax_op=names.get(name, ("", ""))[1], **row(micros))
           for name, micros in totals.most_common(top)]
    return {"ops": ops, "kinds": [dict(kind=kind, **row(micros))
                                  for kind, micros in kinds.most_common(top)]}

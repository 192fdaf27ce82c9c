"""metrics.jsonl writing and a progress line whose ETA ignores compile time."""
from __future__ import annotations

import json
import math
import os
import time

import jax


class MetricsWriter:
    """Appends one JSON object per logged step to `workdir/metrics.jsonl` (process 0 only)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = jax.process_index() == 0

    def drop_after(self, step: int) -> int:
        """Removes the records of steps after `step` (a resumed run logs them again); returns
        how many were removed. The file is replaced atomically."""
        if not self.enabled or not os.path.isfile(self.path):
            return 0
        with open(self.path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        if len(kept) < len(lines):
            temporary = self.path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as f:
                f.writelines(kept)
            os.replace(temporary, self.path)
        return len(lines) - len(kept)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class StepTimer:
    """Measures seconds per step from the second step on (the first one compiles)."""

    def __init__(self, start_step: int, total_steps: int):
        self.total_steps = total_steps
        self.first_step = start_step
        self.reference = None  # (step, time) after the compiling step

    def tick(self, step: int) -> None:
        if self.reference is None and step > self.first_step:
            self.reference = (step, time.perf_counter())

    def seconds_per_step(self, step: int) -> float | None:
        if self.reference is None or step <= self.reference[0]:
            return None
        reference_step, reference_time = self.reference
        return (time.perf_counter() - reference_time) / (step - reference_step)

    def eta_seconds(self, step: int) -> float | None:
        per_step = self.seconds_per_step(step)
        return None if per_step is None else per_step * (self.total_steps - step)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(step: int, total: int, metrics: dict, timer: StepTimer) -> str:
    """`step 120/4000 (3%) loss 0.1234 | 0.61 s/step | ETA 39:20`."""
    per_step = timer.seconds_per_step(step)
    speed = "compiling" if per_step is None else f"{per_step:.2f} s/step"
    return (f"step {step}/{total} ({100 * step // total}%) loss {metrics.get('loss', float('nan')):.4f}"
            f" | {speed} | ETA {format_duration(timer.eta_seconds(step))}")

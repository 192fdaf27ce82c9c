"""A random-kill soak of the trainer: proves that a run killed at any moment resumes exactly.

One run goes uninterrupted. A second, same config and workdir-relative paths, is SIGKILLed
`--kills` times at random moments (one of them while an asynchronous checkpoint is being
written: the moment Orbax's temporary folder appears) and restarted each time, then runs to the
end. The soak then checks that:
- every restart resumed from the newest complete checkpoint on disk (no lost steps beyond it,
  and never a half-written one);
- the final train state (parameters, EMA, optimizer state, step) is bit-identical to the
  uninterrupted run's, and so is the export;
- `metrics.jsonl` holds every logged step once, with the uninterrupted run's values (timing
  fields aside).

    python -m launch.kill_soak --workdir runs/soak --kills 5 [--steps 60 --every 5 --seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from lumiere_jax.train.checkpointing import RunCheckpoints

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "configs", "t2i_shapes.py") + ":variant=tiny"
TEMPORARY = "orbax-checkpoint-tmp"
# metrics.jsonl fields that measure time, not the run's numbers.
TIMING_FIELDS = ("examples_per_s", "train_minutes", "eval_seconds")
RESUMED = re.compile(r"Resuming from step (\d+)")
PROGRESS = re.compile(r"^step (\d+)/\d+")
# The longest a run may go without finishing, a generous safety limit (not a timing assertion).
SAFETY_LIMIT_S = 900


class SoakFailure(AssertionError):
    """The killed run did not resume exactly."""


class Trainer:
    """One `python -m lumiere_jax.main` process whose output is read line by line."""

    def __init__(self, config: str, workdir: str, overrides: list[str], env: dict):
        command = [sys.executable, "-m", "lumiere_jax.main", "--config", config,
                   "--workdir", workdir, *overrides]
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if PROGRESS.search(line):
                self.started.set()

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.reader.join()

    def finish(self) -> int:
        code = self.process.wait(timeout=SAFETY_LIMIT_S)
        self.reader.join()
        return code

    def output(self) -> str:
        return "".join(self.lines)

    def last_step(self) -> int | None:
        """The last step the run logged (it logs every step in the soak)."""
        steps = [int(m.group(1)) for m in map(PROGRESS.search, self.lines) if m]
        return steps[-1] if steps else None

    def resumed_from(self) -> int | None:
        found = RESUMED.search(self.output())
        return int(found.group(1)) if found else None


def checkpoints_on_disk(workdir: str) -> tuple[list[int], list[str]]:
    """(complete checkpoint steps, names of half-written ones) under `workdir/checkpoints`."""
    folder = os.path.join(workdir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if TEMPORARY in n)


def wait_until(condition, limit_s: float, what: str, trainer: Trainer, poll_s: float = 0.001):
    """Polls `condition` until it holds; fails clearly if the trainer exits or the safety limit
    passes first."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if not trainer.running():
            return False
        if time.monotonic() > deadline:
            trainer.kill()
            raise SoakFailure(f"Gave up waiting for {what} after {limit_s:.0f} s (a safety "
                              f"limit); trainer output:\n{trainer.output()[-3000:]}")
        time.sleep(poll_s)
    return True


def read_arrays(path: str) -> dict:
    """An Orbax checkpoint item as numpy arrays by tree path."""
    leaves = jax.tree_util.tree_leaves_with_path(ocp.PyTreeCheckpointer().restore(path))
    return {jax.tree_util.keystr(key): np.asarray(leaf) for key, leaf in leaves}


def read_state(workdir: str, step: int) -> dict:
    """The train state of a run's checkpoint, as numpy arrays by path."""
    return read_arrays(os.path.join(workdir, "checkpoints", str(step), "state"))


def train_seconds(workdir: str, step: int | None) -> float:
    """The training clock a run's checkpoint holds (0 without one)."""
    if step is None:
        return 0.0
    checkpoints = RunCheckpoints(workdir, every_steps=1, max_to_keep=1)
    try:
        return float(checkpoints.restore_metadata(step)["train_seconds"])
    finally:
        checkpoints.close()


def read_metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def compare_runs(reference: str, killed: str, step: int) -> dict:
    """Differences between the two runs' final states, exports and metrics (empty lists: none)."""
    ours, theirs = read_state(reference, step), read_state(killed, step)
    state_diff = sorted(set(ours) ^ set(theirs)) + [
        path for path in sorted(set(ours) & set(theirs))
        if ours[path].shape != theirs[path].shape or not np.array_equal(ours[path], theirs[path])]
    exports = [read_export(os.path.join(run, "export")) for run in (reference, killed)]
    export_diff = [path for path in sorted(exports[0])
                   if path not in exports[1] or not np.array_equal(exports[0][path], exports[1][path])]
    strip = lambda records: [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
                             for r in records]
    metrics = [strip(read_metrics(run)) for run in (reference, killed)]
    steps = [r["step"] for r in metrics[1]]
    return {"state_leaves": len(ours), "state_differs": state_diff,
            "export_differs": export_diff,
            "metrics_identical": metrics[0] == metrics[1],
            "metrics_duplicate_steps": sorted({s for s in steps if steps.count(s) > 1})}


def read_export(folder: str) -> dict:
    """An export's parameters, as numpy arrays by path."""
    return read_arrays(os.path.join(folder, "params"))


def soak(workdir: str, *, kills: int = 5, steps: int = 60, every: int = 5, seed: int = 0,
         config: str = DEFAULT_CONFIG, extra: tuple[str, ...] = (), data_dir: str | None = None,
         xla_flags: str | None = None, log=print) -> dict:
    """Runs the soak in `workdir` (emptied first); returns the report. Raises SoakFailure when a
    restart lost steps or restored a half-written checkpoint, or the runs differ. `xla_flags`:
    the trainers' XLA_FLAGS (default: none, one CPU device)."""
    if kills < 1:
        raise ValueError(f"kills must be at least 1, got {kills}.")
    # Absolute: the runs start in the repository and Orbax reads only absolute paths.
    workdir = os.path.abspath(workdir)
    data_dir = os.path.abspath(data_dir) if data_dir else data_dir
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=os.path.join(workdir, "jax_cache"))
    env.pop("XLA_FLAGS", None)
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    overrides = [f"--config.optim.total_steps={steps}", f"--config.checkpoint.every_steps={every}",
                 "--config.checkpoint.max_to_keep=3", "--config.log.every_steps=1", *extra]
    if data_dir:
        overrides.append(f"--config.data.data_dir={data_dir}")
    rng = random.Random(seed)

    reference = os.path.join(workdir, "reference")
    trainer = Trainer(config, reference, overrides, env)
    wait_until(trainer.started.is_set, SAFETY_LIMIT_S, "the reference run to start", trainer)
    began = time.monotonic()
    if trainer.finish() != 0:
        raise SoakFailure(f"The uninterrupted run failed:\n{trainer.output()[-3000:]}")
    step_s = (time.monotonic() - began) / steps
    log(f"reference run: {steps} steps, {step_s:.3f} s a step after its first")

    killed = os.path.join(workdir, "killed")
    during_write = rng.randrange(kills)  # which kill waits for a checkpoint write
    events, expected_resume = [], None
    for index in range(kills):
        trainer = Trainer(config, killed, overrides, env)
        if not wait_until(trainer.started.is_set, SAFETY_LIMIT_S, "the run's first step", trainer):
            raise SoakFailure(f"The run exited before training:\n{trainer.output()[-3000:]}")
        resumed = trainer.resumed_from()
        if resumed != expected_resume:
            raise SoakFailure(f"Restart {index} resumed from {resumed}, but the newest complete "
                              f"checkpoint on disk was {expected_resume}.")
        if index == during_write:
            complete_before = checkpoints_on_disk(killed)[0]
            wait_until(lambda: checkpoints_on_disk(killed)[1], SAFETY_LIMIT_S,
                       "a checkpoint write", trainer, poll_s=0.0005)
            moment = "during a checkpoint write"
        else:
            # Anywhere in the steps left, as the reference run paced them.
            delay = rng.uniform(0.0, 0.9 * (steps - (trainer.last_step() or 0)) * step_s)
            deadline = time.monotonic() + delay
            while trainer.running() and time.monotonic() < deadline:
                time.sleep(0.005)
            moment = f"{delay:.2f} s after its first step"
        if not trainer.running():
            raise SoakFailure(f"The run ended before kill {index} ({moment}); give it more "
                              f"steps.")
        trainer.kill()
        complete, partial = checkpoints_on_disk(killed)
        if index == during_write and not partial:
            raise SoakFailure("The kill meant for a checkpoint write came after it had finished.")
        expected_resume = complete[-1] if complete else None
        event = {"kill": index, "moment": moment, "last_logged_step": trainer.last_step(),
                 "complete_checkpoints": complete, "half_written": partial,
                 "resumed_from": resumed}
        if index == during_write:
            event["complete_before_write"] = complete_before
        events.append(event)
        log(f"kill {index}: {moment}, at step {trainer.last_step()}; complete checkpoints "
            f"{complete}, half-written {partial}")

    seconds_before = train_seconds(killed, expected_resume)
    trainer = Trainer(config, killed, overrides, env)
    if trainer.finish() != 0:
        raise SoakFailure(f"The restarted run failed:\n{trainer.output()[-3000:]}")
    if trainer.resumed_from() != expected_resume:
        raise SoakFailure(f"The last restart resumed from {trainer.resumed_from()}, but the "
                          f"newest complete checkpoint on disk was {expected_resume}.")
    events.append({"kill": None, "moment": "ran to the end", "resumed_from": expected_resume})
    report = {"steps": steps, "every": every, "kills": kills, "seed": seed, "events": events,
              **compare_runs(reference, killed, steps)}
    report["train_seconds"] = {"at_last_resume": seconds_before,
                               "final": train_seconds(killed, steps)}
    report["identical"] = (not report["state_differs"] and not report["export_differs"]
                           and report["metrics_identical"]
                           and not report["metrics_duplicate_steps"])
    if not report["identical"]:
        raise SoakFailure(f"The killed run differs from the uninterrupted one: "
                          f"{json.dumps(report, indent=1)[:3000]}")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="Emptied, then holds both runs.")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=5, help="Checkpoint interval in steps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="Also write the report here.")
    args = parser.parse_args(argv)
    try:
        report = soak(args.workdir, kills=args.kills, steps=args.steps, every=args.every,
                      seed=args.seed, config=args.config, data_dir=args.data_dir)
    except SoakFailure as failure:
        print(f"kill_soak: FAILED: {failure}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runs a sweep: one training run per override dict of a sweep file, each in its own workdir.

    python -m launch.sweep --sweep configs/sweeps/t2i_lr.py [--launcher local|tpu] [--root DIR]
                           [--config BASE] [--dry-run] [--keep-going] [-- EXTRA FLAGS FOR EVERY RUN]

A sweep file names its base config and lists its points:

    BASE_CONFIG = "configs/t2i_shapes.py"          # may carry an arg: "configs/x.py:variant=tiny"
    def get_sweep():
        return [{"optim.learning_rate": 3e-4, "data.batch_size": 64}, ...]

Run i trains in `<root>/<sweep>/<run name>`, the name made from its overrides
(`learning_rate=0.0003,batch_size=64`), so starting a sweep again resumes every run.
`local` runs them one after the other here (`python -m lumiere_jax.main`); `tpu` runs them one
after the other on the TPU through `launch/train.sh --wait`.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROOTS = {"local": "workdirs", "tpu": os.environ.get("WORKDIR_ROOT", "gs://YOUR_BUCKET/lumiere")}


@dataclasses.dataclass(frozen=True)
class Run:
    """One sweep point: its name, workdir and `--config.key=value` flags."""
    name: str
    workdir: str
    config: str
    overrides: dict


def load_module(path: str, name: str):
    """Imports a Python file by path (sweep files and config files are not packages)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sweep(path: str) -> tuple[str, list[dict]]:
    """(base config, list of override dicts) from a sweep file."""
    module = load_module(path, "sweep_" + os.path.splitext(os.path.basename(path))[0])
    if not hasattr(module, "BASE_CONFIG") or not hasattr(module, "get_sweep"):
        raise ValueError(f"{path} must define BASE_CONFIG and get_sweep().")
    points = list(module.get_sweep())
    if not points or not all(isinstance(point, dict) for point in points):
        raise ValueError(f"get_sweep() in {path} must return a non-empty list of dicts.")
    return module.BASE_CONFIG, points


def check_overrides(config: str, points: list[dict]) -> None:
    """Refuses override keys that the base config does not have (before any run starts)."""
    path, _, arg = config.partition(":")
    base = load_module(os.path.join(REPO_ROOT, path), "sweep_base_config").get_config(arg or None)
    for point in points:
        for key in point:
            node = base
            for part in key.split("."):
                if not hasattr(node, "keys") or part not in node:
                    raise KeyError(f"Override {key!r} names no field of {config} "
                                   f"(at {part!r}; there: {sorted(node.keys()) if hasattr(node, 'keys') else node!r}).")
                node = node[part]


def flag_value(value) -> str:
    """A config value as config_flags parses it back (`(1,2)` for tuples)."""
    if isinstance(value, (tuple, list)):
        return repr(value).replace(" ", "")
    return str(value)


def name_value(value) -> str:
    """A config value in a run name: sequences as `1-2`."""
    if isinstance(value, (tuple, list)):
        return "-".join(name_value(item) for item in value)
    return str(value)


def run_name(overrides: dict) -> str:
    """`learning_rate=0.0003,batch_size=64`: last key part and value, safe in paths and shells."""
    if not overrides:
        return "base"
    parts = [f"{key.split('.')[-1]}={name_value(value)}" for key, value in overrides.items()]
    return re.sub(r"[^A-Za-z0-9._=,+-]", "-", ",".join(parts))


def expand(sweep_path: str, root: str, config: str | None = None) -> list[Run]:
    """The sweep's runs, each with its own workdir `<root>/<sweep>/<run name>`.

    `config` replaces the sweep file's BASE_CONFIG (e.g. a tiny variant for a quick try).
    """
    base, points = load_sweep(sweep_path)
    config = config or base
    check_overrides(config, points)
    sweep = os.path.splitext(os.path.basename(sweep_path))[0]
    runs = [Run(run_name(point), f"{root.rstrip('/')}/{sweep}/{run_name(point)}", config, point)
            for point in points]
    seen = {}
    for index, run in enumerate(runs):
        if run.name in seen:
            raise ValueError(f"Sweep points {seen[run.name]} and {index} share the run name "
                             f"{run.name!r} (repeated overrides?).")
        seen[run.name] = index
    return runs


def override_flags(run: Run) -> list[str]:
    return [f"--config.{key}={flag_value(value)}" for key, value in run.overrides.items()]


def command(run: Run, launcher: str, extra: list[str]) -> list[str]:
    """The command that trains `run`: locally, or on the TPU through launch/train.sh."""
    if launcher == "local":
        return [sys.executable, "-m", "lumiere_jax.main", "--config", run.config,
                "--workdir", run.workdir, *override_flags(run), *extra]
    return ["bash", "launch/train.sh", "--config", run.config, "--workdir", run.workdir, "--wait",
            *override_flags(run), *(["--", *extra] if extra else [])]


def parse_args(argv):
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    else:
        extra = []
    parser = argparse.ArgumentParser(prog="python -m launch.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", required=True, help="sweep file, e.g. configs/sweeps/t2i_lr.py")
    parser.add_argument("--config", help="base config instead of the sweep file's BASE_CONFIG")
    parser.add_argument("--launcher", choices=("local", "tpu"), default="local")
    parser.add_argument("--root", help="workdir root (default: workdirs, or $WORKDIR_ROOT for tpu)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--keep-going", action="store_true", help="go on after a failed run")
    args = parser.parse_args(argv)
    return args, extra


def main(argv=None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        runs = expand(args.sweep, args.root or DEFAULT_ROOTS[args.launcher], args.config)
    except (OSError, KeyError, ValueError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    failed = []
    for index, run in enumerate(runs, start=1):
        cmd = command(run, args.launcher, extra)
        if args.dry_run:
            print(shlex.join(cmd))
            continue
        print(f"[sweep {index}/{len(runs)}] {run.name} -> {run.workdir}", file=sys.stderr, flush=True)
        if subprocess.run(cmd, cwd=REPO_ROOT).returncode:
            failed.append(run.name)
            if not args.keep_going:
                break
    if failed:
        print(f"Failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

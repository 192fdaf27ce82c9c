"""Runs every command of the README, in order, and checks what each one writes.

    python -m launch.readme_commands [--quick] [--only REGEX] [--scratch DIR] [--json FILE]

The commands are the README's: each line of its ```bash blocks (a line chained with `&&` is
several commands; `pip install` and the test command are left to the set-up), each command of
its gallery table, and its ```python blocks. They run in a scratch folder that links the
repository's `configs/`, `launch/`, `benchmarks/`, `lumiere_jax/` and `docs/examples/`, so the
relative paths of the README work and nothing is written into the repository (the gallery's
`docs/gallery/` is a real folder there). A command passes when it exits 0 and every file it
names (`--out`, `--xt-slice`, `--json`, a training `--workdir`'s export) is there and reads back
as what it should be: a video or image that is not blank, JSON, an export with its config.

Full mode runs each command as written, except that a training runs `--train-steps` steps (its
whole length is in the model cards). `--quick` (what tests/test_readme.py runs) cuts the work of
each command with flags it already has (2 denoising steps, a few samples, 2 training steps on
64 clips), runs the first command of each program (a `lumiere-jax` subcommand, a module, a
script) and the commands whose outputs those read, and runs the `lumiere-jax` commands and python
blocks in its own process (what one compiles, the next reuses). It leaves out the programs that
a test of their own runs with the README's settings (`COVERED`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
LINKED = ("configs", "launch", "benchmarks", "lumiere_jax", os.path.join("docs", "examples"))
SETUP_PREFIXES = ("pip install", "python -m pytest")

# Programs that a test of their own runs with the README's settings: --quick leaves them out.
COVERED = {
    "python -m launch.kill_soak": "tests/test_trainer.py::"
    "test_a_run_killed_at_random_moments_ends_bit_identical_to_an_uninterrupted_one",
    "python -m launch.aot_compile": "tests/test_aot_compile.py::tiny_plans",
}

# What a `lumiere-jax` command writes without --out (lumiere_jax/cli.py's defaults).
DEFAULT_OUT = {"sample": "sample.mp4", "sample-image": "samples.png", "upscale": "upscaled.mp4",
               "i2v": "i2v.mp4", "inpaint": "inpaint.mp4", "cinemagraph": "cinemagraph.mp4",
               "stylize": "stylize.mp4"}
SAMPLING = ("sample", "sample-image", "upscale", "i2v", "inpaint", "cinemagraph", "stylize")
QUICK_EVALUATION = {"evaluate-t2i": ["--num", "4", "--batch", "4"],
                    "evaluate-video": ["--num", "2", "--batch", "2"],
                    "evaluate-sr": ["--num", "4", "--batch", "4"],
                    "evaluate-ssr": ["--num", "1", "--batch", "1", "--frames", "8"]}
QUICK_SCRIPTS = {"launch.denoising_profile": ["--num", "4"],
                 "benchmarks/ssr_windows.py": ["--frames", "16", "--repeats", "1"]}
SMALL_DATA = ["--config.data.num_train=64", "--config.data.num_validation=16",
              "--config.data.num_heldout=16", "--config.data.batch_size=4"]
QUICK_TEXT_STAGE = ["--config.data.num_captions=512", "--config.data.batch_size=8",
                    "--config.probe.num_train=64", "--config.probe.num_validation=32",
                    "--config.probe.steps=5"]
FULL_EVAL = ["--config.log.eval_num=8", "--config.log.eval_batch=8"]
QUICK_EVAL = ["--config.log.eval_num=4",
              "--config.log.eval_steps=2", "--config.log.eval_batch=4"]


@dataclasses.dataclass(frozen=True)
class Command:
    """One README command: `text` as written, `kind` 'shell' or 'python' (a ```python block)."""
    text: str
    kind: str = "shell"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text) if self.kind == "shell" else [sys.executable, "-c", self.text]

    @property
    def program(self) -> str:
        """'lumiere-jax sample', 'python -m launch.sweep', 'python benchmarks/x.py', 'python'."""
        if self.kind == "python":
            return "python"
        argv = self.argv
        return " ".join(argv[:3] if argv[:2] == ["python", "-m"] else argv[:2])

    def reads(self) -> list[str]:
        """Paths the command reads (inputs, checkpoints, workdirs, a config's backbone=/base=)."""
        argv, paths = self.argv, []
        for flag in ("--video", "--image", "--mask", "--checkpoint", "--style-checkpoint"):
            paths.append(flag_value(argv, flag))
        paths += [arg.split("=", 1)[1] for arg in argv if "=" in arg and not arg.startswith("-")]
        config_args = (flag_value(argv, "--config") or "").partition(":")[2]
        paths += [pair.split("=", 1)[1] for pair in config_args.split(",") if "=" in pair]
        return [os.path.normpath(p) for p in paths if p]

    def writes(self) -> list[str]:
        """Paths the command writes (outputs and workdirs)."""
        argv = self.argv
        names = [flag_value(argv, flag) for flag in ("--out", "--xt-slice", "--json", "--workdir")]
        return [os.path.normpath(n) for n in names if n]


def readme_commands(text: str) -> list[Command]:
    """The README's commands in the order they appear (bash blocks, gallery table, python)."""
    commands = []
    pattern = r"```(bash|python)\n(.*?)```|^\|[^\n]*\| `(lumiere-jax [^`]+)` \|$"
    for match in re.finditer(pattern, text, flags=re.S | re.M):
        language, block, row = match.groups()
        if row:
            commands.append(Command(row))
        elif language == "python":
            commands.append(Command(block.strip(), kind="python"))
        else:
            for line in block.splitlines():
                for part in line.split("&&"):
                    part = part.strip()
                    if part and not part.startswith("#") and not part.startswith(SETUP_PREFIXES):
                        commands.append(Command(part))
    return commands


def flag_value(argv: list[str], flag: str) -> str | None:
    """The last value given to `flag` (`--flag V` or `--flag=V`), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def training_flags(train_steps: int, quick: bool, text_stage: bool) -> list[str]:
    """Overrides that shorten a `python -m lumiere_jax.main` run to `train_steps` steps with one
    evaluation at the end where the config evaluates (the trainer evaluates after the last
    step; full: 8 samples at the config's steps, quick: small data and a tiny evaluation). The
    text stage has no clips, evaluation or validation splits: quick shrinks its captions and
    probe instead."""
    steps = [f"--config.optim.total_steps={train_steps}", "--config.optim.warmup_steps=1",
             f"--config.checkpoint.every_steps={train_steps}"]
    if text_stage:
        return steps + (QUICK_TEXT_STAGE if quick else [])
    return steps + (SMALL_DATA + QUICK_EVAL if quick else FULL_EVAL)


def run_argv(command: Command, quick: bool, train_steps: int) -> list[str]:
    """The argv that runs `command` in the chosen mode."""
    argv, program = command.argv, command.program
    if program == "python -m lumiere_jax.main":
        text_stage = "t5_shapes" in (flag_value(argv, "--config") or "")
        return argv + training_flags(train_steps, quick, text_stage)
    if not quick:
        return argv
    if command.kind == "python":
        return argv[:2] + [re.sub(r"num_inference_steps=\d+", "num_inference_steps=2", argv[2])]
    subcommand = argv[1] if argv[0] == "lumiere-jax" and len(argv) > 1 else ""
    if subcommand in SAMPLING:
        return argv + ["--steps", "2"] + (["--ssr-steps", "2"] if "--ssr" in argv else [])
    if subcommand in QUICK_EVALUATION:
        return argv + QUICK_EVALUATION[subcommand] + ["--steps", "2"]
    for script, extra in QUICK_SCRIPTS.items():
        if script in argv:
            return argv + extra
    return argv


def plan(commands: list[Command], quick: bool) -> list[tuple[Command, str]]:
    """(command, why it is left out or '') for every command. Quick runs the first command of
    each program (a `lumiere-jax` subcommand, a module, a script, the python block) and every
    command whose output a command that runs reads; it leaves out the programs a test covers."""
    why = [""] * len(commands)
    if quick:
        seen = set()
        for i, command in enumerate(commands):
            if command.program in COVERED:
                why[i] = f"covered by {COVERED[command.program]}"
            elif command.program in seen:
                why[i] = f"quick runs one {command.program} command"
            seen.add(command.program)
        changed = True
        while changed:  # a command that runs needs what earlier commands write
            changed = False
            for i, command in enumerate(commands):
                for j in range(i) if not why[i] else ():
                    if why[j] and not why[j].startswith("covered") and any(
                            read == out or read.startswith(out + os.sep)
                            for read in command.reads() for out in commands[j].writes()):
                        why[j], changed = "", True
    return list(zip(commands, why))


def make_scratch(path: str | None) -> str:
    """A folder where the README's relative paths resolve to the repository's."""
    scratch = path or tempfile.mkdtemp(prefix="readme_commands_")
    os.makedirs(os.path.join(scratch, "docs", "gallery"), exist_ok=True)
    for name in LINKED:
        link = os.path.join(scratch, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(ROOT, name), link)
    return scratch


def check_outputs(argv: list[str], scratch: str) -> dict[str, str]:
    """What each file the command names (`--out`, `--xt-slice`, `--json`, a training workdir's
    export, the file names in a python block) turned out to be; raises if one is missing,
    unreadable or blank."""
    import numpy as np

    from lumiere_jax.data import video_io

    found = {}
    names = [flag_value(argv, flag) for flag in ("--out", "--xt-slice", "--json")]
    if argv[0] == "lumiere-jax" and names[0] is None:
        names[0] = DEFAULT_OUT.get(argv[1])
    if argv[1:2] == ["-c"]:  # a python block: the files its string literals name
        names = re.findall(r"[\"']([^\"']+\.(?:mp4|gif|png|json))[\"']", argv[2])
    if "launch.export_spatial" in argv:  # --out is an export folder
        names = [os.path.join(names[0], "config.json")]
    if "lumiere_jax.main" in argv:
        names.append(os.path.join(flag_value(argv, "--workdir"), "export", "config.json"))
    for name in filter(None, names):
        path = os.path.join(scratch, name)
        if not os.path.exists(path):
            raise AssertionError(f"{name} was not written")
        if name.endswith((".mp4", ".gif")):
            frames = video_io.read_video(path)
            found[name] = f"video {tuple(frames.shape)}, pixel std {np.std(frames):.1f}"
        elif name.endswith(".png"):
            frames = video_io.read_image(path)
            found[name] = f"image {tuple(frames.shape)}, pixel std {np.std(frames):.1f}"
        elif name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                found[name] = f"JSON with {len(json.load(f))} entries"
            continue
        else:
            found[name] = "present"
            continue
        if np.std(frames) == 0:
            raise AssertionError(f"{name} is blank (every pixel the same)")
    return found


def run_in_process(argv: list[str], scratch: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a `lumiere-jax` command run by this process's
    `lumiere_jax.cli.main` (the console script's function), or of a python block run by
    `exec`, in `scratch`."""
    from lumiere_jax import cli

    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(scratch)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv[1:]) if argv[0] == "lumiere-jax" else exec(argv[2], {})
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(cwd)
    return code or 0, out.getvalue(), err.getvalue()


def run_one(command: Command, scratch: str, quick: bool, train_steps: int,
            timeout: float | None = None, env: dict | None = None,
            in_process: bool = False) -> dict:
    """Runs one command in `scratch`; returns its record, raises AssertionError when it fails
    or writes something missing or blank. A subprocess gets `env` added to its environment;
    `in_process` runs `lumiere-jax` commands and python blocks in this process instead (models
    compiled by one command are reused by the next: quick runs)."""
    argv = run_argv(command, quick, train_steps)
    start = time.perf_counter()
    if in_process and (argv[0] == "lumiere-jax" or command.kind == "python"):
        code, stdout, stderr = run_in_process(argv, scratch)
    else:
        result = subprocess.run(argv, cwd=scratch, env=dict(os.environ, **(env or {})),
                                capture_output=True, text=True, timeout=timeout)
        code, stdout, stderr = result.returncode, result.stdout, result.stderr
    seconds = time.perf_counter() - start
    if code != 0:
        raise AssertionError(f"`{command.text}` exited {code}:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    outputs = check_outputs(argv, scratch)
    if not outputs and not stdout.strip():
        raise AssertionError(f"`{command.text}` wrote no file and printed nothing")
    last_line = (stdout.strip().splitlines() or [""])[-1]
    return {"command": command.text, "ran": shlex.join(argv) if argv != command.argv else "as written",
            "seconds": round(seconds, 1), "outputs": outputs, "last_line": last_line[:200]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="cut every command's work (CI)")
    parser.add_argument("--only", default=None, help="run only commands matching this regex")
    parser.add_argument("--scratch", default=None, help="folder to run in (default: a new one)")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="steps of each training (default 2 quick, 10 full)")
    parser.add_argument("--json", default=None, help="also write the records here (kept "
                        "records of commands this run leaves out)")
    args = parser.parse_args(argv)
    train_steps = args.train_steps or (2 if args.quick else 10)
    with open(README, encoding="utf-8") as f:
        commands = readme_commands(f.read())
    scratch = make_scratch(args.scratch)
    print(f"{len(commands)} commands, run in {scratch}", flush=True)
    records, failed, start = [], 0, time.perf_counter()
    kept = read_records(args.json) if args.json else {}
    for command, why in plan(commands, args.quick):
        if args.only and not re.search(args.only, command.text):
            continue
        if why:
            records.append({"command": command.text, "skipped": why})
            print(f"skip  {command.text[:100]}  ({why})", flush=True)
            continue
        try:
            record = run_one(command, scratch, args.quick, train_steps, in_process=args.quick)
        except AssertionError as error:
            failed += 1
            record = {"command": command.text, "failed": str(error)[-3000:]}
            print(f"FAIL  {command.text[:100]}\n{error}", flush=True)
        else:
            print(f"ok    {record['seconds']:7.1f} s  {command.text[:100]}", flush=True)
        records.append(record)
        if args.json:  # after every command, so an interrupted run keeps what it measured
            write_records(args.json, commands, kept, records, args.quick, train_steps)
    total = time.perf_counter() - start
    print(f"{len(records) - failed} of {len(records)} passed or skipped, {failed} failed, "
          f"{total:.0f} s", flush=True)
    return 1 if failed else 0


def read_records(path: str) -> dict[str, dict]:
    """The records of an earlier run in `path` by command (empty if there is none)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return {record["command"]: record for record in json.load(f)["commands"]}


def write_records(path: str, commands: list[Command], kept: dict, records: list[dict],
                  quick: bool, train_steps: int) -> None:
    """Writes this run's records over an earlier run's (`kept`), in the README's order, so a
    run of some commands (`--only`) updates their records and keeps the others'."""
    merged = dict(kept, **{record["command"]: record for record in records})
    ordered = [merged[c.text] for c in commands if c.text in merged]
    report = {"mode": "quick" if quick else "full", "train_steps": train_steps,
              "seconds": round(sum(r.get("seconds", 0) for r in ordered)), "commands": ordered}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())

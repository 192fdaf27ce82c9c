"""The README's commands (launch/readme_commands.py): every one ran in the last full run on
record, each runs in quick mode here (in the README's order, later ones reading what earlier
ones wrote) and writes what it names, and the runner itself fails a command that fails."""
import json
import pathlib
import re

import numpy as np
import pytest

from launch import readme_commands as runner
from limits import FAST_COMPILE, SAFETY_LIMIT_S
from lumiere_jax.data import video_io

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = runner.readme_commands(README)
GALLERY_SCRIPT = (ROOT / "docs" / "make_gallery.sh").read_text(encoding="utf-8")
# Subprocesses see one CPU device, as a user's machine has (the suite's processes see 8).
ENV = {"XLA_FLAGS": FAST_COMPILE}


def gallery_commands() -> list[str]:
    """make_gallery.sh's commands with its output folder written as docs/gallery."""
    lines = [line[len("run "):] for line in GALLERY_SCRIPT.splitlines() if line.startswith("run ")]
    return [line.replace('"$OUT/', "docs/gallery/").replace('.gif"', ".gif")
            .replace('.png"', ".png") for line in lines]


def test_the_readme_shows_each_gallery_command_and_its_files():
    shown = [command.text for command in COMMANDS]
    for command in gallery_commands():
        assert command in shown, command
        for path in re.findall(r"docs/gallery/\S+", command):
            assert (ROOT / path).is_file(), f"{path} is missing: run bash docs/make_gallery.sh"
            assert f"]({path})" in README, f"the README does not show {path}"


def test_every_readme_command_passed_in_the_last_full_run():
    """docs/readme_commands.json is the record of `python -m launch.readme_commands --json ...`:
    a README command added or changed since then fails here until the full run is made again."""
    record = json.loads((ROOT / "docs" / "readme_commands.json").read_text(encoding="utf-8"))
    assert record["mode"] == "full"
    assert [entry["command"] for entry in record["commands"]] == [c.text for c in COMMANDS]
    for entry in record["commands"]:
        assert "failed" not in entry and "skipped" not in entry, entry
        assert entry["outputs"] or entry["last_line"], entry


def test_the_covered_commands_are_run_by_the_tests_named():
    for program, test in runner.COVERED.items():
        path, name = test.split("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"def {name}\(", source), test
        assert program.split()[-1].split(".")[-1] in source, (program, test)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return runner.make_scratch(str(tmp_path_factory.mktemp("readme")))


@pytest.mark.parametrize("command,why", runner.plan(COMMANDS, quick=True),
                         ids=[f"{i:02d}-{c.program.split()[-1]}" for i, c in enumerate(COMMANDS)])
def test_a_readme_command_runs_and_writes_what_it_names(command, why, scratch):
    if why:
        pytest.skip(why)
    record = runner.run_one(command, scratch, quick=True, train_steps=2,
                            timeout=SAFETY_LIMIT_S, env=ENV, in_process=True)
    assert record["outputs"] or record["last_line"]


@pytest.mark.parametrize("in_process", [False, True])
def test_a_failing_command_fails_the_run(tmp_path, in_process):
    bad = runner.Command('lumiere-jax sample --prompt "a red circle" --steps 0 --out x.mp4')
    with pytest.raises(AssertionError, match="(?s)exited 2.*--steps must be"):
        runner.run_one(bad, runner.make_scratch(str(tmp_path)), quick=False, train_steps=2,
                       timeout=SAFETY_LIMIT_S, env=ENV, in_process=in_process)


def test_a_blank_or_missing_output_fails_the_check(tmp_path):
    video_io.write_image(str(tmp_path / "blank.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(AssertionError, match="blank"):
        runner.check_outputs(["lumiere-jax", "sample-image", "--out", "blank.png"], str(tmp_path))
    with pytest.raises(AssertionError, match="was not written"):
        runner.check_outputs(["lumiere-jax", "sample", "--out", "none.mp4"], str(tmp_path))

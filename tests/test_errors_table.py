"""Every row of docs/errors.md: the bad input is refused with the message the table gives, before
any model is loaded or compiled, and nothing is written."""
import os
import pathlib
import re
import shlex

import numpy as np
import pytest
from flax import nnx

from configs import t2i_shapes
from lumiere_jax import cli
from lumiere_jax.applications import edit
from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.data import video_io
from lumiere_jax.diffusion import model_sampling
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.pipeline import LumierePipeline, image_to_video

TABLE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "errors.md"
ROW = re.compile(r"^\| `(?P<input>.+)` \| `(?P<error>.+)` \|$")


def table_rows() -> list[tuple[str, str]]:
    rows = [ROW.match(line) for line in TABLE.read_text(encoding="utf-8").splitlines()]
    return [(row["input"], row["error"]) for row in rows if row]


ROWS = table_rows()


def test_the_table_lists_at_least_30_bad_inputs_across_the_cli_and_the_api():
    cli_rows = [text for text, _ in ROWS if text.startswith("lumiere-jax ")]
    assert len(ROWS) >= 30 and len(cli_rows) >= 20 and len(ROWS) - len(cli_rows) >= 10
    assert len({text for text, _ in ROWS}) == len(ROWS)


@pytest.fixture(scope="module")
def pipe():
    config = t2i_shapes.get_config("variant=tiny")
    return LumierePipeline(build_model(parse_model_config(config.model)), config)


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    """The files the table's rows name, in the working folder; loading and compiling a model
    fail the test."""
    monkeypatch.chdir(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    video_io.write_video("clip.gif", frames, fps=8)
    video_io.write_image("first.png", frames[0])
    video_io.write_image("mask.png", np.full((16, 16, 3), 255, np.uint8))
    pathlib.Path("notes.txt").write_text("not a video")
    os.mkdir("empty_folder")
    os.mkdir("folder.gif")

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded or compiled before the input was checked")
    monkeypatch.setattr(LumierePipeline, "from_checkpoint", classmethod(refuse))
    monkeypatch.setattr(model_sampling, "sample_model", refuse)
    return tmp_path


def listing(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


@pytest.mark.parametrize("text, message", ROWS, ids=[text[:70] for text, _ in ROWS])
def test_each_bad_input_is_refused_before_any_model_loads(text, message, folder, pipe, capsys,
                                                          monkeypatch):
    before = listing(folder)
    if text.startswith("lumiere-jax "):
        assert cli.main(shlex.split(text)[1:]) == 2
        error = capsys.readouterr().err
        command = shlex.split(text)[1]
        assert error.startswith(f"lumiere-jax {command}: error: "), error
        assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
        assert message in error, error
    else:
        if text.startswith("LumierePipeline."):
            monkeypatch.undo()  # this row loads on purpose: the folder's check comes first
            monkeypatch.chdir(folder)
        frames = np.zeros((4, 16, 16, 3), np.uint8)
        names = dict(pipe=pipe, clip=frames, image=frames[0], np=np, video_io=video_io,
                     LumierePipeline=LumierePipeline, image_to_video=image_to_video, edit=edit)
        with pytest.raises(ValueError) as raised:
            eval(text, names)  # noqa: S307 (the table's own rows)
        assert message in str(raised.value), str(raised.value)
    assert listing(folder) == before


def test_a_damaged_checkpoint_gets_one_line_naming_the_folder_and_what_to_do(tmp_path, capsys):
    config = t2i_shapes.get_config("variant=tiny")
    model = build_model(parse_model_config(config.model))
    export = tmp_path / "export"
    save_exported(str(export), nnx.state(model, nnx.Param), config.to_dict())
    for path in (export / "params").rglob("*"):
        if path.is_file() and path.parent.name == "d":  # the arrays' data files
            path.write_bytes(path.read_bytes()[:40])
    assert cli.main(["sample-image", "--checkpoint", str(export), "--prompt", "a red circle",
                     "--out", str(tmp_path / "grid.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert f"Checkpoint '{export}'" in error and "Export the model again" in error
    assert "TensorStore" not in error and not (tmp_path / "grid.png").exists()

"""The Python API users call (`LumierePipeline.from_pretrained`, calling a pipeline, `save_video`,
sampling spread over a device mesh) and the CLI's help, `info` and summary line."""
import doctest

import jax
import numpy as np
import pytest

from configs import t2i_shapes
from lumiere_jax import cli, pipeline
from lumiere_jax.checkpoints.exported import CheckpointError
from lumiere_jax.data import video_io
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.pipeline import Generation, LumierePipeline, save_video

PROMPTS = ["a red circle", "a blue square moving left", "a small green star", "a yellow ball",
           "a cyan triangle", "a magenta square", "a large red star", "a blue circle"]


@pytest.fixture(scope="module")
def tiny():
    config = t2i_shapes.get_config("variant=tiny")
    model = build_model(parse_model_config(config.model), seed=1)
    return LumierePipeline(model, config)


def test_the_pipeline_docstrings_run_as_written():
    """The module's example samples the shipped text-to-video model and writes an mp4."""
    result = doctest.testmod(pipeline, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0


def test_from_pretrained_refuses_an_unknown_name_listing_the_shipped_ones(tmp_path):
    with pytest.raises(CheckpointError, match="shapes-t2v, shapes-t2i"):
        LumierePipeline.from_pretrained("shapes-unknown")
    with pytest.raises(CheckpointError, match="neither a shipped model"):
        LumierePipeline.from_pretrained(str(tmp_path / "missing"))


def test_calling_an_image_pipeline_gives_images_and_refuses_video_settings(tiny):
    out = tiny(["a red circle", "a blue square"], num_inference_steps=2, seed=3)
    assert isinstance(out, Generation) and out.frames is None
    assert out.images.shape == (2, 16, 16, 3) and out.images.dtype == np.uint8
    np.testing.assert_array_equal(out.images, tiny.sample(["a red circle", "a blue square"],
                                                          steps=2, seed=3))
    with pytest.raises(ValueError, match="for video models"):
        tiny("a red circle", num_frames=8)


def test_sampling_spread_over_a_mesh_equals_sampling_on_one_device(tiny):
    mesh = jax.make_mesh((8,), ("data",))
    alone = tiny.sample(PROMPTS, steps=2, seed=5)
    spread = tiny.sample(PROMPTS, steps=2, seed=5, mesh=mesh)
    np.testing.assert_allclose(spread.astype(int), alone.astype(int), atol=1)
    assert alone.std() > 0
    # 3 rows on 8 devices are padded to 8 and cut back.
    assert tiny.sample(PROMPTS[:3], steps=2, seed=5, mesh=mesh).shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match="needs a data or fsdp axis"):
        tiny.sample(PROMPTS, steps=2, mesh=jax.make_mesh((8,), ("time",)))


def test_save_video_writes_one_clip_or_tiles_several(tmp_path):
    clips = np.random.default_rng(0).integers(0, 256, (2, 4, 8, 8, 3), dtype=np.uint8)
    save_video(clips[:1], tmp_path / "one.gif", fps=8)
    np.testing.assert_array_equal(video_io.read_video(tmp_path / "one.gif"), clips[0])
    save_video(clips, tmp_path / "two.gif", fps=8)
    assert video_io.read_video(tmp_path / "two.gif").shape == (4,) + video_io.image_grid(
        clips).shape[1:]


def test_every_command_has_an_example_in_its_help(capsys):
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == set(cli.COMMANDS) == set(cli.EXAMPLES)
    for name in commands:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        text = capsys.readouterr().out
        assert f"example:\n  lumiere-jax {name}" in text, name


def test_info_lists_the_shipped_models_devices_and_versions(capsys):
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    for name in pipeline.SHIPPED_NAMES:
        assert name in text
    assert "Devices (cpu, 8)" in text and "jax " in text and "flax " in text


def test_the_summary_line_names_output_clips_frames_resolution_and_seconds():
    clips = np.zeros((2, 16, 32, 32, 3), np.uint8)
    assert cli.summary("a.mp4", clips, 12.34) == \
        "Wrote a.mp4: 2 clips of 16 frames, 32x32 px, in 12.3 s."
    assert cli.summary("g.png", clips[0, :1], 1.0) == "Wrote g.png: 1 image, 32x32 px, in 1.0 s."

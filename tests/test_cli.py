"""`lumiere-jax` commands end to end on tiny random models; the x-t slice as a pure function."""
import json
import math
import os

import jax
import numpy as np
import pytest
from flax import nnx

from configs import sr_shapes, ssr_shapes, stunet_shapes, t2i_shapes
from lumiere_jax import cli
from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.data import video_io
from lumiere_jax.data.shapes import MOTIONS
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from launch.cascade_eval import evaluate_cascade
from lumiere_jax.eval.video_eval import evaluate_video
from lumiere_jax.pipeline import CascadePipeline, LumierePipeline, upscale

PROMPT = "a large red circle moving quickly to the left on a black background"
STEPS = ["--steps", "2"]
SCALE = 2
FRAMES = 8  # not the tiny STUNet's training length (4): the flag must be honoured


def export_random_model(config, directory: str) -> str:
    """Exports a model whose zero-initialised weights are randomised, as after some training."""
    params = nnx.state(build_model(parse_model_config(config.model), seed=3), nnx.Param)
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    params = jax.tree.map(
        lambda x: jax.random.normal(next(keys), x.shape) * 0.05 if not np.any(x) else x, params)
    save_exported(directory, params, config.to_dict())
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_models")
    video_config = stunet_shapes.get_config("variant=tiny")
    video_config.model.backbone = ""
    # An SSR that lifts the tiny STUNet's 16 px clips to 32 px.
    ssr_config = ssr_shapes.get_config("variant=tiny")
    ssr_config.model.unet.resolution = 32
    ssr_config.model.ssr.low_resolution = 16
    ssr_config.data.resolution = 32
    return {"t2i": export_random_model(t2i_shapes.get_config("variant=tiny"), str(root / "t2i")),
            "stunet": export_random_model(video_config, str(root / "stunet")),
            "ssr": export_random_model(ssr_config, str(root / "ssr")),
            "sr": export_random_model(sr_shapes.get_config("variant=tiny"), str(root / "sr"))}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_outputs")


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def sample_clip(checkpoints, out, xt_png, seed):
    code = run_cli("sample", "--checkpoint", checkpoints["stunet"], "--prompt", PROMPT,
                   "--out", out, "--xt-slice", xt_png, "--seed", seed, "--frames", FRAMES,
                   "--scale", SCALE, *STEPS)
    assert code == 0


def grid_size(rows: int, columns: int, height: int, width: int, pad: int = 1):
    return rows * (height + pad) + pad, columns * (width + pad) + pad


def test_sample_image_writes_a_grid_of_upscaled_samples(checkpoints, outputs, capsys):
    out = outputs / "grid.png"
    code = run_cli("sample-image", "--checkpoint", checkpoints["t2i"], "--prompt", PROMPT,
                   "--prompt", "a small blue star", "--num", 2, "--scale", SCALE, "--out", out,
                   *STEPS)
    assert code == 0
    side = 16 * SCALE
    assert video_io.read_image(out).shape == grid_size(2, 2, side, side) + (3,)
    assert str(out) in capsys.readouterr().out


def test_sample_writes_clips_and_xt_slices_deterministically(checkpoints, outputs, capsys):
    sample_clip(checkpoints, outputs / "a.mp4", outputs / "a.png", seed=0)
    assert str(outputs / "a.mp4") in capsys.readouterr().out
    sample_clip(checkpoints, outputs / "b.gif", outputs / "b.png", seed=0)
    sample_clip(checkpoints, outputs / "c.gif", outputs / "c.png", seed=1)
    side = 16 * SCALE
    for video in ("a.mp4", "b.gif", "c.gif"):
        assert video_io.read_video(outputs / video).shape == (FRAMES, side, side, 3)  # one clip: no grid
    slices = {name: video_io.read_image(outputs / f"{name}.png") for name in "abc"}
    assert slices["a"].shape == (FRAMES * SCALE, side, 3)
    np.testing.assert_array_equal(slices["a"], slices["b"])  # same seed, lossless png
    assert not np.array_equal(slices["a"], slices["c"])


# Refusals that need the model's config or kind (the ones checked before any load are in
# docs/errors.md, run by tests/test_errors_table.py).
@pytest.mark.parametrize("command, extra, message", [
    ("sample", ["--checkpoint", "t2i"], "lumiere-jax sample-image"),
    ("sample-image", ["--checkpoint", "stunet"], "lumiere-jax sample`"),
    ("evaluate-video", ["--checkpoint", "t2i"], "lumiere-jax evaluate-t2i"),
    ("sample", ["--frames", "3"], "multiple of 2"),
    ("sample", ["--xt-row", "16"], "row must be an integer in [0, 15]"),
    ("sample", ["--checkpoint", "ssr"], "super-resolution (SSR) model; use `lumiere-jax upscale"),
    ("sample", ["--ssr", "t2i"], "does not hold a video super-resolution (SSR) model"),
    ("evaluate-video", ["--checkpoint", "ssr"], "lumiere-jax upscale"),
])
def test_bad_input_fails_cleanly_without_output(checkpoints, tmp_path, capsys, command, extra,
                                                message):
    out = "grid.png" if command == "sample-image" else "clip.mp4"
    defaults = {"--checkpoint": "stunet", "--prompt": PROMPT, "--out": out}
    if command == "evaluate-video":
        defaults = {"--checkpoint": "stunet", "--num": "1"}
    flags = {**defaults, **dict(zip(extra[::2], extra[1::2]))}
    flags["--checkpoint"] = checkpoints[flags["--checkpoint"]]
    if "--ssr" in flags:
        flags["--ssr"] = checkpoints[flags["--ssr"]]
    for name in ("--out", "--xt-slice"):
        if name in flags:
            flags[name] = tmp_path / flags[name]
    argv = [command] + [item for pair in flags.items() for item in pair] + STEPS
    assert run_cli(*argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"lumiere-jax {command}: error: ") and message in error
    assert "Traceback" not in error
    assert os.listdir(tmp_path) == []


def test_sample_with_ssr_lifts_the_base_clips_over_temporal_windows(checkpoints, outputs, capsys):
    out = outputs / "ssr.gif"
    code = run_cli("sample", "--checkpoint", checkpoints["stunet"], "--ssr", checkpoints["ssr"],
                   "--prompt", PROMPT, "--frames", FRAMES, "--window", 4, "--stride", 2,
                   "--scale", 1, "--out", out, *STEPS, "--ssr-steps", 2)
    assert code == 0
    assert video_io.read_video(out).shape == (FRAMES, 32, 32, 3)
    assert str(out) in capsys.readouterr().out


def test_upscale_lifts_a_clip_file_and_refuses_the_wrong_size(checkpoints, tmp_path, capsys):
    low = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    video_io.write_video(tmp_path / "low.gif", low, fps=8)
    out = tmp_path / "high.mp4"
    assert run_cli("upscale", "--video", tmp_path / "low.gif", "--checkpoint", checkpoints["ssr"],
                   "--out", out, "--window", 4, "--stride", 2, *STEPS) == 0
    assert video_io.read_video(out).shape == (6, 32, 32, 3)
    video_io.write_video(tmp_path / "wrong.gif", low[:, :8, :8], fps=8)
    assert run_cli("upscale", "--video", tmp_path / "wrong.gif", "--checkpoint",
                   checkpoints["ssr"], "--out", tmp_path / "never.mp4", *STEPS) == 2
    error = capsys.readouterr().err
    assert "lifts clips of 16x16 RGB frames" in error and "Traceback" not in error
    assert not os.path.exists(tmp_path / "never.mp4")
    assert run_cli("upscale", "--video", tmp_path / "low.gif", "--checkpoint", checkpoints["ssr"],
                   "--out", tmp_path / "never.mp4", "--window", 7, *STEPS) == 2
    assert "longer than the clip" in capsys.readouterr().err


def test_evaluate_ssr_writes_seams_psnr_and_accuracies(checkpoints, tmp_path):
    out = tmp_path / "ssr.json"
    assert run_cli("evaluate-ssr", "--checkpoint", checkpoints["ssr"], "--num", 2, "--batch", 2,
                   "--frames", 8, "--window", 4, "--stride", 2, "--json", out, *STEPS) == 0
    scores = json.loads(out.read_text())
    assert (scores["num"], scores["window"], scores["stride"]) == (2, 4, 2)
    assert {"seam_overlap", "seam_separate", "psnr_overlap", "psnr_bilinear", "ssr_shape",
            "input_shape"} <= set(scores)


def test_windows_denoised_a_chunk_at_a_time_give_the_same_clip(checkpoints):
    ssr = LumierePipeline.from_checkpoint(checkpoints["ssr"])
    low = np.random.default_rng(2).integers(0, 256, (2, 10, 16, 16, 3), dtype=np.uint8)
    lift = lambda chunk: upscale(ssr, ["", PROMPT], low, seed=4, steps=2, window=4, stride=2,
                                 window_chunk=chunk).astype(int)
    all_at_once = lift(0)
    for chunk in (1, 3):  # 4 windows: one at a time, and a last chunk that is not full
        np.testing.assert_allclose(lift(chunk), all_at_once, atol=1)
    assert all_at_once.std() > 0


def test_evaluate_sr_scores_a_2d_sr_model_and_refuses_other_kinds(checkpoints, tmp_path, capsys):
    out = tmp_path / "sr.json"
    assert run_cli("evaluate-sr", "--checkpoint", checkpoints["sr"], "--num", 3, "--batch", 2,
                   "--json", out, *STEPS) == 0
    scores = json.loads(out.read_text())
    assert (scores["split"], scores["num"]) == ("validation", 3)
    assert math.isfinite(scores["psnr"]) and scores["psnr_bilinear"] > scores["psnr"]
    assert {"colour", "shape", "background", "single_object"} <= set(scores)
    assert run_cli("evaluate-sr", "--checkpoint", checkpoints["ssr"], "--num", 1, *STEPS) == 2
    error = capsys.readouterr().err
    assert "does not hold a 2D super-resolution (SR) model" in error and "evaluate-ssr" in error


def test_cascade_evaluation_scores_the_base_clips_as_evaluate_video_does(checkpoints):
    base = LumierePipeline.from_checkpoint(checkpoints["stunet"])
    cascade = CascadePipeline(base, LumierePipeline.from_checkpoint(checkpoints["ssr"]))
    scores = evaluate_cascade(cascade, num=3, batch=2, steps=2)
    alone = evaluate_video(base, num=3, batch=2, steps=2)
    for key in ("colour", "shape", "size", "background", "motion", "speed", "all"):
        assert scores[f"base_{key}"] == alone[key] or (
            math.isnan(scores[f"base_{key}"]) and math.isnan(alone[key])), key
        assert f"ssr_{key}" in scores
    assert scores["num"] == 3 and scores["seconds"] > 0


def test_evaluate_video_scores_two_prompts(checkpoints, tmp_path):
    out = tmp_path / "scores.json"
    code = run_cli("evaluate-video", "--checkpoint", checkpoints["stunet"], "--num", 2,
                   "--batch", 2, "--json", out, *STEPS)
    assert code == 0
    scores = json.loads(out.read_text())
    accuracies = ("colour", "shape", "size", "background", "motion", "speed", "all",
                  "single_object")
    consistency = ("size_stability", "colour_stability", "trajectory_smoothness", "periodicity")
    by_motion = {key for key in scores if key.startswith("motion_")}
    assert set(scores) - by_motion == {"split", "num", "shapes_fvd", *accuracies,
                                       *(f"mean_{k}" for k in consistency)}
    assert by_motion and by_motion <= {f"motion_{m}" for m in MOTIONS}
    accuracies += tuple(by_motion)
    assert math.isfinite(scores["shapes_fvd"]) and scores["shapes_fvd"] > 0
    assert scores["split"] == "validation" and scores["num"] == 2
    for key in accuracies:
        assert 0.0 <= scores[key] <= 1.0, key
    for key in ("mean_colour_stability", "mean_periodicity"):  # NaN (null) when nothing is seen
        assert scores[key] is None or 0.0 <= scores[key] <= 1.0, key
    for key in ("mean_size_stability", "mean_trajectory_smoothness"):
        assert scores[key] is None or (math.isfinite(scores[key]) and scores[key] >= 0.0), key


def test_evaluate_video_per_frame_t2i_scores_the_image_model_frame_by_frame(checkpoints,
                                                                            tmp_path, capsys):
    out = tmp_path / "per_frame.json"
    # 4 images a call, as in test_sample_image_writes_a_grid_of_upscaled_samples (one compile).
    assert run_cli("evaluate-video", "--per-frame-t2i", "--checkpoint", checkpoints["t2i"],
                   "--num", 2, "--batch", 1, "--frames", 4, "--json", out, *STEPS) == 0
    scores = json.loads(out.read_text())
    assert scores["num"] == 2 and math.isfinite(scores["shapes_fvd"])
    assert 0.0 <= scores["colour"] <= 1.0
    assert run_cli("evaluate-video", "--per-frame-t2i", "--checkpoint", checkpoints["stunet"],
                   "--num", 2, *STEPS) == 2
    assert "--per-frame-t2i needs a text-to-image checkpoint" in capsys.readouterr().err


def test_xt_slice_stacks_one_pixel_row_over_time():
    frames, height, width, row = 5, 6, 7, 2
    clip = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        clip[t, row] = t + 1
        clip[t, height // 2] = 100 + t
    expected = np.broadcast_to(np.arange(1, frames + 1, dtype=np.uint8)[:, None, None],
                               (frames, width, 3))
    np.testing.assert_array_equal(video_io.xt_slice(clip, row), expected)
    np.testing.assert_array_equal(video_io.xt_slice(clip), expected + 99)  # default: middle row
    batch = np.stack([clip, 255 - clip])
    np.testing.assert_array_equal(video_io.xt_slice(batch, row), np.stack([expected, 255 - expected]))
    with pytest.raises(ValueError, match="row"):
        video_io.xt_slice(clip, height)
    with pytest.raises(ValueError, match="clip"):
        video_io.xt_slice(clip[0])


def test_the_ssr_started_from_its_enlarged_input_is_sdedit_from_the_enlargement(checkpoints):
    ssr = LumierePipeline.from_checkpoint(checkpoints["ssr"])
    rng = np.random.default_rng(0)
    low_res = rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    enlarged = np.asarray(jax.image.resize(low_res.astype(np.float32) / 127.5 - 1.0,
                                           (2, 4, 32, 32, 3), "linear"))
    expected = np.clip(np.round((enlarged + 1.0) * 127.5), 0, 255).astype(np.uint8)
    lift = lambda **kw: upscale(ssr, ["", ""], low_res, seed=1, steps=3, **kw)
    np.testing.assert_array_equal(lift(enlarged_start=0.0), expected)
    # S in (0, 1): SDEdit from the enlargement, i.e. `start` = it (as uint8) at strength S.
    from_input = lift(enlarged_start=0.4)
    as_sdedit = ssr.sample(["", ""], seed=1, steps=3, frames=4, conditions={"low_res": low_res},
                           allow_empty=True, start=expected, strength=0.4)
    assert np.abs(from_input.astype(int) - as_sdedit.astype(int)).mean() < 1.0
    from_noise = lift(enlarged_start=1.0)
    assert np.abs(from_input.astype(int) - from_noise.astype(int)).mean() > 5.0
    assert (np.abs(from_input.astype(int) - expected.astype(int)).mean()
            < np.abs(from_noise.astype(int) - expected.astype(int)).mean())

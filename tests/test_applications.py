"""The applications: <C, M> built from user inputs, their commands, SDEdit, style blending."""
import re
import warnings

import jax
import numpy as np
import pytest
from flax import nnx

from configs import conditional_shapes, stunet_shapes, t2i_shapes
from lumiere_jax import cli
from lumiere_jax.applications import edit, inputs
from lumiere_jax.applications.style import interpolate_weights
from lumiere_jax.checkpoints.exported import CheckpointError, export_spatial, load_exported
from lumiere_jax.data import shapes, video_io
from lumiere_jax.eval import style_reader
from lumiere_jax.eval.applications_eval import application_conditions, known_layout
from lumiere_jax.models.conditional import KNOWN_MASK, KNOWN_VIDEO
from lumiere_jax.pipeline import LumierePipeline
from tests.test_cli import PROMPT, export_random_model

SIDE, FRAMES = 16, 4  # the tiny models' clips


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("application_models")
    video_config = stunet_shapes.get_config("variant=tiny")
    conditional_config = conditional_shapes.get_config("variant=tiny")
    stunet = export_random_model(video_config, str(root / "stunet"))
    spatial = str(root / "spatial")
    export_spatial(stunet, spatial)
    style_config = t2i_shapes.get_config("variant=tiny")
    style_config.model = load_exported(spatial)[1].model
    other_config = t2i_shapes.get_config("variant=tiny")
    other_config.model.unet.base_channels = 8
    return {"stunet": stunet, "spatial": spatial,
            "conditional": export_random_model(conditional_config, str(root / "conditional")),
            "style": export_random_model(style_config, str(root / "style")),
            "other_t2i": export_random_model(other_config, str(root / "other"))}


@pytest.fixture(scope="module")
def conditional(checkpoints):
    return LumierePipeline.from_checkpoint(checkpoints["conditional"])


def image(seed=0, side=SIDE):
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def video(seed=0, frames=FRAMES, side=SIDE):
    return np.random.default_rng(seed).integers(0, 256, (frames, side, side, 3), dtype=np.uint8)


def box_mask(side=SIDE):
    mask = np.zeros((side, side), np.uint8)
    mask[4:10, 3:12] = 255
    return mask


def test_image_to_video_conditions_hold_the_image_as_frame_zero_only():
    given = image()
    cond = inputs.image_to_video_conditions(given, FRAMES, SIDE)
    assert cond[KNOWN_VIDEO].shape == (1, FRAMES, SIDE, SIDE, 3)
    assert cond[KNOWN_MASK].shape == (1, FRAMES, SIDE, SIDE, 1)
    np.testing.assert_array_equal(cond[KNOWN_VIDEO][0, 0], given)
    assert (cond[KNOWN_MASK][0, 0] == 255).all() and not cond[KNOWN_MASK][0, 1:].any()
    assert not cond[KNOWN_VIDEO][0, 1:].any()


def test_inpainting_conditions_know_everything_outside_the_mask():
    clip, mask = video(), box_mask()
    cond = inputs.inpainting_conditions(clip, mask, SIDE)
    region = mask > 0
    for t in range(FRAMES):
        np.testing.assert_array_equal(cond[KNOWN_MASK][0, t, ..., 0] > 0, ~region)
        np.testing.assert_array_equal(cond[KNOWN_VIDEO][0, t][~region], clip[t][~region])
        assert not cond[KNOWN_VIDEO][0, t][region].any()
    # A mask video gives each frame its own region.
    masks = np.zeros((FRAMES, SIDE, SIDE), np.uint8)
    masks[2, :5, :5] = 255
    cond = inputs.inpainting_conditions(clip, masks, SIDE)
    hidden = cond[KNOWN_MASK][0, ..., 0] == 0
    assert hidden[2].sum() == 25 and not hidden[[0, 1, 3]].any()


def test_cinemagraph_conditions_keep_frame_zero_and_the_still_region():
    given, mask = image(), box_mask()
    cond = inputs.cinemagraph_conditions(given, mask, FRAMES, SIDE)
    known = cond[KNOWN_MASK][0, ..., 0] > 0
    assert known[0].all()
    for t in range(1, FRAMES):
        np.testing.assert_array_equal(known[t], mask == 0)
        np.testing.assert_array_equal(cond[KNOWN_VIDEO][0, t][known[t]], given[known[t]])


def test_masks_are_binarised_and_resized_with_warnings():
    soft = box_mask().astype(np.float64)
    soft[4, 3] = 100   # below half: not in the region
    soft[5, 3] = 200   # above half: in it
    with pytest.warns(UserWarning, match="not binary: 2 of"):
        region = inputs.fit_mask(soft.astype(np.uint8), FRAMES, SIDE)
    assert not region[0, 4, 3] and region[0, 5, 3] and region[0, 6, 6]
    big = np.kron(box_mask(), np.ones((2, 2), np.uint8))
    with pytest.warns(UserWarning, match="resized to the model's 16x16"):
        np.testing.assert_array_equal(inputs.fit_mask(big, FRAMES, SIDE)[0], box_mask() > 0)
    with pytest.warns(UserWarning, match="image is 32x32; resized"):
        assert inputs.fit_image(image(side=32), SIDE).shape == (SIDE, SIDE, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inputs.fit_mask(box_mask(), FRAMES, SIDE)  # binary and the right size: no warning


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, SIDE, SIDE), np.uint8), "3 frames; it must have the clip's 4"),
    (np.zeros((SIDE, SIDE), np.uint8), "marks no pixels"),
    (np.full((SIDE, SIDE), 255, np.uint8), "covers every pixel"),
    (np.zeros((SIDE, SIDE), np.float32), "uint8"),
])
def test_bad_masks_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        inputs.inpainting_conditions(video(), bad, SIDE)


def test_the_known_region_of_an_inpainting_is_the_given_video(conditional):
    clip, mask = video(3), box_mask()
    out = edit.inpaint(conditional, clip, mask, PROMPT, steps=2)
    own = edit.inpaint(conditional, clip, mask, PROMPT, steps=2, keep_known=False)
    region = mask > 0
    for t in range(FRAMES):
        np.testing.assert_array_equal(out[t][~region], clip[t][~region])
        np.testing.assert_array_equal(out[t][region], own[t][region])
    assert (own != out).any()  # the model alone does not copy the known pixels exactly


def test_conditional_sampling_reads_the_conditions(conditional):
    a = edit.image_to_video(conditional, image(1), PROMPT, steps=2, keep_known=False)
    b = edit.image_to_video(conditional, image(2), PROMPT, steps=2, keep_known=False)
    assert a.shape == (FRAMES, SIDE, SIDE, 3) and (a[1:] != b[1:]).any()
    with pytest.raises(ValueError, match="multiple of"):
        edit.image_to_video(conditional, image(1), PROMPT, steps=2, frames=3)


def test_sdedit_at_strength_zero_returns_the_input_and_reads_it_above(checkpoints):
    pipeline = LumierePipeline.from_checkpoint(checkpoints["stunet"])
    clip = video(4)
    np.testing.assert_array_equal(edit.stylize_video(pipeline, clip, PROMPT, 0.0, steps=2), clip)
    a = edit.stylize_video(pipeline, clip, PROMPT, 0.3, steps=2)
    b = edit.stylize_video(pipeline, video(5), PROMPT, 0.3, steps=2)
    assert (a != b).any()
    for strength in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            edit.stylize_video(pipeline, clip, PROMPT, strength, steps=2)
    with pytest.raises(ValueError, match="text-to-video STUNet"):
        edit.stylize_video(LumierePipeline.from_checkpoint(checkpoints["conditional"]), clip,
                           PROMPT, 0.5)


def test_weight_interpolation_is_exact_at_its_ends():
    original = {"a": np.float32([1.0, 2.0]), "b": np.float32([[3.0]])}
    style = {"a": np.float32([0.1, -7.0]), "b": np.float32([[0.3]])}
    assert interpolate_weights(original, style, 0.0) is original
    assert interpolate_weights(original, style, 1.0) is style
    half = interpolate_weights(original, style, 0.5)
    np.testing.assert_allclose(half["a"], [0.55, -2.5])
    for alpha in (-0.01, 1.01):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            interpolate_weights(original, style, alpha)


def test_with_style_blends_only_the_spatial_unet(checkpoints):
    pipeline = LumierePipeline.from_checkpoint(checkpoints["stunet"])
    style_unet = nnx.state(load_exported(checkpoints["style"])[0].unet, nnx.Param)
    unet = nnx.state(pipeline.model.spatial.unet, nnx.Param)
    for alpha in (0.0, 0.25, 1.0):
        blended = pipeline.with_style(checkpoints["style"], alpha).model
        expected = jax.tree.map(lambda o, s: alpha * s + (1 - alpha) * o, unet, style_unet)
        jax.tree.map(np.testing.assert_allclose,
                     nnx.state(blended.spatial.unet, nnx.Param), expected)
        jax.tree.map(np.testing.assert_array_equal,  # text encoder and temporal layers kept
                     nnx.state(blended, nnx.Not(nnx.PathContains("unet"))),
                     nnx.state(pipeline.model, nnx.Not(nnx.PathContains("unet"))))
    exact = pipeline.with_style(checkpoints["style"], 1.0).model
    jax.tree.map(np.testing.assert_array_equal, nnx.state(exact.spatial.unet, nnx.Param),
                 style_unet)
    with pytest.raises(CheckpointError, match="unet.base_channels"):
        pipeline.with_style(checkpoints["other_t2i"], 0.5)
    with pytest.raises(CheckpointError, match="'stunet' checkpoint"):
        pipeline.with_style(checkpoints["stunet"], 0.5)


def test_export_spatial_writes_the_weights_the_stunet_inflates(checkpoints):
    stunet, _ = load_exported(checkpoints["stunet"])
    t2i, config = load_exported(checkpoints["spatial"])
    assert config.model.kind == "t2i" and config.data.mode == "frames"
    jax.tree.map(np.testing.assert_array_equal, nnx.state(t2i, nnx.Param),
                 nnx.state(stunet.spatial, nnx.Param))
    with pytest.raises(CheckpointError, match="inflated from a T2I"):
        export_spatial(checkpoints["spatial"], checkpoints["spatial"] + "_again")


def test_the_style_reader_tells_the_rendered_styles_apart():
    specs = [shapes.spec_for_seed(seed, "validation") for seed in range(48)]
    plain = np.stack([shapes.render_clip(spec, 32, 8) for spec in specs])
    outlined = np.stack([shapes.render_clip(spec, 32, 8, style="outlined") for spec in specs])
    assert style_reader.outlined_fraction(plain) == 0.0
    assert style_reader.outlined_fraction(outlined) >= 0.95


def test_evaluation_cases_hide_what_they_say():
    spec = shapes.spec_for_seed(0, "validation")
    clip = shapes.render_clip(spec, 32, 8)
    i2v = known_layout("image_to_video", clip)
    assert i2v[0].all() and not i2v[1:].any()
    inpaint = known_layout("inpainting", clip)
    assert inpaint[[0, 1, 6, 7]].all() and not inpaint[2:6].all()
    cond = application_conditions("cinemagraph", clip[None])
    known = cond[KNOWN_MASK][0, ..., 0] > 0
    moving = np.abs(clip.astype(int) - clip[:1]).max(axis=(0, 3)) > 12
    assert known[0].all() and not known[1:][:, moving].any()


# ----------------------------------------------------------------------------- commands


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("application_files")
    paths = {"image": root / "image.png", "video": root / "clip.gif", "mask": root / "mask.png",
             "mask_video": root / "mask.gif", "broken": root / "broken.png"}
    video_io.write_image(paths["image"], image(7))
    video_io.write_video(paths["video"], video(7))
    video_io.write_image(paths["mask"], np.repeat(box_mask()[..., None], 3, -1))
    video_io.write_video(paths["mask_video"], np.zeros((3, SIDE, SIDE, 3), np.uint8))
    paths["broken"].write_bytes(b"not a png")
    return {name: str(path) for name, path in paths.items()}


def test_the_application_commands_write_videos(checkpoints, files, tmp_path):
    common = ["--prompt", PROMPT, "--steps", "2", "--scale", "1"]
    runs = {
        "i2v.gif": ["i2v", "--image", files["image"], "--checkpoint", checkpoints["conditional"]],
        "inpaint.gif": ["inpaint", "--video", files["video"], "--mask", files["mask"],
                        "--checkpoint", checkpoints["conditional"]],
        "cinema.gif": ["cinemagraph", "--image", files["image"], "--mask", files["mask"],
                       "--checkpoint", checkpoints["conditional"]],
        "styled.gif": ["stylize", "--video", files["video"], "--strength", "0.5",
                       "--checkpoint", checkpoints["stunet"],
                       "--style-checkpoint", checkpoints["style"], "--style-alpha", "0.5"],
    }
    for name, argv in runs.items():
        assert run_cli(*argv, *common, "--out", tmp_path / name) == 0
        assert video_io.read_video(tmp_path / name).shape == (FRAMES, SIDE, SIDE, 3)
    inpainted = video_io.read_video(tmp_path / "inpaint.gif")
    given = video_io.read_video(files["video"])
    outside = box_mask() == 0
    np.testing.assert_array_equal(inpainted[:, outside], given[:, outside])


@pytest.mark.parametrize("argv, message", [
    (["i2v", "--image", "{broken}"], "Could not read the image"),
    (["inpaint", "--video", "{video}", "--mask", "{mask_video}"], "3 frames"),
    (["inpaint", "--video", "{video}", "--mask", "{mask}", "--frames", "8"], "--frames is not"),
    (["stylize", "--video", "{video}", "--strength", "1.5"], r"--strength must be in \[0, 1\]"),
    (["stylize", "--video", "{video}", "--strength", "0.5", "--style-checkpoint", "{style}",
      "--style-alpha", "2"], r"--style-alpha must be in \[0, 1\]"),
    (["stylize", "--video", "{video}", "--strength", "0.5", "--style-checkpoint",
      "{other_t2i}"], "does not fit this model"),
    (["i2v", "--image", "{image}", "--checkpoint", "{stunet}"], "conditional STUNet"),
    (["sample", "--checkpoint", "{conditional}"], "use `lumiere-jax i2v`"),
])
def test_application_commands_refuse_bad_input(checkpoints, files, tmp_path, capsys, argv,
                                               message):
    names = dict(files, **checkpoints)
    argv = [arg.format(**names) for arg in argv]
    if argv[0] in ("i2v", "inpaint", "stylize") and "--checkpoint" not in argv:
        argv += ["--checkpoint", checkpoints["stunet" if argv[0] == "stylize" else "conditional"]]
    out = tmp_path / "out.gif"
    assert run_cli(*argv, "--prompt", PROMPT, "--out", out, "--steps", "2") == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()

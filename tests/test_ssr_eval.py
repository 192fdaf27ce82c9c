"""The SSR figures: window boundaries, the seam ratio, PSNR, and the evaluation end to end."""
import math

import numpy as np
import pytest
from flax import nnx

from configs import sr_shapes, ssr_shapes, t2i_shapes
from lumiere_jax.eval.in_training import evaluate_weights
from lumiere_jax.eval.ssr_eval import (boundary_pairs, enlarge_uint8, evaluate_ssr,
                                       evaluate_sr_fidelity, psnr, seam_ratio, shrink_uint8)
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.pipeline import LumierePipeline
from lumiere_jax.train.settings import parse_run_config


def test_boundary_pairs_mark_where_the_covering_windows_change():
    # Windows [0, 4) and [4, 8): one boundary, between frames 3 and 4.
    np.testing.assert_array_equal(np.flatnonzero(boundary_pairs(8, 4, 4)), [3])
    # Windows [0, 4), [2, 6), [4, 8): boundaries at 1|2, 3|4 and 5|6.
    np.testing.assert_array_equal(np.flatnonzero(boundary_pairs(8, 4, 2)), [1, 3, 5])
    assert not boundary_pairs(6, 6, 3).any()  # one window: no boundary


def test_a_jump_at_the_boundary_is_a_seam_and_steady_motion_is_not():
    steady = np.broadcast_to(np.arange(8, dtype=np.uint8)[None, :, None, None, None] * 10,
                             (2, 8, 4, 4, 3))
    assert seam_ratio(steady, 4, 4) == pytest.approx(1.0)
    jump = steady.copy()
    jump[:, 4:] += 50  # the second window drifted from the first
    assert seam_ratio(jump, 4, 4) == pytest.approx(60 / 10)
    assert math.isnan(seam_ratio(steady, 8, 4))


def test_psnr_and_shrinking():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a + 1, a) == pytest.approx(10 * math.log10(255 ** 2))
    with pytest.raises(ValueError, match="PSNR of shapes"):
        psnr(a, a[:1])
    blocks = np.random.default_rng(0).integers(0, 256, (1, 2, 3, 3, 3), dtype=np.uint8)
    clip = blocks.repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(shrink_uint8(clip, 2), blocks)


class BilinearSSR:
    """A stand-in SSR that enlarges its input bilinearly, checking what it is given."""
    resolution = 32

    def __init__(self):
        self.calls = []

    def sample(self, prompts, *, conditions, frames, window=None, stride=None, **unused):
        low_res = conditions["low_res"]
        frame_axis = () if frames is None else (frames,)
        assert low_res.shape == (len(prompts),) + frame_axis + (16, 16, 3)
        assert low_res.dtype == np.uint8
        self.calls.append((window, stride))
        if frames is None:
            return enlarge_uint8(low_res[:, None], self.resolution)[:, 0]
        return enlarge_uint8(low_res, self.resolution)


def test_evaluate_ssr_compares_against_ground_truth_with_both_windowings():
    stand_in = BilinearSSR()
    scores = evaluate_ssr(stand_in, 16, num=3, batch=2, frames=8, window=4, stride=2)
    assert sorted(set(stand_in.calls)) == [(4, 2), (4, 4)]  # overlapping, then separate
    assert scores["psnr_overlap"] == scores["psnr_separate"] == scores["psnr_bilinear"]
    assert 10 < scores["psnr_bilinear"] < 60
    # Enlarged ground truth: each 32 px clip reads back as its caption says, as its input does.
    assert scores["ssr_colour"] == scores["input_colour"] == 1.0
    with pytest.raises(ValueError, match="multiple of the window"):
        evaluate_ssr(stand_in, 16, num=1, frames=6, window=4, stride=2)


@pytest.mark.parametrize("frames", [None, 4])
def test_sr_fidelity_of_images_and_clips(frames):
    scores = evaluate_sr_fidelity(BilinearSSR(), 16, num=3, batch=2, steps=1, frames=frames)
    assert scores["psnr"] == scores["psnr_bilinear"] and 10 < scores["psnr"] < 60
    assert scores["colour"] == 1.0 and 0.0 <= scores["shape"] <= 1.0
    assert ("motion" in scores) == (frames is not None)


def test_evaluate_ssr_runs_a_tiny_model():
    config = ssr_shapes.get_config("variant=tiny")
    model = build_model(parse_model_config(config.model), seed=0)
    scores = evaluate_ssr(LumierePipeline(model, config), config.model.ssr.low_resolution, num=2,
                          batch=2, frames=8, window=4, stride=2, steps=2)
    for key in ("psnr_overlap", "psnr_separate", "psnr_bilinear"):
        assert math.isfinite(scores[key]) and scores[key] > 0, key
    for key in ("seam_overlap", "seam_separate", "seam_ground_truth"):
        assert scores[key] > 0, key
    assert all(0.0 <= scores[f"ssr_{key}"] <= 1.0 for key in ("colour", "shape", "all"))


@pytest.mark.parametrize("name", ["sr_shapes", "t2i_shapes"])
def test_in_training_evaluation_scores_an_sr_model_against_ground_truth(name):
    """The trainer's evaluation of a tiny model's EMA weights: an SR model also logs PSNR."""
    config = {"sr_shapes": sr_shapes, "t2i_shapes": t2i_shapes}[name].get_config("variant=tiny")
    run = parse_run_config(config)
    model = build_model(run.model, seed=0)
    graphdef, params, frozen = nnx.split(model, model.trainable, ...)
    scores = evaluate_weights(graphdef, params, frozen, run, num=2, steps=2, batch=2)
    assert ("eval_psnr" in scores) == (name == "sr_shapes")
    assert 0.0 <= scores["eval_colour"] <= 1.0 and scores["eval_seconds"] > 0
    if name == "sr_shapes":
        assert math.isfinite(scores["eval_psnr"]) and scores["eval_psnr_bilinear"] > 10

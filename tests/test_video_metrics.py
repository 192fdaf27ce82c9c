"""Video metrics: the Frechet distance and Inception Score against direct computations, the
shapes-world features and their FVD, the per-frame T2I baseline, and `evaluate_video`'s shapes
FVD, with stub samplers (no model)."""
import math

import numpy as np
import pytest
import scipy.linalg

from lumiere_jax.data import tfds_shapes
from lumiere_jax.eval.frechet import frechet_distance, inception_score
from lumiere_jax.eval.per_frame_baseline import PerFrameT2I
from lumiere_jax.eval.shapes_features import (shapes_clip_features, shapes_feature_names,
                                              shapes_fvd)
from lumiere_jax.eval.split_sampling import prompts_and_specs, render_clips
from lumiere_jax.eval.video_eval import evaluate_video

RESOLUTION, FRAMES = 32, 16


def scipy_frechet(a, b):
    """The textbook formula with scipy's general matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def direct_inception_score(p):
    marginal = p.mean(0)
    return float(np.exp(np.mean([np.sum(row * np.log(row / marginal)) for row in p])))


def render(split, start, num):
    seeds = [tfds_shapes.example_seed(split, i) for i in range(start, start + num)]
    return np.stack([tfds_shapes.render_example(seed, split, RESOLUTION, FRAMES)["frames"]
                     for seed in seeds])


def shuffle_frames(clips, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([clip[rng.permutation(len(clip))] for clip in clips])


# ----------------------------------------------------------------------------- Frechet, IS


def test_frechet_distance_matches_the_scipy_formula_and_is_symmetric():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 0.5
    expected = scipy_frechet(a, b)
    assert expected > 1.0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    shifted = a + np.array([3.0, 0, 0, 0, 0, 4.0])  # same covariance: |mean shift|^2 = 25
    assert frechet_distance(a, shifted) == pytest.approx(25.0, rel=1e-9)


def test_frechet_distance_handles_fewer_samples_than_features():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 20)), rng.normal(size=(7, 20)) + 1.0
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-5)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((4, 3)), np.zeros((4, 5)), "Feature widths differ: 3 and 5"),
    (np.zeros((1, 3)), np.zeros((4, 3)), "1 sample(s); a covariance needs at least 2"),
    (np.full((4, 3), np.nan), np.zeros((4, 3)), "NaN"),
    (np.zeros(4), np.zeros((4, 1)), "(samples, feature width)"),
])
def test_frechet_distance_refuses_bad_features(a, b, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        frechet_distance(a, b)


def test_inception_score_matches_a_direct_computation_and_its_bounds():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 7)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = inception_score(p)
    assert (mean, std) == (pytest.approx(direct_inception_score(p), rel=1e-9), 0.0)
    mean, std = inception_score(p, splits=3)
    parts = [direct_inception_score(part) for part in np.split(p, 3)]
    assert (mean, std) == (pytest.approx(np.mean(parts)), pytest.approx(np.std(parts)))
    assert inception_score(np.full((10, 5), 0.2))[0] == pytest.approx(1.0)
    assert inception_score(np.eye(5)[np.arange(20) % 5])[0] == pytest.approx(5.0)


@pytest.mark.parametrize("p, splits, message", [
    (np.full((4, 3), 0.5), 1, "row 0 sums to 1.5"),
    (np.array([[0.5, 0.5], [np.nan, 1.0]]), 1, "NaN"),
    (np.array([[1.5, -0.5]]), 1, ">= 0"),
    (np.full((4, 2), 0.5), 5, r"splits must be an integer in \[1, 4\]"),
])
def test_inception_score_refuses_bad_probabilities(p, splits, message):
    with pytest.raises(ValueError, match=message):
        inception_score(p, splits=splits)


# ----------------------------------------------------------------------------- shapes FVD


@pytest.fixture(scope="module")
def real_sets():
    return render("train", 0, 32), render("train", 1000, 32)


def test_shapes_fvd_grows_with_temporal_incoherence(real_sets):
    real, other_real = real_sets
    baseline = shapes_fvd(real, other_real)
    shuffled = shapes_fvd(real, shuffle_frames(real))
    assert shapes_fvd(real, real) == pytest.approx(0.0, abs=1e-9)
    assert shuffled > 3 * baseline, (shuffled, baseline)
    flicker = real.copy()
    flicker[:, ::2] = np.clip(flicker[:, ::2].astype(int) + 40, 0, 255)
    assert shapes_fvd(real, flicker) > 3 * baseline


def test_shapes_features_are_per_clip_and_deterministic(real_sets):
    real, _ = real_sets
    features = shapes_clip_features(real[:6])
    names = shapes_feature_names()
    assert features.shape == (6, len(names)) == (6, 84 + 3 * 2 * 2)
    assert np.all(np.isfinite(features))
    np.testing.assert_array_equal(features, shapes_clip_features(real[:6]))
    np.testing.assert_array_equal(shapes_clip_features(real[[3, 3]]), features[[3, 3]])
    np.testing.assert_array_equal(shapes_clip_features(real[:6], pixel_grid=0),
                                  features[:, :84])
    static = [i for i, name in enumerate(names) if name.split("/")[0] in ("mean", "std")]
    drift = [i for i, name in enumerate(names) if name.startswith("drift/")]
    rates = [i for i in range(len(names)) if i not in static + drift]
    # Drift and rates are 0 exactly for clips whose frames are all equal.
    still = np.repeat(real[:1, :1], FRAMES, axis=1)
    assert not np.any(shapes_clip_features(still)[0, drift + rates])
    frozen = [bool(np.all(clip == clip[:1])) for clip in real[:6]]
    assert [not np.any(row[rates]) for row in features] == frozen and not all(frozen)
    # Reversing time flips the drift and keeps everything else.
    reversed_features = shapes_clip_features(real[:6, ::-1])
    np.testing.assert_allclose(reversed_features[:, drift], -features[:, drift], atol=1e-12)
    np.testing.assert_allclose(reversed_features[:, static + rates], features[:, static + rates],
                               atol=1e-12)


def test_shapes_features_refuse_bad_clips():
    with pytest.raises(ValueError, match="uint8"):
        shapes_clip_features(np.zeros((2, 4, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="at least 3 frames"):
        shapes_clip_features(np.zeros((2, 2, 16, 16, 3), np.uint8))


# ----------------------------------------------------------------------------- evaluate_video


class TruthSampler:
    """A 'video model' that returns the ground truth of each caption (optionally shuffled)."""

    is_video, resolution, default_frames = True, RESOLUTION, FRAMES

    def __init__(self, split, num, shuffle=False):
        captions, specs = prompts_and_specs(split, num)
        self.truth = dict(zip(captions, render_clips(specs, RESOLUTION, FRAMES)))
        self.shuffle = shuffle

    def sample(self, prompts, *, seed=0, frames=None, **settings):
        clips = np.stack([self.truth[p] for p in prompts])
        return shuffle_frames(clips, seed) if self.shuffle else clips


class FrameT2I:
    """A 'text-to-image model' drawing each image as a random frame of the caption's clip."""

    is_video, resolution = False, RESOLUTION

    def __init__(self, truth):
        self.truth, self.calls = truth, []

    def sample(self, prompts, *, seed=0, **settings):
        self.calls.append((list(prompts), seed))
        rng = np.random.default_rng(seed)
        return np.stack([self.truth[p][rng.integers(FRAMES)] for p in prompts])


def test_evaluate_video_reports_the_shapes_fvd_against_the_ground_truth():
    num = 12
    exact = evaluate_video(TruthSampler("validation", num), num=num, batch=5)
    assert exact["shapes_fvd"] == pytest.approx(0.0, abs=1e-9)
    assert exact["colour"] == 1.0 and exact["num"] == num
    shuffled = evaluate_video(TruthSampler("validation", num, shuffle=True), num=num, batch=5)
    assert shuffled["shapes_fvd"] > 1.0
    assert math.isnan(evaluate_video(TruthSampler("validation", 1), num=1)["shapes_fvd"])


def test_per_frame_t2i_samples_every_frame_alone_in_one_batch():
    truth = TruthSampler("validation", 12).truth
    t2i = FrameT2I(truth)
    baseline = PerFrameT2I(t2i, frames=FRAMES)
    prompts = list(truth)[:3]
    clips = baseline.sample(prompts, seed=7)
    assert clips.shape == (3, FRAMES, RESOLUTION, RESOLUTION, 3)
    assert t2i.calls == [([p for p in prompts for _ in range(FRAMES)], 7)]
    rng = np.random.default_rng(7)
    expected = np.stack([truth[p][rng.integers(FRAMES)] for p in prompts for _ in range(FRAMES)])
    np.testing.assert_array_equal(clips.reshape(expected.shape), expected)
    assert baseline.sample(prompts[:1], frames=4).shape[1] == 4
    scores = evaluate_video(PerFrameT2I(FrameT2I(truth)), num=12, batch=6)
    assert scores["colour"] == 1.0 and scores["shapes_fvd"] > 1.0
    with pytest.raises(ValueError, match="needs a text-to-image model"):
        PerFrameT2I(TruthSampler("validation", 1))

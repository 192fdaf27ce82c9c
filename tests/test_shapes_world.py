"""Behavioural tests of the shapes world: renderer, splits, captions and the evaluator."""
import dataclasses
import json

import numpy as np
import pytest

from lumiere_jax.data import shapes as world
from lumiere_jax.eval import shapes_evaluator as evaluator

CLIP_ATTRIBUTES = ("colour", "shape", "size", "background", "motion", "speed")


def _specs(count: int, offset: int = 0) -> list:
    """Fixed specs from all three splits (every tenth one held out)."""
    return [world.spec_for_seed(i, "heldout" if i % 10 == 9 else ("train", "validation")[i % 2])
            for i in range(offset, offset + count)]


def _with_noise(clips: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, std, clips.shape)
    return np.clip(np.rint(clips + noise), 0, 255).astype(np.uint8)


def _still(**changes) -> world.ClipSpec:
    base = world.ClipSpec(shape="square", colour="red", size="large", background="black",
                          motion="still", speed=None, x=0.5, y=0.5, angle=10.0)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def specs_32():
    return _specs(1000)


@pytest.fixture(scope="module")
def clips_32(specs_32):
    return np.stack([world.render_clip(spec, 32) for spec in specs_32])


@pytest.fixture(scope="module")
def scores_32(clips_32, specs_32):
    scores = evaluator.score_clips(clips_32, specs_32)
    print("\nclip accuracy 32x32:", scores)
    return scores


# ----------------------------------------------------------------------------- renderer


def test_rendering_is_deterministic_and_depends_on_the_seed():
    spec = world.spec_for_seed(7, "train")
    assert world.spec_for_seed(7, "train") == spec
    assert world.render_clip(spec, 32).tobytes() == world.render_clip(spec, 32).tobytes()
    assert world.spec_for_seed(7, "validation") != spec
    others = [world.render_clip(world.spec_for_seed(seed, "train"), 32) for seed in (8, 9)]
    assert all(not np.array_equal(other, world.render_clip(spec, 32)) for other in others)


@pytest.mark.parametrize("resolution,num_frames", [(32, 16), (64, 5), (16, 1)])
def test_render_dtype_shape_and_frame_slices(resolution, num_frames):
    spec = world.spec_for_seed(3, "train")
    clip = world.render_clip(spec, resolution, num_frames)
    assert clip.dtype == np.uint8 and clip.shape == (num_frames, resolution, resolution, 3)
    for index in {0, num_frames // 2, num_frames - 1}:
        np.testing.assert_array_equal(world.render_frame(spec, index, resolution, num_frames),
                                      clip[index])


def test_pixels_are_antialiased_mixes_of_background_and_colour():
    spec = _still(shape="star", colour="cyan", background="black")
    frame = world.render_frame(spec, 0, 32).astype(int)
    # cyan on black: every pixel is (0, c, c) for a coverage c; the edge has intermediate c.
    assert np.all(frame[..., 0] == 0) and np.array_equal(frame[..., 1], frame[..., 2])
    values = np.unique(frame[..., 1])
    assert {0, 255} <= set(values.tolist())
    assert np.sum((frame[..., 1] > 0) & (frame[..., 1] < 255)) >= 10
    assert frame[16, 16].tolist() == [0, 255, 255] and frame[0, 0].tolist() == [0, 0, 0]


def test_motion_is_defined_over_the_clip_not_per_frame():
    spec = world.ClipSpec("triangle", "blue", "small", "white", "orbiting", "quickly",
                          x=0.7, y=0.5, angle=0.0)
    long_clip = world.render_clip(spec, 32, 31)
    short_clip = world.render_clip(spec, 32, 16)
    assert np.abs(long_clip[::2].astype(int) - short_clip).max() <= 1


@pytest.mark.parametrize("motion,speed", [(m, s) for m in world.MOTIONS if m != "still"
                                          for s in world.SPEEDS] + [("still", None)])
def test_poses_follow_the_motion_definitions(motion, speed):
    spec = world.ClipSpec("square", "red", "small", "black", motion, speed, x=0.55, y=0.6,
                          angle=5.0)
    u = np.linspace(0.0, 1.0, 201)
    cx, cy, radius, angle = world.shape_poses(spec, u)
    start = world.SIZE_RADIUS["small"]
    moved = {"x": cx[-1] - cx[0], "y": cy[-1] - cy[0]}
    expected_turn = world.ROTATION_DEGREES[speed] if motion == "rotating" else 0.0
    assert angle[-1] - angle[0] == pytest.approx(expected_turn)
    if motion in ("left", "right", "up", "down"):
        axis = "x" if motion in ("left", "right") else "y"
        sign = -1 if motion in ("left", "up") else 1
        assert moved[axis] == pytest.approx(sign * world.TRANSLATION_DISTANCE[speed])
    elif motion == "bouncing":
        assert cy.max() == pytest.approx(0.6) and cy[-1] == pytest.approx(0.6)
        assert cy.min() == pytest.approx(0.6 - world.BOUNCE_HEIGHT, abs=1e-3)
        contacts = np.sum((cy[1:-1] > cy[:-2]) & (cy[1:-1] > cy[2:]))
        assert contacts == world.BOUNCE_COUNT[speed] - 1
    elif motion == "orbiting":
        np.testing.assert_allclose(np.hypot(cx - 0.5, cy - 0.5), np.hypot(0.05, 0.1))
        turns = np.diff(np.unwrap(np.arctan2(cy - 0.5, cx - 0.5))).sum() / (2 * np.pi)
        assert turns == pytest.approx(world.ORBIT_TURNS[speed])
    elif motion in ("growing", "shrinking"):
        factor = world.SCALE_FACTOR[speed] ** (1 if motion == "growing" else -1)
        assert radius[-1] / radius[0] == pytest.approx(factor) and radius[0] == start
    else:
        assert moved == {"x": 0.0, "y": 0.0} and np.all(radius == start)


def test_bad_arguments_raise_clear_errors():
    spec = world.spec_for_seed(0, "train")
    with pytest.raises(ValueError, match="resolution"):
        world.render_clip(spec, 4)
    with pytest.raises(ValueError, match="num_frames"):
        world.render_clip(spec, 32, 0)
    with pytest.raises(ValueError, match="frame_index"):
        world.render_frame(spec, 16, 32, 16)
    with pytest.raises(ValueError, match="'circle', 'square', 'triangle', 'star'"):
        dataclasses.replace(spec, shape="hexagon")
    with pytest.raises(ValueError, match="colour"):
        dataclasses.replace(spec, colour="orange")
    with pytest.raises(ValueError, match="speed must be None"):
        _still(speed="quickly")
    with pytest.raises(ValueError, match="speed"):
        _still(motion="left")
    with pytest.raises(ValueError, match=r"x must be"):
        _still(x=1.5)
    with pytest.raises(ValueError, match="'train', 'validation', 'heldout'"):
        world.sample_spec(np.random.default_rng(0), "test")


def test_spec_dict_round_trip_through_json():
    for spec in _specs(30):
        data = json.loads(json.dumps(spec.to_dict()))
        assert world.ClipSpec.from_dict(data) == spec
    assert world.ClipSpec.from_dict(dict(_still().to_dict(), speed="")) == _still()
    with pytest.raises(ValueError, match="missing"):
        world.ClipSpec.from_dict({"shape": "star"})


# ----------------------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def sampled_specs():
    rng = np.random.default_rng(123)
    return {split: [world.sample_spec(rng, split) for _ in range(n)]
            for split, n in (("train", 1000), ("validation", 1000), ("heldout", 300))}


def test_heldout_pairs_appear_only_in_the_heldout_split(sampled_specs):
    seen = {split: {(s.shape, s.colour) for s in specs} for split, specs in
            sampled_specs.items()}
    assert len(world.HELDOUT_PAIRS) == 4 and {s for s, _ in world.HELDOUT_PAIRS} == set(
        world.SHAPES)
    all_pairs = {(s, c) for s in world.SHAPES for c in world.COLOURS}
    assert seen["train"] == seen["validation"] == all_pairs - world.HELDOUT_PAIRS
    assert seen["heldout"] == set(world.HELDOUT_PAIRS)


def test_rotating_is_never_drawn_for_circles(sampled_specs):
    specs = [s for split_specs in sampled_specs.values() for s in split_specs]
    assert not any(s.shape == "circle" and s.motion == "rotating" for s in specs)
    assert any(s.motion == "rotating" for s in specs)
    assert {s.motion for s in specs} == set(world.MOTIONS)
    assert all((s.speed is None) == (s.motion == "still") for s in specs)


def test_shapes_stay_inside_the_frame_for_the_whole_clip(sampled_specs):
    specs = [s for split_specs in sampled_specs.values() for s in split_specs]
    u = np.linspace(0.0, 1.0, 301)
    for spec in specs:
        cx, cy, radius, _ = world.shape_poses(spec, u)
        assert np.all(np.minimum.reduce([cx, cy, 1 - cx, 1 - cy]) >= radius), spec
    for spec in specs[::10]:
        clip = world.render_clip(spec, 32)
        border = np.concatenate([clip[:, [0, -1]].reshape(-1, 3),
                                 clip[:, :, [0, -1]].reshape(-1, 3)])
        assert np.all(border == world.BACKGROUND_RGB[spec.background]), spec


# ----------------------------------------------------------------------------- captions


def test_parse_caption_recovers_the_attributes_of_every_caption():
    rng = np.random.default_rng(0)
    for spec in _specs(500):
        caption = world.make_caption(spec, rng)
        parsed = world.parse_caption(caption)
        assert caption.isascii() and caption == caption.lower()
        assert len(caption) <= world.MAX_CAPTION_LENGTH
        for attribute in ("colour", "shape", "motion"):
            assert parsed[attribute] == getattr(spec, attribute), caption
        assert parsed.get("speed") == spec.speed, caption
        for attribute in ("size", "background"):
            assert parsed.get(attribute, getattr(spec, attribute)) == getattr(spec, attribute)
        canonical = world.parse_caption(world.canonical_caption(spec))
        assert canonical == {k: v for k, v in spec.to_dict().items()
                             if k in CLIP_ATTRIBUTES and v is not None}


def test_caption_wording_varies():
    spec = world.ClipSpec("circle", "red", "large", "black", "left", "quickly", 0.7, 0.5, 0.0)
    assert world.canonical_caption(spec) == \
        "a large red circle moving quickly to the left on a black background"
    captions = [world.make_caption(spec, np.random.default_rng(i)) for i in range(60)]
    assert len(set(captions)) >= 40
    assert any("size" not in world.parse_caption(c) for c in captions)
    assert any("background" not in world.parse_caption(c) for c in captions)
    assert {world.parse_caption(c)["shape"] for c in captions} == {"circle"}
    assert len({c.split()[-1] for c in captions}) >= 4


def test_parse_caption_reads_free_prompts():
    assert world.parse_caption("A blue star") == {"colour": "blue", "shape": "star"}
    assert world.parse_caption("yellow ball bouncing up and down, fast") == {
        "colour": "yellow", "shape": "circle", "motion": "bouncing", "speed": "quickly"}
    assert world.parse_caption("tiny magenta box getting bigger on white")["motion"] == "growing"


# ----------------------------------------------------------------------------- evaluator


def test_read_clip_recovers_every_attribute_at_32(scores_32):
    assert all(scores_32[a] >= 0.98 for a in CLIP_ATTRIBUTES), scores_32
    assert scores_32["all"] >= 0.98


def test_read_clip_recovers_every_attribute_at_64():
    specs = _specs(200, offset=5000)
    scores = evaluator.score_clips([world.render_clip(s, 64) for s in specs], specs)
    print("\nclip accuracy 64x64:", scores)
    assert all(scores[a] >= 0.98 for a in CLIP_ATTRIBUTES) and scores["all"] >= 0.98, scores


def test_read_frame_on_single_frames(clips_32, specs_32):
    first = evaluator.score_frames(clips_32[:, 0], specs_32)
    print("\nframe-0 accuracy 32x32:", first)
    assert all(value >= 0.98 for value in first.values()), first
    middle = evaluator.score_frames(clips_32[:, 8], specs_32)
    assert middle["colour"] >= 0.98 and middle["shape"] >= 0.98 and middle["background"] == 1.0


def test_read_frame_geometry():
    spec = _still(shape="triangle", x=0.4, y=0.6, angle=100.0)
    reading = evaluator.read_frame(world.render_frame(spec, 0, 64))
    assert reading.centroid == pytest.approx((0.4, 0.6), abs=0.01)
    assert reading.angle == pytest.approx(100.0 % 120.0, abs=2.0)
    expected_area = world.unit_area("triangle") * world.SIZE_RADIUS["large"] ** 2
    assert reading.area == pytest.approx(expected_area, rel=0.05)


def test_evaluator_tells_opposite_attributes_apart(clips_32, specs_32):
    reversed_motion = {"left": "right", "right": "left", "up": "down", "down": "up",
                       "growing": "shrinking", "shrinking": "growing"}
    pairs = [(clip, spec) for clip, spec in zip(clips_32, specs_32)
             if spec.motion in reversed_motion][:40]
    for clip, spec in pairs:
        assert evaluator.read_clip(clip[::-1]).motion == reversed_motion[spec.motion]
    clip, spec = pairs[0]
    swapped = clip[..., [2, 0, 1]]   # a permutation of channels changes the colour
    assert evaluator.read_clip(swapped).colour != spec.colour


def test_noise_keeps_colour_and_shape_readable(clips_32, specs_32):
    noisy = _with_noise(clips_32[:300], 8.0)
    clip_scores = evaluator.score_clips(noisy, specs_32[:300])
    frame_scores = evaluator.score_frames(noisy[:, 0], specs_32[:300])
    print("\nnoisy (std 8) clip accuracy:", clip_scores, "\nnoisy frame-0:", frame_scores)
    for scores in (clip_scores, frame_scores):
        assert scores["colour"] >= 0.95 and scores["shape"] >= 0.95, scores


def test_a_few_stray_pixels_do_not_change_the_reading():
    spec = _still(shape="star", colour="yellow", background="white", size="small")
    clip = world.render_clip(spec, 32, 4)
    clip[:, 2, 3] = clip[:, 29, 27] = 0   # black specks, far more contrast than yellow on white
    reading = evaluator.read_clip(clip)
    assert (reading.colour, reading.shape, reading.size, reading.motion) == (
        "yellow", "star", "small", "still")


def test_objects_are_counted_and_specks_are_not(clips_32, specs_32, scores_32):
    """Every rendered frame shows one object; two shapes in a frame count two, and the frame
    no longer counts as a single object; specks of a pixel or two do not count."""
    assert scores_32["single_object"] == 1.0
    assert evaluator.score_frames(clips_32[:, 0], specs_32)["single_object"] == 1.0
    left = world.render_frame(_still(x=0.25, size="small"), 0, 32)
    right = world.render_frame(_still(x=0.75, size="small", colour="blue"), 0, 32)
    pair = np.maximum(left, right)   # both on black
    assert evaluator.read_frame(pair).objects == 2
    assert evaluator.score_frames(np.stack([pair, left]), [_still()] * 2)["single_object"] == 0.5
    assert evaluator.read_clip(np.stack([pair, left, left, left])).single_object == 0.75
    specks = left.copy()
    specks[2, 3] = specks[29, 27] = 255   # two one-pixel specks
    assert evaluator.read_frame(specks).objects == 1


def test_nothing_visible_reads_as_none():
    blank = np.full((4, 32, 32, 3), 255, dtype=np.uint8)
    frame = evaluator.read_frame(blank[0])
    assert (frame.background, frame.shape, frame.colour, frame.centroid) == ("white", None, None,
                                                                              None)
    assert frame.objects == 0
    clip = evaluator.read_clip(blank)
    assert (clip.shape, clip.colour, clip.motion, clip.speed) == (None, None, None, None)
    assert np.isnan(clip.consistency["size_stability"])


def test_bad_evaluator_input_raises_clear_errors():
    clip = world.render_clip(_still(), 32, 4)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        evaluator.read_clip(clip[0])
    with pytest.raises(ValueError, match="at least 2 frames"):
        evaluator.read_clip(clip[:1])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        evaluator.read_frame(clip[0, ..., :2])
    with pytest.raises(TypeError, match="uint8"):
        evaluator.read_frame(clip[0].astype(np.float32) / 255)
    with pytest.raises(ValueError, match="as many"):
        evaluator.score_clips(clip[None], [_still(), _still()])


def _clip_of(specs) -> np.ndarray:
    return np.stack([world.render_frame(spec, 0, 32) for spec in specs])


def test_temporal_consistency_measures_what_it_says():
    steady = evaluator.temporal_consistency(world.render_clip(_still(), 32))
    assert all(value == pytest.approx(0.0, abs=1e-3) for value in steady.values()), steady
    flicker_size = evaluator.temporal_consistency(
        _clip_of([_still(size=("small", "large")[i % 2]) for i in range(8)]))
    assert flicker_size["size_stability"] > 0.2
    growing = _still(motion="growing", speed="quickly")
    assert evaluator.temporal_consistency(world.render_clip(growing, 32))["size_stability"] < 0.05
    flicker_colour = evaluator.temporal_consistency(
        _clip_of([_still(colour=("red", "cyan")[i % 2]) for i in range(8)]))
    assert flicker_colour["colour_stability"] > 0.3
    jitter = np.random.default_rng(0).uniform(0.4, 0.6, size=(8, 2))
    shaky = evaluator.temporal_consistency(_clip_of([_still(x=x, y=y) for x, y in jitter]))
    linear = world.render_clip(_still(motion="right", speed="quickly", x=0.3), 32, 8)
    smooth = evaluator.temporal_consistency(linear)
    assert shaky["trajectory_smoothness"] > 5 * smooth["trajectory_smoothness"]
    bounce = _still(motion="bouncing", speed="quickly", y=0.7, size="small")
    assert evaluator.temporal_consistency(world.render_clip(bounce, 32))["periodicity"] > 0.9
    assert smooth["periodicity"] == 0.0


def test_score_clips_reports_mean_consistency(scores_32):
    for key in evaluator.CONSISTENCY_KEYS:
        assert np.isfinite(scores_32[f"mean_{key}"])
    assert scores_32["mean_size_stability"] < 0.05 and scores_32["mean_colour_stability"] < 0.01


def test_accuracy_by_motion_scores_each_asked_motion_over_its_own_clips():
    """Rendered clips read back right; a clip rendered with another motion counts as a miss for
    the motion its spec asks for, and a caption that names no motion leaves its clip out."""
    left = _still(motion="left", speed="quickly", x=0.7)
    still, growing = _still(), _still(motion="growing", speed="quickly", size="small")
    specs = [left, left, still, growing]
    clips = [world.render_clip(spec, 32) for spec in (left, still, still, growing)]
    readings = [evaluator.read_clip(clip) for clip in clips]
    assert evaluator.accuracy_by_motion(readings, specs) == {
        "motion_left": 0.5, "motion_still": 1.0, "motion_growing": 1.0}
    captions = [world.canonical_caption(spec) for spec in specs]
    captions[1] = "a large red square on a black background"  # names no motion: not scored
    assert evaluator.accuracy_by_motion(readings, specs, captions) == {
        "motion_left": 1.0, "motion_still": 1.0, "motion_growing": 1.0}
    assert evaluator.score_readings(readings, specs)["motion"] == 0.75
    with pytest.raises(ValueError, match="as many readings"):
        evaluator.accuracy_by_motion(readings[:1], specs)

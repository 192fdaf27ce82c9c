"""The trajectory probe: centroids, the data's mean drift, and the drift ratio of a denoiser
that knows the data's mean (1) against one blind to the direction (0)."""
import dataclasses
import types

import numpy as np
import pytest

from lumiere_jax.data import shapes
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.eval import trajectory_probe as probe

RESOLUTION, FRAMES = 16, 8
SUBJECT = shapes.ClipSpec(shape="circle", colour="red", size="small", background="white",
                          motion="left", speed="quickly", x=0.5, y=0.5, angle=0.0)


def test_centroids_follow_the_rendered_shape():
    spec = dataclasses.replace(SUBJECT, shape="square", size="large", x=0.7, y=0.35,
                               background="black")
    clip = np.asarray(frames_to_model_range(shapes.render_clip(spec, 32, FRAMES)))
    path = probe.centroids(clip, probe.background_in_model_range(spec))
    cx, cy, _, _ = shapes.shape_poses(spec, shapes.clip_times(FRAMES))
    np.testing.assert_allclose(path[:, 0], cx, atol=0.01)
    np.testing.assert_allclose(path[:, 1], cy, atol=0.01)
    with pytest.raises(ValueError, match="no centroid"):
        probe.centroids(np.full((1, 4, 4, 3), -1.0), np.full(3, -1.0))


@pytest.mark.parametrize("motion", list(probe.DIRECTIONS))
def test_the_data_mean_clip_drifts_the_full_distance_along_its_direction(motion):
    """Every clip of the mean moves TRANSLATION_DISTANCE, so its mass centroid does too, while
    its first frame sits on the side the motion leaves from."""
    spec = dataclasses.replace(SUBJECT, motion=motion)
    path = probe.centroids(probe.data_mean_clip(spec, 32, FRAMES),
                           probe.background_in_model_range(spec))
    distance = shapes.TRANSLATION_DISTANCE["quickly"]
    assert probe.drift(path, motion) == pytest.approx(distance, abs=0.02)
    direction = np.asarray(probe.DIRECTIONS[motion])
    assert (path[0] - 0.5) @ direction == pytest.approx(-distance / 2, abs=0.03)


def fake_pipeline(estimate_for):
    """A video 'pipeline' whose model's x0 estimate is estimate_for(spec of the caption) (its
    output is the eps that implies it)."""
    specs, settings = {}, DiffusionSettings(prediction="eps")

    def tokenize(captions):
        for caption in captions:
            attributes = shapes.parse_caption(caption)
            specs.setdefault(caption, dataclasses.replace(SUBJECT, **attributes))
        return np.asarray([list(specs).index(c) for c in captions])[:, None]

    def denoise(x_t, t, cond):
        spec_list = list(specs.values())
        x0 = np.stack([estimate_for(spec_list[int(i)]) for i in cond["tokens"][:, 0]])
        alpha, sigma = settings.noise_schedule().alpha_sigma(t)
        return (x_t - alpha[:, None, None, None, None] * x0) / sigma[:, None, None, None, None]

    model = types.SimpleNamespace(encode_text=lambda tokens: {"tokens": np.asarray(tokens)},
                                  self_conditioned=False, denoise=denoise)
    return types.SimpleNamespace(model=model, diffusion=settings,
                                 tokenize=tokenize, is_video=True, resolution=RESOLUTION,
                                 default_frames=FRAMES)


def test_a_model_that_knows_the_data_mean_scores_one_and_a_direction_blind_one_zero():
    subjects = [SUBJECT, dataclasses.replace(SUBJECT, colour="blue", background="black")]
    mean = lambda spec: probe.data_mean_clip(spec, RESOLUTION, FRAMES)
    blind = lambda spec: np.mean([mean(dataclasses.replace(spec, motion=m))
                                  for m in probe.DIRECTIONS], axis=0)
    knows = probe.trajectory_table(fake_pipeline(mean), subjects, (0.9,), noise_draws=2)[0.9]
    assert knows["ratio"] == pytest.approx(1.0, abs=1e-4)
    assert all(v == pytest.approx(1.0, abs=1e-4) for v in knows["by_direction"].values())
    ignores = probe.trajectory_table(fake_pipeline(blind), subjects, (0.9,), noise_draws=2)[0.9]
    assert abs(ignores["ratio"]) < 0.05
    assert knows["data_drift"] == pytest.approx(ignores["data_drift"])


def test_the_probe_refuses_image_models_and_empty_inputs():
    image = types.SimpleNamespace(is_video=False)
    with pytest.raises(ValueError, match="needs a video model"):
        probe.trajectory_table(image, [SUBJECT])
    with pytest.raises(ValueError, match=">= 1 subject"):
        probe.trajectory_table(fake_pipeline(None), [], noise_draws=1)


def test_the_command_prints_one_row_per_noise_level_and_refuses_bad_counts(capsys):
    from launch import trajectory_probe as command
    table = {0.99: {"ratio": 0.5, "model_drift": 0.2, "data_drift": 0.4,
                    "by_direction": {"left": 1.0, "right": 0.5, "up": 0.25, "down": 0.25}}}
    rows = command.markdown(table).splitlines()
    assert len(rows) == 3 and rows[2] == "| 0.990 | 0.50 | 1.00 | 0.50 | 0.25 | 0.25 | 0.200 | 0.400 |"
    with pytest.raises(SystemExit):
        command.main(["--checkpoint", "unused", "--subjects", "0"])
    assert "--subjects and --draws must be at least 1" in capsys.readouterr().err

"""The temporal-gain diagnostic: a video model against itself with its trained weights reset."""
import jax
import numpy as np
import pytest
from flax import nnx

from configs import stunet_shapes, t2i_shapes
from lumiere_jax.data import shapes
from lumiere_jax.eval.split_sampling import prompts_and_specs
from lumiere_jax.eval.temporal_gain import loss_by_t, with_trained_weights_reset
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.nn.temporal import TemporalParam
from lumiere_jax.pipeline import LumierePipeline

TIMES = (0.2, 0.6, 0.95)


def leaves(model, kind):
    return jax.tree.leaves(nnx.state(model, kind))


def shifted(model, kind, by: float):
    """`model` with `by` added to every weight of `kind` (a fresh U-Net's zero-initialised
    output conv would otherwise hide every other weight)."""
    nnx.update(model, jax.tree.map(lambda w: w + by, nnx.state(model, kind)))
    return model


@pytest.fixture(scope="module")
def tiny_video():
    config = stunet_shapes.get_config("variant=tiny")
    settings = parse_model_config(config.model)
    captions, specs = prompts_and_specs("validation", 4)
    clips = np.stack([shapes.render_clip(s, config.data.resolution, config.data.num_frames)
                      for s in specs])
    return config, settings, clips, captions


def test_a_model_at_initialisation_gains_nothing(tiny_video):
    """Reset against itself: the same weights, so the same loss at every t (ratio exactly 1)."""
    config, settings, clips, captions = tiny_video
    pipeline = LumierePipeline(shifted(build_model(settings), nnx.Not(TemporalParam), 0.02),
                               config)
    table = loss_by_t(pipeline, settings, clips, captions, TIMES)
    assert set(table) == set(TIMES)
    for row in table.values():
        assert row["trained"] == row["reset"] and row["ratio"] == 1.0, row


def test_reset_keeps_the_frozen_weights_and_reinitialises_the_trained_ones(tiny_video):
    config, settings, clips, captions = tiny_video
    model = shifted(build_model(settings, seed=3), nnx.Not(TemporalParam), 0.02)
    shifted(model, TemporalParam, 0.05)
    reset = with_trained_weights_reset(model, settings)
    fresh = build_model(settings)
    frozen = nnx.Not(TemporalParam)
    for got, want in zip(leaves(reset, frozen), leaves(model, frozen), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(leaves(reset, TemporalParam), leaves(fresh, TemporalParam), strict=True):
        np.testing.assert_array_equal(got, want)
    # The perturbed temporal layers change the loss; the reset copy does not carry them.
    table = loss_by_t(LumierePipeline(model, config), settings, clips, captions, TIMES)
    assert all(abs(row["ratio"] - 1.0) > 1e-3 for row in table.values()), table


def test_an_image_model_is_refused():
    config = t2i_shapes.get_config("variant=tiny")
    settings = parse_model_config(config.model)
    with pytest.raises(ValueError, match="image model"):
        with_trained_weights_reset(build_model(settings), settings)


def test_the_command_refuses_bad_counts_and_image_checkpoints(capsys):
    from launch import temporal_gain
    from lumiere_jax.pipeline import shipped_checkpoint
    with pytest.raises(SystemExit):
        temporal_gain.main(["--checkpoint", "unused", "--num", "0"])
    assert "--num must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        temporal_gain.main(["--checkpoint", shipped_checkpoint("t2i"), "--num", "1"])
    assert "needs a video model" in capsys.readouterr().err

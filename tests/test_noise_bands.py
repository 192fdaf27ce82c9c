"""Sampling a video model with its temporal layers only above a noise level: the split of a
denoiser by t, the STUNet's per-frame denoiser, and the settings that choose the level."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lumiere_jax import checks
from lumiere_jax.diffusion.model_sampling import guided_denoiser
from lumiere_jax.diffusion.noise_bands import split_by_noise_level
from lumiere_jax.models.stunet import STUNet
from lumiere_jax.settings import SampleSettings
from tests.test_stunet import TEMPORAL, TEXT, UNET, randomise_zero_kernels


def test_the_split_runs_high_above_the_threshold_and_low_below_it_per_example():
    high = lambda x, t, c: x + c
    low = lambda x, t, c: x - 10.0 * c
    split = jax.jit(split_by_noise_level(high, low, 0.5))
    x = jnp.arange(4.0 * 3).reshape(4, 3)
    cond = jnp.ones((4, 1))
    np.testing.assert_array_equal(split(x, jnp.full((4,), 0.9), cond), x + 1)
    np.testing.assert_array_equal(split(x, jnp.full((4,), 0.1), cond), x - 10)
    mixed = split(x, jnp.array([0.9, 0.5, 0.49, 0.0]), cond)  # t == threshold: high
    np.testing.assert_array_equal(mixed, jnp.stack([x[0] + 1, x[1] + 1, x[2] - 10, x[3] - 10]))


@pytest.fixture(scope="module")
def trained_stunet():
    """A STUNet whose zero-initialised weights (temporal outputs included) are random, so its
    temporal layers change the output."""
    model = STUNet(TEXT, UNET, TEMPORAL, rngs=nnx.Rngs(0))
    randomise_zero_kernels(model, seed=5)
    return model


def test_the_per_frame_denoiser_is_the_2d_model_on_each_frame_alone(trained_stunet):
    tokens = jax.random.randint(jax.random.key(1), (2, TEXT.max_length), 3, 200)
    cond = trained_stunet.encode_text(tokens)
    video = jax.random.normal(jax.random.key(2), (2, 4, 16, 16, 3))
    t = jnp.array([0.3, 0.8])
    per_frame = trained_stunet.denoise_per_frame(video, t, cond)
    for index in range(video.shape[1]):
        reference = trained_stunet.spatial.denoise(video[:, index], t, cond)
        np.testing.assert_allclose(per_frame[:, index], reference, atol=1e-5)
    # The temporal layers are not the identity here, so the full model differs from it.
    assert float(jnp.abs(trained_stunet.denoise(video, t, cond) - per_frame).max()) > 1e-3


def test_the_guided_denoiser_switches_to_the_frozen_2d_model_below_the_level(trained_stunet):
    tokens = jnp.asarray(jax.random.randint(jax.random.key(3), (2, TEXT.max_length), 3, 200))
    video = jax.random.normal(jax.random.key(4), (2, 4, 16, 16, 3))
    predict = guided_denoiser(trained_stunet, tokens, {}, jax.random.key(0), guidance=1.0,
                              per_frame_below=0.5)
    cond = trained_stunet.encode_text(tokens)
    for t, expected in ((0.7, trained_stunet.denoise), (0.2, trained_stunet.denoise_per_frame)):
        times = jnp.full((2,), t)
        np.testing.assert_allclose(predict(video, times), expected(video, times, cond), atol=1e-5)


def test_an_image_model_refuses_the_level(trained_stunet):
    with pytest.raises(ValueError, match="per_frame_below is for video models"):
        guided_denoiser(trained_stunet.spatial, jnp.zeros((1, TEXT.max_length), jnp.int32), {},
                        jax.random.key(0), guidance=1.0, per_frame_below=0.5)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_levels_outside_0_1_are_refused(value):
    with pytest.raises(checks.InputError, match=r"per_frame_below must be .*0 = never"):
        checks.settings(per_frame_below=value)
    with pytest.raises(ValueError, match=r"per_frame_below must be in \[0, 1\]"):
        SampleSettings(per_frame_below=value)

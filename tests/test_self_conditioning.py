"""Self-conditioning (`unet.self_condition`): the U-Net reads an x0 estimate; training feeds it its
own first guess half of the time, the samplers the previous step's x0."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lumiere_jax.diffusion import get_schedule, to_x0_eps
from lumiere_jax.diffusion.model_sampling import guided_denoiser
from lumiere_jax.diffusion.samplers import sample
from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.t2i import X0_ESTIMATE, TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.train.step import self_conditioned_denoiser

TEXT = TextEncoderConfig(width=32, num_layers=1, num_heads=2, max_length=16)
UNET = UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(8,), num_heads=2, context_features=32,
                  patch_size=2, self_condition=True)


def randomise_output_conv(model: TextToImage, seed: int) -> None:
    """Weights for the zero-initialised output conv, so outputs and gradients are not all 0."""
    kernel = model.unet.conv_out.kernel
    kernel.value = jax.random.normal(jax.random.key(seed), kernel.value.shape) * 0.1


@pytest.fixture(scope="module")
def t2i():
    model = TextToImage(TEXT, UNET, rngs=nnx.Rngs(0))
    randomise_output_conv(model, seed=2)
    return model


@pytest.fixture(scope="module")
def cond(t2i):
    tokens = jax.random.randint(jax.random.key(7), (2, TEXT.max_length), 3, 200)
    return nnx.jit(lambda m: m.encode_text(tokens))(t2i)


def test_the_sampler_hands_each_step_the_previous_steps_x0():
    """An x0-predicting stand-in returns its estimate + 1: the estimate starts at zeros and is
    the previous x0 at every later step, so after n steps the (clean) sample is exactly n."""
    seen = []

    def predict(x_t, t, estimate):
        seen.append(estimate)
        return estimate + 1.0

    steps = 5
    x = sample(predict, (2, 4, 4, 3), jax.random.key(0), "cosine", steps=steps, prediction="x0",
               self_condition=True)
    np.testing.assert_allclose(np.asarray(x), steps, rtol=1e-6)
    # Without self-conditioning the predictor is called with (x_t, t) only.
    plain = sample(lambda x_t, t: jnp.ones_like(x_t), (2, 4, 4, 3), jax.random.key(0), "cosine",
                   steps=steps, prediction="x0")
    np.testing.assert_allclose(np.asarray(plain), 1.0, rtol=1e-6)


def test_the_estimate_reaches_the_output_and_is_required(t2i, cond):
    x_t = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    t = jnp.array([0.3, 0.8])
    model = t2i
    run = nnx.jit(lambda m, estimate: m.denoise(x_t, t, dict(cond, **{X0_ESTIMATE: estimate})))
    zeros, guess = run(model, jnp.zeros_like(x_t)), run(model, jnp.tanh(x_t))
    assert float(jnp.abs(zeros - guess).max()) > 1e-3
    assert t2i.self_conditioned and t2i.per_frame_inputs == (X0_ESTIMATE,)
    with pytest.raises(ValueError, match="x0_estimate"):
        model.denoise(x_t, t, cond)
    plain = TextToImage(TEXT, dataclasses.replace(UNET, self_condition=False), rngs=nnx.Rngs(0))
    assert not plain.self_conditioned and plain.per_frame_inputs == ()
    assert "self_condition_in" not in nnx.state(plain.unet, nnx.Param)


def test_training_feeds_the_first_guess_only_where_chosen_and_without_gradient(t2i, cond):
    schedule = get_schedule("cosine")
    x_t = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    t = jnp.array([0.4, 0.6])
    use = jnp.array([True, False])
    graphdef, params = nnx.split(t2i)

    def loss(params):
        model = nnx.merge(graphdef, params)
        return jnp.sum(self_conditioned_denoiser(model, cond, schedule, "v", use, jnp.float32)(x_t, t))

    @jax.jit
    def outputs(params):
        model = nnx.merge(graphdef, params)
        out = self_conditioned_denoiser(model, cond, schedule, "v", use, jnp.float32)(x_t, t)
        run = lambda estimate: model.denoise(x_t, t, dict(cond, **{X0_ESTIMATE: estimate}))
        alpha, sigma = schedule.alpha_sigma(t)
        guess = jnp.clip(to_x0_eps(run(jnp.zeros_like(x_t)), x_t, alpha, sigma, "v")[0], -1, 1)
        return out, run(guess), run(jnp.zeros_like(x_t)), jax.grad(loss)(params)

    out, with_guess, with_zeros, grads = outputs(params)
    np.testing.assert_allclose(out[0], with_guess[0], atol=1e-5)
    np.testing.assert_allclose(out[1], with_zeros[1], atol=1e-5)
    assert float(jnp.abs(with_guess[0] - with_zeros[0]).max()) > 1e-4  # the two cases differ
    assert float(jnp.abs(grads["unet"]["self_condition_in"]["kernel"].value).max()) > 0


def test_a_stunet_inflated_from_it_is_the_backbone_per_frame_at_init(t2i, cond):
    stunet = STUNet(TEXT, UNET, STUNetConfig(temporal_attention_layers=1, num_heads=2),
                    rngs=nnx.Rngs(0))
    nnx.update(stunet.spatial, nnx.state(t2i))
    assert stunet.self_conditioned and X0_ESTIMATE in stunet.per_frame_inputs
    frame = jax.random.normal(jax.random.key(5), (2, 16, 16, 3))
    estimate = jnp.tanh(jax.random.normal(jax.random.key(6), (2, 16, 16, 3)))
    video = jnp.repeat(frame[:, None], 4, axis=1)
    t = jnp.array([0.2, 0.7])
    out = nnx.jit(lambda m: m.denoise(
        video, t, dict(cond, **{X0_ESTIMATE: jnp.repeat(estimate[:, None], 4, 1)})))(stunet)
    reference = nnx.jit(lambda m: m.denoise(frame, t, dict(cond, **{X0_ESTIMATE: estimate})))(
        stunet.spatial)
    assert float(jnp.abs(reference).max()) > 1e-2
    for index in range(4):
        np.testing.assert_allclose(out[:, index], reference, atol=1e-5)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_guided_sampling_runs_the_estimate_through_both_prompts(t2i, guidance):
    tokens = jax.random.randint(jax.random.key(8), (2, TEXT.max_length), 3, 200)
    predict = guided_denoiser(t2i, tokens, {}, jax.random.key(0), guidance=guidance)
    x = jax.jit(lambda rng: sample(predict, (2, 16, 16, 3), rng, "cosine", steps=3,
                                   self_condition=True))(jax.random.key(1))
    assert x.shape == (2, 16, 16, 3) and bool(jnp.all(jnp.isfinite(x)))
    # The same predictor without an estimate is refused: it needs one.
    with pytest.raises(TypeError):
        predict(x, jnp.full((2,), 0.5))

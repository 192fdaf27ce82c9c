"""The SSR video model: a STUNet over [noisy high-res clip, upsampled low-res clip]."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import stunet_shapes
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.ssr import SuperResolution, enlarge_frames
from lumiere_jax.settings import ConfigError
from lumiere_jax.train import loop


def tiny_ssr_config():
    """16 px clips from 8 px ones, 4 frames; from the tiny STUNet config."""
    config = stunet_shapes.get_config("variant=tiny")
    model = config.model.to_dict()
    del model["backbone"]
    model.update(kind="ssr", ssr=dict(low_resolution=8))
    model["unet"].update(in_channels=6)
    model["temporal"].update(temporal_down_levels=())
    config.model = model
    return config


@pytest.fixture(scope="module")
def ssr():
    model = build_model(parse_model_config(tiny_ssr_config().model), seed=1)
    # The output conv starts at zero (the output would not depend on anything): randomise it.
    conv = model.video.spatial.unet.conv_out
    conv.kernel.value = jax.random.normal(jax.random.key(2), conv.kernel.value.shape) * 0.1
    return model


def test_config_builds_a_six_channel_unet(ssr):
    assert isinstance(ssr, SuperResolution)
    assert ssr.video.spatial.unet.conv_in.kernel.shape[-2] == 6
    trained = jax.tree_util.tree_leaves_with_path(nnx.state(ssr, ssr.trainable))
    paths = [jax.tree_util.keystr(path) for path, _ in trained]
    assert any("'unet'" in p for p in paths) and any("temporal" in p for p in paths)
    assert not any("text_encoder" in p for p in paths)  # pretrained and frozen


def test_output_depends_on_the_low_res_clip(ssr):
    rng = jax.random.split(jax.random.key(0), 3)
    x_t = jax.random.normal(rng[0], (2, 4, 16, 16, 3))
    cond = ssr.encode_text(jnp.ones((2, 8), jnp.int32))
    low_a = jax.random.normal(rng[1], (2, 4, 8, 8, 3))
    low_b = jax.random.normal(rng[2], (2, 4, 8, 8, 3))
    t = jnp.full((2,), 0.5)
    out_a = ssr.denoise(x_t, t, dict(cond, low_res=low_a))
    out_b = ssr.denoise(x_t, t, dict(cond, low_res=low_b))
    chex.assert_shape(out_a, x_t.shape)
    assert float(jnp.abs(out_a - out_b).max()) > 1e-4
    # The first row's output only depends on the first row's low-res clip.
    mixed = ssr.denoise(x_t, t, dict(cond, low_res=low_a.at[1].set(low_b[1])))
    np.testing.assert_allclose(mixed[0], out_a[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], out_b[1], atol=1e-5)


def test_condition_on_shrinks_the_clean_clip(ssr):
    # A clip that is constant on 2x2 pixel blocks shrinks to exactly those block values.
    blocks = jax.random.uniform(jax.random.key(3), (1, 4, 8, 8, 3), minval=-1, maxval=1)
    clean = jnp.repeat(jnp.repeat(blocks, 2, axis=2), 2, axis=3)
    cond = ssr.condition_on({"context": None}, clean)
    np.testing.assert_allclose(cond["low_res"], blocks, atol=1e-5)
    # Enlarging a constant clip keeps it constant.
    np.testing.assert_allclose(enlarge_frames(jnp.full((1, 2, 8, 8, 3), 0.25), 16), 0.25, atol=1e-6)


def test_bad_conditioning_is_refused(ssr):
    x_t = jnp.zeros((1, 4, 16, 16, 3))
    cond = ssr.encode_text(jnp.ones((1, 8), jnp.int32))
    with pytest.raises(ValueError, match="low_res"):
        ssr.denoise(x_t, jnp.zeros((1,)), cond)
    with pytest.raises(AssertionError):
        ssr.denoise(x_t, jnp.zeros((1,)), dict(cond, low_res=jnp.zeros((1, 4, 4, 4, 3))))


@pytest.mark.parametrize("change, message", [
    (dict(unet=dict(in_channels=3)), "in_channels must be 2 x out_channels"),
    (dict(ssr=dict(low_resolution=16)), "low_resolution must divide"),
    (dict(ssr=dict(low_resolution=6)), "low_resolution must divide"),
    (dict(ssr=dict(factor=2)), "factor"),
])
def test_bad_ssr_configs_are_refused(change, message):
    config = tiny_ssr_config()
    for section, values in change.items():
        config.model[section].update(values)
    with pytest.raises(ConfigError, match=message):
        build_model(parse_model_config(config.model))


def test_train_steps_learn_from_the_low_res_clip(tmp_path):
    """Through the shared trainer: the first conv's weights on the low-res channels move."""
    config = tiny_ssr_config()
    config.data.data_dir = str(tmp_path / "data")
    run, graphdef, state, step, iterator = loop.setup(config)

    def low_res_weights(state):
        model = nnx.merge(graphdef, state.params, state.frozen)
        return np.asarray(model.video.spatial.unet.conv_in.kernel.value[:, :, 3:, :])

    before = low_res_weights(state)
    for _ in range(3):  # the zero output conv moves first, then gradients reach the input conv
        batch = next(iterator)
        state, metrics = step(state, {"frames": batch["frames"], "tokens": batch["tokens"]})
        assert np.isfinite(float(metrics["loss"]))
    assert np.abs(low_res_weights(state) - before).max() > 0

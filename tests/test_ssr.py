"""The SSR video model: a STUNet over [noisy high-res clip, upsampled low-res clip]."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import stunet_shapes, t2i_shapes
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.ssr import SuperResolution, enlarge_frames
from lumiere_jax.pipeline import LumierePipeline
from lumiere_jax.settings import ConfigError
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup


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
    denoise = nnx.jit(lambda model, low_res: model.denoise(x_t, t, dict(cond, low_res=low_res)))
    out_a = denoise(ssr, low_a)
    out_b = denoise(ssr, low_b)
    chex.assert_shape(out_a, x_t.shape)
    assert float(jnp.abs(out_a - out_b).max()) > 1e-4
    # The first row's output only depends on the first row's low-res clip.
    mixed = denoise(ssr, low_a.at[1].set(low_b[1]))
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
    trainer = setup(parse_run_config(config))
    graphdef, state, step = trainer.graphdef, trainer.state, trainer.train_step
    iterator = trainer.make_iterator()

    def low_res_weights(state):
        model = nnx.merge(graphdef, state.params, state.frozen)
        return np.asarray(model.video.spatial.unet.conv_in.kernel.value[:, :, 3:, :])

    before = low_res_weights(state)
    for _ in range(3):  # the zero output conv moves first, then gradients reach the input conv
        batch = next(iterator)
        state, metrics = step(state, {"frames": batch["frames"], "tokens": batch["tokens"]})
        assert np.isfinite(float(metrics["loss"]))
    assert np.abs(low_res_weights(state) - before).max() > 0


def tiny_configs():
    stunet = stunet_shapes.get_config("variant=tiny")
    return {"t2i": t2i_shapes.get_config("variant=tiny"), "stunet": stunet, "ssr": tiny_ssr_config()}


@pytest.mark.parametrize("kind", ["t2i", "stunet", "ssr"])
def test_every_model_kind_declares_the_protocol(kind):
    """What the trainer and the pipeline read of a model, declared by each kind (traced only)."""
    config = tiny_configs()[kind]
    model = nnx.eval_shape(lambda: build_model(parse_model_config(config.model)))
    side, frames = config.model.unet.resolution, config.data.num_frames
    assert model.resolution == side
    assert model.is_video == (kind != "t2i")
    trainable = {jax.tree_util.keystr(path) for path, _ in
                 jax.tree_util.tree_leaves_with_path(nnx.state(model, model.trainable))}
    assert trainable and not any("text_encoder" in path for path in trainable)
    if model.is_video:
        assert model.input_shape(2, frames) == (2, frames, side, side, 3)
        with pytest.raises(ValueError, match="frames"):
            model.input_shape(2, None)
        with pytest.raises(ValueError, match="0 frames cannot be halved"):
            model.input_shape(2, 0)
    else:
        assert model.input_shape(2) == (2, side, side, 3)
        with pytest.raises(ValueError, match="only for video models"):
            model.input_shape(2, frames)
    expected = {"low_res": (2, frames, 8, 8, 3)} if kind == "ssr" else {}
    assert model.conditioning_shapes(2, frames if model.is_video else None) == expected


def test_the_pipeline_samples_the_ssr_model_from_a_low_res_clip(ssr):
    pipeline = LumierePipeline(ssr, tiny_ssr_config())
    assert pipeline.is_video and pipeline.resolution == 16
    prompt = ["a large red circle moving quickly to the left on a black background"]
    low = np.random.default_rng(0).integers(0, 256, (1, 4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"missing: \['low_res'\]"):
        pipeline.sample(prompt, steps=2)
    with pytest.raises(ValueError, match=r"'low_res' has shape \(1, 2, 8, 8, 3\)"):
        pipeline.sample(prompt, steps=2, conditions={"low_res": low[:, :2]})
    clips = [pipeline.sample(prompt, steps=2, guidance=1.0, conditions={"low_res": clip})
             for clip in (low, 255 - low)]
    assert clips[0].shape == (1, 4, 16, 16, 3) and clips[0].dtype == np.uint8
    assert np.any(clips[0] != clips[1])  # the sample follows the low-resolution clip

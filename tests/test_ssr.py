"""Super-resolution: the 2D SR model ("sr") and its inflation with temporal layers (the SSR)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import sr_shapes, ssr_shapes, stunet_shapes, t2i_shapes
from lumiere_jax.checkpoints.exported import CheckpointError, save_exported
from lumiere_jax.checkpoints.pretrained import load_backbone
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.sr import SuperResolution2D, augment, enlarge_frames
from lumiere_jax.models.stunet import STUNet
from lumiere_jax.nn.temporal import TemporalParam
from lumiere_jax.pipeline import LumierePipeline
from lumiere_jax.settings import ConfigError
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup

def tiny_sr_config():
    """16 px images from 8 px ones."""
    return sr_shapes.get_config("variant=tiny")


def tiny_ssr_config(backbone: str = ""):
    """The tiny SR inflated: 4-frame clips, temporal conv blocks only (no resampling, no
    attention); `backbone` names an SR export (the tiny variant itself starts from random)."""
    config = ssr_shapes.get_config("variant=tiny")
    config.model.backbone = backbone
    return config


def randomise_zero_weights(model, seed):
    """Zero-initialised weights (output convs, temporal projections) drawn at random, as after
    training: otherwise outputs would not depend on the inputs."""
    params = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(seed), 1000))
    nnx.update(model, jax.tree.map(
        lambda x: 0.1 * jax.random.normal(next(keys), x.shape) if not np.any(x) else x, params))
    return model


@pytest.fixture(scope="module")
def sr():
    return randomise_zero_weights(build_model(parse_model_config(tiny_sr_config().model), 1), 2)


def conditions(model, batch, frames=None, seed=0):
    """Text condition plus a random low-res input and augmentation level 0.2."""
    keys = jax.random.split(jax.random.key(seed), 2)
    cond = model.encode_text(jax.random.randint(keys[0], (batch, 8), 3, 200))
    leading = (batch,) if frames is None else (batch, frames)
    low_res = jax.random.normal(keys[1], leading + (8, 8, 3))
    return dict(cond, low_res=low_res, aug_level=jnp.full((batch,), 0.2))


def test_the_sr_unet_reads_noisy_and_low_res_images_and_is_told_the_augmentation(sr):
    assert isinstance(sr, SuperResolution2D) and not sr.is_video
    assert sr.unet.conv_in.kernel.shape[-2] == 6
    x_t = jax.random.normal(jax.random.key(5), (2, 16, 16, 3))
    t = jnp.full((2,), 0.5)
    cond = conditions(sr, 2)
    denoise = nnx.jit(lambda model, c: model.denoise(x_t, t, c))
    out = denoise(sr, cond)
    chex.assert_shape(out, x_t.shape)
    other_low = dict(cond, low_res=cond["low_res"].at[1].multiply(-1.0))
    mixed = denoise(sr, other_low)
    np.testing.assert_allclose(mixed[0], out[0], atol=1e-5)   # rows stay apart
    assert float(jnp.abs(mixed[1] - out[1]).max()) > 1e-4     # the low-res input matters
    other_level = denoise(sr, dict(cond, aug_level=jnp.array([0.2, 0.9])))
    np.testing.assert_allclose(other_level[0], out[0], atol=1e-5)
    assert float(jnp.abs(other_level[1] - out[1]).max()) > 1e-4  # so does the level


def test_condition_on_shrinks_the_clean_batch_and_augments_it_per_example(sr):
    """A batch constant on 2x2 blocks shrinks to those blocks; each example is noised to its
    own level in [0, noise_aug_max] with its own key, images and clips alike."""
    blocks = jax.random.uniform(jax.random.key(3), (3, 8, 8, 3), minval=-1, maxval=1)
    clean = jnp.repeat(jnp.repeat(blocks, 2, axis=1), 2, axis=2)
    keys = jax.random.key_data(jax.random.split(jax.random.key(4), 3))
    cond = sr.condition_on({"context": None}, clean, keys)
    levels = np.asarray(cond["aug_level"])
    assert levels.shape == (3,) and np.all((levels >= 0) & (levels <= 0.5))
    assert len(set(levels.tolist())) == 3
    # The noise is what augment() adds: recover it from one example and check the formula.
    angle = 0.5 * np.pi * levels[:, None, None, None]
    eps = (np.asarray(cond["low_res"]) - np.cos(angle) * np.asarray(blocks)) / np.sin(angle)
    np.testing.assert_allclose(augment(blocks, jnp.asarray(levels), jnp.asarray(eps)),
                               cond["low_res"], atol=1e-5)
    assert 0.7 < float(np.std(eps)) < 1.3  # unit Gaussian noise
    # The same keys give the same draw; clips get one level per clip.
    np.testing.assert_array_equal(sr.condition_on({}, clean, keys)["low_res"], cond["low_res"])
    clip = jnp.repeat(clean[:, None], 4, axis=1)
    assert sr.condition_on({}, clip, keys)["low_res"].shape == (3, 4, 8, 8, 3)


def test_sampling_augments_the_given_input_once_to_the_chosen_level(sr):
    low_res = jax.random.uniform(jax.random.key(6), (2, 8, 8, 3), minval=-1, maxval=1)
    plain = sr.prepare_conditions({"low_res": low_res}, jax.random.key(0), noise_aug=0.0)
    np.testing.assert_allclose(plain["low_res"], low_res, atol=1e-6)
    np.testing.assert_array_equal(plain["aug_level"], [0.0, 0.0])
    default = sr.prepare_conditions({"low_res": low_res}, jax.random.key(0))
    np.testing.assert_allclose(default["aug_level"], [0.1, 0.1])
    assert not np.allclose(default["low_res"], low_res, atol=1e-3)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        sr.prepare_conditions({"low_res": low_res}, jax.random.key(0), noise_aug=1.5)
    # Enlarging a constant image keeps it constant.
    np.testing.assert_allclose(enlarge_frames(jnp.full((1, 2, 8, 8, 3), 0.25), 16), 0.25,
                               atol=1e-6)


def test_missing_or_misshapen_sr_inputs_are_refused(sr):
    x_t, t = jnp.zeros((1, 16, 16, 3)), jnp.zeros((1,))
    cond = conditions(sr, 1)
    with pytest.raises(ValueError, match="low_res"):
        sr.denoise(x_t, t, {k: v for k, v in cond.items() if k != "low_res"})
    with pytest.raises(ValueError, match="aug_level"):
        sr.denoise(x_t, t, {k: v for k, v in cond.items() if k != "aug_level"})
    with pytest.raises(ValueError, match=r"low_res'\] has shape \(1, 4, 4, 3\)"):
        sr.denoise(x_t, t, dict(cond, low_res=jnp.zeros((1, 4, 4, 3))))


@pytest.mark.parametrize("change, message", [
    (dict(unet=dict(in_channels=3)), "in_channels must be 2 x out_channels"),
    (dict(unet=dict(aug_conditioning=False)), "aug_conditioning=True"),
    (dict(ssr=dict(low_resolution=16)), "low_resolution must divide"),
    (dict(ssr=dict(low_resolution=6)), "low_resolution must divide"),
    (dict(ssr=dict(noise_aug=1.5)), r"levels are in \[0, 1\]"),
    (dict(ssr=dict(factor=2)), "factor"),
])
@pytest.mark.parametrize("kind", ["sr", "ssr"])
def test_bad_sr_configs_are_refused(kind, change, message):
    config = tiny_sr_config() if kind == "sr" else tiny_ssr_config()
    for section, values in change.items():
        config.model[section].update(values)
    with pytest.raises(ConfigError, match=message):
        build_model(parse_model_config(config.model))


def test_a_t2i_unet_takes_no_augmentation_level():
    model = build_model(parse_model_config(t2i_shapes.get_config("variant=tiny").model))
    with pytest.raises(ValueError, match="aug_level is needed by, and only by"):
        model.unet.embed(jnp.zeros((1,)), jnp.zeros((1, 2, 32)), jnp.ones((1, 2), bool),
                         aug_level=jnp.zeros((1,)))


@pytest.fixture(scope="module")
def sr_export(sr, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sr") / "export")
    save_exported(directory, nnx.state(sr, nnx.Param), tiny_sr_config().to_dict())
    return directory


@pytest.fixture(scope="module")
def ssr(sr_export):
    model = build_model(parse_model_config(tiny_ssr_config(sr_export).model), seed=3)
    load_backbone(model, sr_export)
    return model


def test_the_inflated_ssr_is_the_2d_sr_model_per_frame_at_initialisation(sr, ssr):
    """Temporal conv blocks at every site, nothing else temporal; zero-initialised, so the
    SSR at init is the 2D SR applied to each frame (its low-res frame, its clip's level)."""
    assert isinstance(ssr, STUNet) and ssr.is_video
    assert ssr.per_frame_inputs == ("low_res",)
    assert not ssr.temporal_attention and not ssr.temporal_downsamples
    assert set(ssr.temporal_convs) == {site.replace(".", "_") for site in ssr.sites
                                       if "sample" not in site}
    x_t = jax.random.normal(jax.random.key(7), (2, 4, 16, 16, 3))
    t = jnp.array([0.3, 0.7])
    cond = conditions(ssr, 2, frames=4, seed=1)
    video = nnx.jit(lambda model: model.denoise(x_t, t, cond))(ssr)
    per_frame = {"context": jnp.repeat(cond["context"], 4, 0), "mask": jnp.repeat(cond["mask"], 4, 0),
                 "low_res": cond["low_res"].reshape((8, 8, 8, 3)),
                 "aug_level": jnp.repeat(cond["aug_level"], 4)}
    frames = nnx.jit(lambda model: model.denoise(x_t.reshape((8, 16, 16, 3)), jnp.repeat(t, 4),
                                                 per_frame))(sr)
    np.testing.assert_allclose(video, frames.reshape(video.shape), rtol=1e-4, atol=1e-5)


def test_an_ssr_inflates_only_an_sr_export(ssr, tmp_path):
    t2i_config = t2i_shapes.get_config("variant=tiny")
    t2i = build_model(parse_model_config(t2i_config.model))
    save_exported(str(tmp_path / "t2i"), nnx.state(t2i, nnx.Param), t2i_config.to_dict())
    with pytest.raises(CheckpointError, match="a 't2i' checkpoint; this video model inflates "
                                              "an exported 'sr' model"):
        load_backbone(nnx.clone(ssr), str(tmp_path / "t2i"))


def test_ssr_training_moves_only_temporal_weights_and_reads_the_low_res_clip(sr_export, tmp_path):
    """Through the shared trainer, restored from the SR export: the frozen SR stays as it was,
    the temporal weights move."""
    config = tiny_ssr_config(sr_export)
    config.data.data_dir = str(tmp_path / "data")
    trainer = setup(parse_run_config(config))
    state = trainer.state
    frozen_before = jax.tree.map(np.asarray, state.frozen)
    temporal_before = jax.tree.map(np.asarray, state.params)
    model = nnx.merge(trainer.graphdef, state.params, state.frozen)
    assert {type(v) for _, v in nnx.to_flat_state(nnx.state(model, model.trainable))} == {
        TemporalParam}
    iterator = trainer.make_iterator()
    for _ in range(3):
        batch = next(iterator)
        state, metrics = trainer.train_step(state, {"frames": batch["frames"],
                                                    "tokens": batch["tokens"]})
        assert np.isfinite(float(metrics["loss"]))
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, state.frozen), frozen_before)
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params),
                                                      jax.tree.leaves(temporal_before))]
    assert sum(moved) > len(moved) // 2


def tiny_configs():
    stunet = stunet_shapes.get_config("variant=tiny")
    return {"t2i": t2i_shapes.get_config("variant=tiny"), "sr": tiny_sr_config(),
            "stunet": stunet, "ssr": tiny_ssr_config()}


@pytest.mark.parametrize("kind", ["t2i", "sr", "stunet", "ssr"])
def test_every_model_kind_declares_the_protocol(kind):
    """What the trainer and the pipeline read of a model, declared by each kind (traced only)."""
    config = tiny_configs()[kind]
    model = nnx.eval_shape(lambda: build_model(parse_model_config(config.model)))
    side, frames = config.model.unet.resolution, config.data.num_frames
    assert model.resolution == side
    assert model.is_video == (kind in ("stunet", "ssr"))
    trainable = {jax.tree_util.keystr(path) for path, _ in
                 jax.tree_util.tree_leaves_with_path(nnx.state(model, model.trainable))}
    assert trainable and not any("text_encoder" in path for path in trainable)
    if model.is_video:
        assert model.input_shape(2, frames) == (2, frames, side, side, 3)
        with pytest.raises(ValueError, match="frames"):
            model.input_shape(2, None)
        assert model.per_frame_inputs == (("low_res",) if kind == "ssr" else ())
    else:
        assert model.input_shape(2) == (2, side, side, 3)
        with pytest.raises(ValueError, match="only for video models"):
            model.input_shape(2, frames)
    low_res = {"sr": {"low_res": (2, 8, 8, 3)}, "ssr": {"low_res": (2, frames, 8, 8, 3)}}
    assert model.conditioning_shapes(2, frames if model.is_video else None) == low_res.get(kind, {})


def test_the_pipeline_samples_the_ssr_from_a_low_res_clip_whole_or_in_windows(ssr):
    trained = randomise_zero_weights(nnx.clone(ssr), 9)  # temporal layers that mix frames
    pipeline = LumierePipeline(trained, tiny_ssr_config())
    assert pipeline.is_video and pipeline.resolution == 16
    prompt = ["a large red circle moving quickly to the left on a black background"]
    low = np.random.default_rng(0).integers(0, 256, (1, 6, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"missing: \['low_res'\]"):
        pipeline.sample(prompt, steps=2, frames=6)
    with pytest.raises(ValueError, match=r"'low_res' has shape \(1, 2, 8, 8, 3\)"):
        pipeline.sample(prompt, steps=2, frames=6, conditions={"low_res": low[:, :2]})
    with pytest.raises(ValueError, match="longer than the clip"):
        pipeline.sample(prompt, steps=2, frames=6, conditions={"low_res": low}, window=8)
    run = lambda clip, **kw: pipeline.sample(prompt, steps=2, guidance=1.0, frames=6,
                                             conditions={"low_res": clip}, **kw)
    whole, windows = run(low), run(low, window=4, stride=2)
    assert whole.shape == windows.shape == (1, 6, 16, 16, 3) and whole.dtype == np.uint8
    assert not np.array_equal(whole, windows)  # the temporal layers see other frames
    assert not np.array_equal(run(255 - low, window=4, stride=2), windows)
    # A window as long as the clip is the whole-clip call.
    np.testing.assert_array_equal(run(low, window=6, stride=3), whole)

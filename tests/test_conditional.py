"""The conditional STUNet (<J, C, M>, a widened first conv) and the mask layouts it trains on."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import conditional_shapes, stunet_shapes
from lumiere_jax.checkpoints.exported import CheckpointError, save_exported
from lumiere_jax.checkpoints.pretrained import load_backbone
from lumiere_jax.models import masks
from lumiere_jax.models.build import build_model
from lumiere_jax.models.conditional import (CONDITION_GAIN, KNOWN_MASK, KNOWN_VIDEO,
                                            ConditionalSTUNet,
                                            ConditioningConfig, ConditionInputParam)
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.text_encoder import TextParam
from lumiere_jax.settings import ConfigError
from tests.test_ssr import randomise_zero_weights


def tiny_stunet():
    model = build_model(parse_model_config(stunet_shapes.get_config("variant=tiny").model), 2)
    return randomise_zero_weights(model, 3)


def tiny_conditional(backbone: str = ""):
    config = conditional_shapes.get_config("variant=tiny")
    config.model.backbone = backbone
    return config


@pytest.fixture(scope="module")
def pair():
    """A trained-looking tiny STUNet and the conditional STUNet holding its weights."""
    stunet = tiny_stunet()
    conditional = build_model(parse_model_config(tiny_conditional().model), 5)
    nnx.update(conditional, nnx.state(stunet, nnx.Param))
    return stunet, conditional


def inputs(seed=0, batch=2, frames=4):
    keys = jax.random.split(jax.random.key(seed), 4)
    x_t = jax.random.normal(keys[0], (batch, frames, 16, 16, 3))
    t = jax.random.uniform(keys[1], (batch,))
    tokens = jax.random.randint(keys[2], (batch, 8), 3, 200)
    clean = jax.random.uniform(keys[3], (batch, frames, 16, 16, 3), minval=-1, maxval=1)
    return x_t, t, tokens, clean


def test_the_widened_model_starts_equal_to_the_text_to_video_model(pair):
    stunet, conditional = pair
    assert isinstance(conditional, ConditionalSTUNet)
    base = conditional.spatial.unet.config.base_channels
    assert conditional.spatial.condition_in.kernel.shape == (3, 3, 4, base)
    x_t, t, tokens, clean = inputs()
    cond = stunet.encode_text(tokens)
    keys = jax.random.key_data(jax.random.split(jax.random.key(9), 2))
    with_masks = conditional.condition_on(cond, clean, keys)
    expected = stunet.denoise(x_t, t, cond)
    assert float(jnp.abs(expected).max()) > 1e-2
    np.testing.assert_allclose(conditional.denoise(x_t, t, with_masks), expected, atol=1e-5)


def test_the_split_first_conv_equals_one_conv_over_seven_channels(pair):
    """conv_in(J) + gain * condition_in([C, M]) is a 3 -> 7 widened conv: one conv over the
    concatenation with the two kernels (the new one times the gain) stacked on the input axis."""
    _, conditional = pair
    spatial = conditional.spatial
    kernel = jax.random.normal(jax.random.key(1), spatial.condition_in.kernel.shape)
    spatial.condition_in.kernel.value = kernel
    x = jax.random.normal(jax.random.key(2), (3, 16, 16, 3))
    c = jax.random.normal(jax.random.key(3), (3, 16, 16, 4))
    split = spatial.unet.conv_in(x) + spatial.extra_input(
        {KNOWN_VIDEO: c[..., :3], KNOWN_MASK: c[..., 3:]})
    wide = nnx.Conv(7, kernel.shape[-1], (3, 3), rngs=nnx.Rngs(0))
    wide.kernel.value = jnp.concatenate([spatial.unet.conv_in.kernel.value,
                                         CONDITION_GAIN * kernel], axis=2)
    wide.bias.value = spatial.unet.conv_in.bias.value
    np.testing.assert_allclose(split, wide(jnp.concatenate([x, c], -1)), atol=1e-4)
    spatial.condition_in.kernel.value = jnp.zeros_like(kernel)


def test_with_a_trained_input_conv_the_known_pixels_steer_the_output(pair):
    stunet, conditional = pair
    spatial = conditional.spatial
    spatial.condition_in.kernel.value = 0.1 * jax.random.normal(
        jax.random.key(4), spatial.condition_in.kernel.shape)
    x_t, t, tokens, clean = inputs()
    cond = stunet.encode_text(tokens)
    known = jnp.broadcast_to(masks.first_frame_known(4, 16, 16), (2, 4, 16, 16))
    video = jax.vmap(masks.masked_video)(clean, known)
    a = conditional.denoise(x_t, t, dict(cond, known_video=video,
                                         known_mask=jnp.where(known, 1.0, -1.0)[..., None]))
    b = conditional.denoise(x_t, t, dict(cond, known_video=-video,
                                         known_mask=jnp.where(known, 1.0, -1.0)[..., None]))
    assert float(jnp.abs(a - b).max()) > 1e-3
    spatial.condition_in.kernel.value = jnp.zeros_like(spatial.condition_in.kernel.value)


def test_image_to_video_and_cinemagraph_layouts():
    first = masks.first_frame_known(4, 5, 6)
    assert first.shape == (4, 5, 6) and bool(first[0].all()) and not bool(first[1:].any())
    region = masks.box_region(5, 6, 1, 3, 2, 5)
    assert int(region.sum()) == 2 * 3 and bool(region[1, 2]) and not bool(region[3, 2])
    cinema = masks.cinemagraph_known(region, 4)
    assert bool(cinema[0].all())
    for frame in cinema[1:]:
        np.testing.assert_array_equal(frame, ~region)
    video = jnp.ones((4, 5, 6, 3))
    np.testing.assert_array_equal(masks.masked_video(video, cinema)[..., 0], cinema * 1.0)


def test_moving_region_boxes_what_changes_and_is_empty_for_a_still_clip():
    clip = -jnp.ones((3, 10, 10, 3))
    clip = clip.at[1, 2, 3].set(1.0).at[2, 6, 5].set(1.0)
    region = masks.moving_region(clip, margin=1)
    expected = masks.box_region(10, 10, 1, 8, 2, 7)
    np.testing.assert_array_equal(region, expected)
    assert not bool(masks.moving_region(-jnp.ones((3, 10, 10, 3))).any())


def test_training_layouts_follow_their_draw():
    """Each layout kind, forced by its probabilities, builds C and M as documented."""
    key = jax.random.key(3)
    clip = -jnp.ones((4, 12, 12, 3))
    clip = clip.at[:, 4:6, :].set(jnp.arange(4.0)[:, None, None, None] / 4)  # a changing band
    for kind, name in enumerate(masks.LAYOUTS):
        probs = np.eye(len(masks.LAYOUTS))[kind]
        video, known = masks.training_layout(key, clip, probs)
        chex.assert_shape((video, known), [(4, 12, 12, 3), (4, 12, 12)])
        np.testing.assert_array_equal(video, jnp.where(known[..., None], video, 0.0))
        if name == "image_to_video":
            np.testing.assert_array_equal(known, masks.first_frame_known(4, 12, 12))
            np.testing.assert_array_equal(video[0], clip[0])
        elif name == "inpainting":
            hidden = ~known
            assert 0 < int(hidden.sum()) < hidden.size
            area = jnp.max(hidden, axis=0)  # one box in every frame it hides
            for frame in hidden:
                assert not frame.any() or bool(jnp.array_equal(frame, area))
            np.testing.assert_array_equal(jnp.where(known[..., None], clip, 0.0), video)
        elif name == "cinemagraph":
            np.testing.assert_array_equal(known, masks.cinemagraph_known(
                masks.box_region(12, 12, 3, 7, 0, 12), 4))
            np.testing.assert_array_equal(video[2], jnp.where(known[2][..., None], clip[0], 0.0))
        else:
            assert not known.any() and not video.any()


def test_training_draws_every_layout_across_a_batch(pair):
    _, conditional = pair
    clean = jnp.zeros((64, 4, 16, 16, 3)).at[:, :, 6:9, 6:9].set(1.0)
    keys = jax.random.key_data(jax.random.split(jax.random.key(0), 64))
    cond = conditional.condition_on({}, clean, keys)
    mask = cond[KNOWN_MASK]
    assert set(np.unique(np.asarray(mask)).tolist()) == {-1.0, 1.0}
    known = np.asarray(mask[..., 0] > 0)
    first_only = (known[:, 0].all((1, 2)) & ~known[:, 1:].any((1, 2, 3)))
    nothing = ~known.any((1, 2, 3))
    assert 5 < first_only.sum() < 40 and 0 < nothing.sum() < 20


def export(model, config, directory):
    save_exported(str(directory), nnx.state(model, nnx.Param), config.to_dict())
    return str(directory)


def test_the_backbone_is_a_stunet_export_and_the_new_channels_start_at_zero(tmp_path, pair):
    stunet, _ = pair
    stunet_config = stunet_shapes.get_config("variant=tiny")
    backbone = export(stunet, stunet_config, tmp_path / "stunet")
    model = build_model(parse_model_config(tiny_conditional(backbone).model), 7)
    load_backbone(model, backbone)
    restored = nnx.state(model, nnx.All(nnx.Param, nnx.Not(ConditionInputParam)))
    chex.assert_trees_all_equal(restored, nnx.state(stunet, nnx.Param))
    assert not np.any(model.spatial.condition_in.kernel.value)
    # A T2I export is not a STUNet, and a STUNet of other sizes does not fit.
    t2i_config = stunet_config.copy_and_resolve_references()
    t2i_config.model = dict(kind="t2i", text_encoder=stunet_config.model.text_encoder.to_dict(),
                            unet=stunet_config.model.unet.to_dict())
    t2i = export(stunet.spatial, t2i_config, tmp_path / "t2i")
    with pytest.raises(CheckpointError, match="'t2i' checkpoint"):
        load_backbone(model, t2i)
    wider = stunet_shapes.get_config("variant=tiny")
    wider.model.temporal.temporal_conv_kernel = 5
    other = export(build_model(parse_model_config(wider.model), 1), wider, tmp_path / "other")
    with pytest.raises(CheckpointError, match="temporal.temporal_conv_kernel"):
        load_backbone(model, other)


def test_conditional_configs_are_checked():
    assert ConditionalSTUNet.trainable is not None
    with pytest.raises(ValueError, match="summing to 1"):
        ConditioningConfig(layout_probs=(0.5, 0.5, 0.5, 0.0))
    config = tiny_conditional()
    config.model.conditioning.layout_probs = (1.0, 0.0)
    with pytest.raises(ConfigError, match="layout_probs"):
        parse_model_config(config.model)
    config = tiny_conditional()
    config.model.ssr = {}
    with pytest.raises(ConfigError, match="Unknown key"):
        parse_model_config(config.model)
    text_filter_hits = nnx.state(build_model(parse_model_config(tiny_conditional().model)),
                                 nnx.All(ConditionalSTUNet.trainable, TextParam))
    assert not jax.tree.leaves(text_filter_hits)

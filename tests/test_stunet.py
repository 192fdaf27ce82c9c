"""The STUNet: identity inflation, frame bookkeeping through the walk, parameter types, backbone loading."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lumiere_jax.checkpoints import exported as io
from lumiere_jax.checkpoints.pretrained import build_pretrained
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig, TextParam
from lumiere_jax.models.unet2d import UNet2D, UNetConfig
from lumiere_jax.nn.frame_sharding import UNSHARDED
from lumiere_jax.nn.temporal import (TemporalAttentionBlock, TemporalConvBlock,
                                     TemporalDownsample, TemporalParam, TemporalTextAttention,
                                     TemporalUpsample,
                                     attend_over_space_time, attend_over_time, conv_over_time,
                                     position_features)
from lumiere_jax.settings import ConfigError

TEXT = TextEncoderConfig(width=32, num_layers=1, num_heads=2, max_length=16)
UNET = UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1,
                  attention_resolutions=(4,), num_heads=2, context_features=32)
TEMPORAL = STUNetConfig(temporal_attention_layers=2, num_heads=2, text_pool=True)


def model_config(**overrides):
    values = dict(kind="stunet", text_encoder=dataclasses.asdict(TEXT), unet=dataclasses.asdict(UNET),
                  temporal=dict(temporal_attention_layers=2, num_heads=2), backbone="")
    values.update(overrides)
    return values


def randomise_zero_kernels(module, seed):
    """Gives every all-zero weight matrix (zero-initialised outputs) random values, in place."""
    state = nnx.state(module, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [jax.random.normal(k, x.shape) * 0.2 if x.ndim >= 2 and not jnp.any(x) else x
              for k, x in zip(keys, leaves)]
    nnx.update(module, jax.tree.unflatten(treedef, leaves))


@pytest.fixture(scope="module")
def stunet():
    return STUNet(TEXT, UNET, TEMPORAL, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def cond(stunet):
    tokens = jax.random.randint(jax.random.key(7), (2, TEXT.max_length), 3, 200)
    return stunet.encode_text(tokens)


def check_identity_at_init_for_a_static_video(stunet, cond):
    model = nnx.clone(stunet)
    randomise_zero_kernels(model.spatial, seed=1)  # temporal layers keep their identity init
    frame = jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
    video = jnp.repeat(frame[:, None], 4, axis=1)
    t = jnp.array([0.2, 0.7])
    out = nnx.jit(lambda m, x: m.denoise(x, t, cond))(model, video)
    reference = model.spatial.denoise(frame, t, cond)
    assert float(jnp.abs(reference).max()) > 1e-2  # the check is not 0 == 0
    for index in range(video.shape[1]):
        np.testing.assert_allclose(out[:, index], reference, atol=1e-5)


def test_identity_at_init_for_a_static_video(stunet, cond):
    check_identity_at_init_for_a_static_video(stunet, cond)


def test_a_patch_stem_backbone_inflates_at_the_same_sites(stunet, cond):
    """A U-Net with a space-to-depth stem has the same walk (levels counted at the patched
    side), so it inflates with the same temporal layers and is still the identity at init."""
    patched = STUNet(TEXT, dataclasses.replace(UNET, patch_size=2, attention_resolutions=(2,)),
                     TEMPORAL, rngs=nnx.Rngs(0))
    assert patched.sites == stunet.sites
    assert set(patched.temporal_convs) == set(stunet.temporal_convs)
    check_identity_at_init_for_a_static_video(patched, cond)


def test_a_backbone_with_a_refine_head_inflates_and_is_the_identity_at_init(stunet, cond):
    """The full-resolution head runs per frame after the walk, like the rest of the backbone."""
    refined = STUNet(TEXT, dataclasses.replace(UNET, patch_size=2, attention_resolutions=(2,),
                                               refine_blocks=1), TEMPORAL, rngs=nnx.Rngs(0))
    assert refined.sites == stunet.sites
    check_identity_at_init_for_a_static_video(refined, cond)


def test_temporal_down_then_up_repeats_even_frames():
    down = TemporalDownsample(8, rngs=nnx.Rngs(0))
    up = TemporalUpsample(8, rngs=nnx.Rngs(1))
    video = jax.random.normal(jax.random.key(0), (2, 6, 3, 3, 8))
    out = up(down(video))
    chex.assert_shape(out, video.shape)
    np.testing.assert_allclose(out[:, 0::2], video[:, 0::2], atol=1e-6)
    np.testing.assert_allclose(out[:, 1::2], video[:, 0::2], atol=1e-6)


def observe_walk(monkeypatch, model, frames):
    """(site, frames handed to the hook, frames returned by it) for one traced denoise call."""
    seen = []
    walk = UNet2D.__call__

    def observed_walk(self, x, t, context, context_mask, *, hook, **kwargs):
        def watching_hook(site, h):
            out = hook(site, h)
            seen.append((site, h.shape[0], out.shape[0]))
            return out
        return walk(self, x, t, context, context_mask, hook=watching_hook, **kwargs)

    monkeypatch.setattr(UNet2D, "__call__", observed_walk)
    video = jnp.zeros((1, frames, 16, 16, 3))
    cond = {"context": jnp.zeros((1, 4, TEXT.width)), "mask": jnp.ones((1, 4), bool)}
    out = jax.eval_shape(lambda: model.denoise(video, jnp.zeros((1,)), cond))
    chex.assert_shape(out, video.shape)
    return seen


@pytest.mark.parametrize("down_levels, frames, per_level", [
    ((0, 1), 16, (16, 8, 4)),
    ((0, 1), 32, (32, 16, 8)),
    ((0, 1), 80, (80, 40, 20)),
    ((1,), 80, (80, 80, 40)),
])
def test_frames_at_every_site_of_the_walk(monkeypatch, stunet, down_levels, frames, per_level):
    model = stunet if down_levels == (0, 1) else STUNet(
        TEXT, UNET, dataclasses.replace(TEMPORAL, temporal_down_levels=down_levels), rngs=nnx.Rngs(0))
    seen = observe_walk(monkeypatch, model, frames)
    counts = model.frame_counts_by_site(frames)
    assert [site for site, _, _ in seen] == list(counts)
    for site, frames_in, frames_out in seen:
        level = 2 if site.startswith("middle") else int(site.split(".")[1])
        assert frames_in == counts[site] == per_level[level], site
        if site.endswith("downsample") and level in down_levels:
            assert frames_out == per_level[level + 1], site
        elif site.endswith("upsample") and level - 1 in down_levels:
            assert frames_out == per_level[level - 1], site
        else:
            assert frames_out == frames_in, site


@pytest.mark.parametrize("frames, examples", [(18, "16, 20, 24"), (2, "4, 8, 12"), (0, "4, 8, 12")])
def test_frame_counts_the_strides_cannot_divide_are_refused(stunet, cond, frames, examples):
    with pytest.raises(ValueError, match=f"multiple of 4: {examples}"):
        stunet.check_frame_count(frames)
    with pytest.raises(ValueError, match="multiple of 4"):
        jax.eval_shape(lambda: stunet.denoise(jnp.zeros((2, frames, 16, 16, 3)), jnp.zeros((2,)), cond))


def test_temporal_and_spatial_parameter_types(stunet):
    for path, variable in nnx.to_flat_state(nnx.state(stunet)):
        expected = (TextParam if path[:2] == ("spatial", "text_encoder")
                    else nnx.Param if path[0] == "spatial" else TemporalParam)
        assert type(variable) is expected, path
    spatial = nnx.state(stunet.spatial, nnx.Param)
    assert jax.tree.structure(spatial) == jax.tree.structure(
        nnx.state(TextToImage(TEXT, UNET, rngs=nnx.Rngs(1)), nnx.Param))


def test_temporal_gradients_reach_every_temporal_layer_and_mix_frames(stunet, cond):
    model = nnx.clone(stunet)
    randomise_zero_kernels(model, seed=3)
    graphdef, temporal, rest = nnx.split(model, TemporalParam, ...)
    video = jax.random.normal(jax.random.key(4), (2, 4, 16, 16, 3))
    t = jnp.array([0.3, 0.6])

    def denoise(params, x):
        return nnx.merge(graphdef, params, rest).denoise(x, t, cond)

    grads = jax.jit(jax.grad(lambda p: jnp.mean(denoise(p, video) ** 2)))(temporal)
    groups = {}
    for path, grad in nnx.to_flat_state(grads):
        assert path[0] != "spatial"
        groups[path[:2]] = groups.get(path[:2], 0.0) + float(jnp.sum(jnp.abs(grad[...])))
    assert groups.pop(("temporal_text", "pool")) > 0 and groups.pop(("temporal_text", "proj")) > 0
    assert len(groups) == len(model.sites)  # with temporal resampling at every level, every site
    assert all(total > 0 for total in groups.values()), groups

    changed = video.at[:, -1].add(1.0)
    outputs = jax.jit(lambda x: denoise(temporal, x))
    assert float(jnp.abs(outputs(changed)[:, 0] - outputs(video)[:, 0]).max()) > 1e-4


@pytest.fixture(scope="module")
def exported_t2i(tmp_path_factory):
    t2i = TextToImage(TEXT, UNET, rngs=nnx.Rngs(5))
    directory = str(tmp_path_factory.mktemp("export") / "t2i")
    config = {"model": dict(kind="t2i", text_encoder=dataclasses.asdict(TEXT),
                            unet=dataclasses.asdict(UNET))}
    io.save_exported(directory, nnx.state(t2i, nnx.Param), config)
    return t2i, directory, config


def test_backbone_restores_into_the_spatial_subtree(exported_t2i):
    t2i, directory, _ = exported_t2i
    model = build_pretrained(parse_model_config(model_config(backbone=directory)))
    assert isinstance(model, STUNet)
    chex.assert_trees_all_equal(nnx.state(model.spatial, nnx.Param).to_pure_dict(),
                                nnx.state(t2i, nnx.Param).to_pure_dict())


def test_mismatched_backbone_is_refused(exported_t2i, tmp_path):
    t2i, _, config = exported_t2i
    model = dict(config["model"], unet=dict(config["model"]["unet"], base_channels=16))
    directory = str(tmp_path / "other")
    io.save_exported(directory, nnx.state(t2i, nnx.Param), {"model": model})
    with pytest.raises(io.CheckpointError, match="unet.base_channels: checkpoint has 16"):
        build_pretrained(parse_model_config(model_config(backbone=directory)))


@pytest.mark.parametrize("overrides, message", [
    (dict(temporl={}), "allowed"),
    (dict(temporal=dict(temporal_down_levels=(2,))), "no spatial downsampling"),
    (dict(temporal=dict(heads=2)), "allowed keys"),
    (dict(temporal=dict(text_attention_levels=(9,))), "no temporal conv blocks to follow"),
    (dict(temporal=dict(text_attention_levels=(0, 0))), "repeats a level"),
])
def test_bad_stunet_configs_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_pretrained(parse_model_config(model_config(**overrides)))


def test_temporal_text_pool_conditions_every_temporal_conv_block(stunet, cond):
    """With trained (non-zero) projections, the temporal layers' own text pool changes the output;
    at init its projection is zero, so it cannot."""
    video = jax.random.normal(jax.random.key(3), (2, 4, 16, 16, 3))
    t = jnp.array([0.3, 0.6])
    denoise = nnx.jit(lambda m, x: m.denoise(x, t, cond))
    perturbed_init = nnx.clone(stunet)
    perturbed_init.temporal_text.pool.query.value += 1.0
    np.testing.assert_array_equal(denoise(perturbed_init, video), denoise(stunet, video))

    trained = nnx.clone(stunet)
    randomise_zero_kernels(trained, seed=4)
    perturbed = nnx.clone(trained)
    perturbed.temporal_text.pool.query.value += 1.0
    assert isinstance(trained.temporal_text.pool.query, TemporalParam)
    difference = jnp.abs(denoise(perturbed, video) - denoise(trained, video)).max()
    assert float(difference) > 1e-3


def test_space_time_convs_carry_content_between_pixels_across_frames():
    """A per-pixel temporal conv mixes frames of one pixel only; with a 3x3 spatial kernel a
    change at (frame 0, pixel 5, 5) reaches the neighbouring pixels of frame 1, and nothing
    farther than one frame and one pixel away."""
    video = jax.random.normal(jax.random.key(0), (1, 4, 10, 10, 4))
    bumped = video.at[0, 0, 5, 5].add(1.0)
    moved = {}
    for spatial in (1, 3):
        block = TemporalConvBlock(4, 8, 3, spatial_kernel=spatial, rngs=nnx.Rngs(1))
        assert block.conv.kernel.shape == ((3, 4, 4) if spatial == 1 else (3, 3, 3, 4, 4))
        np.testing.assert_array_equal(block(video, jnp.ones((1, 8))), video)  # zero projection
        conv = lambda x: conv_over_time(block.conv, x, UNSHARDED)
        change = np.abs(np.asarray(conv(bumped) - conv(video))).max(-1)
        moved[spatial] = change[0, 1] > 1e-6  # frame 1: which pixels felt the bump
        assert not (change[0, 2:] > 1e-6).any()  # a 3-tap conv reaches one frame
    assert moved[1].sum() == 1 and moved[1][5, 5]
    assert moved[3][4:7, 4:7].all() and moved[3].sum() == 9


def test_a_space_time_conv_stunet_is_the_identity_at_init(cond):
    config = dataclasses.replace(TEMPORAL, temporal_conv_spatial_kernel=3)
    check_identity_at_init_for_a_static_video(STUNet(TEXT, UNET, config, rngs=nnx.Rngs(0)), cond)
    with pytest.raises(ValueError, match="temporal_conv_spatial_kernel must be odd"):
        STUNetConfig(temporal_conv_spatial_kernel=2)


def test_space_time_attention_carries_content_between_distant_pixels_across_frames():
    """Per-pixel attention over time only lets (frame 0, pixel 0, 0) reach pixel (0, 0) of the
    other frames; attention over space and time reaches every pixel of every frame."""
    video = jax.random.normal(jax.random.key(0), (1, 4, 4, 4, 8))
    bumped = video.at[0, 0, 0, 0].add(1.0)
    context, mask = jnp.ones((1, 3, 16)), jnp.ones((1, 3), bool)
    reached = {}
    for span in ("time", "space_time"):
        block = TemporalAttentionBlock(8, 2, 16, span=span, rngs=nnx.Rngs(1))
        np.testing.assert_array_equal(block(video, context, mask), video)  # zero outputs at init
        randomise_zero_kernels(block, seed=2)
        # The self-attention alone (the block's group norm spreads a bump's statistics to all).
        attend = attend_over_time if span == "time" else attend_over_space_time
        mix = lambda x: attend(block.self_attention, block.position_bias, x, UNSHARDED)
        change = np.abs(np.asarray(mix(bumped) - mix(video)))
        reached[span] = change[0, 1:].max(-1) > 1e-6  # frames 1-3: which pixels felt the bump
    assert reached["time"][:, 0, 0].all() and reached["time"].sum() == 3
    assert reached["space_time"].all()


def test_space_time_position_bias_depends_on_the_offset_in_frames_rows_and_columns():
    block = TemporalAttentionBlock(8, 2, 16, span="space_time", rngs=nnx.Rngs(1))
    tables = block.position_bias.tables
    for axis, table in enumerate(tables):
        table[...] = jax.random.normal(jax.random.key(axis), table.shape)
    bias = np.asarray(block.position_bias(jnp.arange(2), jnp.arange(3), 2, 2))  # (1, n, 8, 12)
    assert bias.shape == (1, 2, 2 * 2 * 2, 3 * 2 * 2)
    limit_t, limit_p, _ = block.position_bias.limits
    # query (t=1, y=0, x=1) -> flat 5; key (t=0, y=1, x=0) -> flat 2: offsets (-1, +1, -1)
    expected = (tables[0][limit_t - 1] + tables[1][limit_p + 1] + tables[2][limit_p - 1])
    np.testing.assert_allclose(bias[0, :, 5, 2], expected, rtol=1e-6)
    # Equal offsets (1, 1, 0), equal bias: (0, 0, 0) -> (1, 1, 0) and (0, 0, 1) -> (1, 1, 1)
    np.testing.assert_array_equal(bias[0, :, 0, 6], bias[0, :, 1, 7])
    assert not np.allclose(bias[0, :, 0, 6], bias[0, :, 0, 7])  # but not across offsets


def test_a_space_time_attention_stunet_is_the_identity_at_init(cond):
    config = dataclasses.replace(TEMPORAL, temporal_attention_span="space_time")
    model = STUNet(TEXT, UNET, config, rngs=nnx.Rngs(0))
    assert all(block.span == "space_time" for blocks in model.temporal_attention.values()
               for block in blocks)
    check_identity_at_init_for_a_static_video(model, cond)
    with pytest.raises(ValueError, match="temporal_attention_span must be one of"):
        STUNetConfig(temporal_attention_span="space")


def test_position_features_place_frames_of_a_halved_level_where_their_input_frames_were():
    full, halved = position_features(8, 4, 4, 3), position_features(4, 2, 2, 3)
    assert full.shape == (8, 4, 4, 18) and halved.shape == (4, 2, 2, 18)
    time_part = slice(0, 6)  # (sin, cos) x 3 frequencies of the time axis come first
    # Frame i of the halved level stands for input frame 2i: the same time features.
    np.testing.assert_allclose(halved[:, 0, 0, time_part], full[::2, 0, 0, time_part], atol=1e-6)
    # Every (frame, row, column) gets its own features: no two places alike.
    flat = np.asarray(full).reshape(-1, 18)
    assert len(np.unique(flat.round(5), axis=0)) == 8 * 4 * 4
    with pytest.raises(ValueError, match="1 frequency"):
        position_features(4, 2, 2, 0)


def test_space_time_position_lets_a_temporal_block_tell_places_and_frames_apart():
    """Without position a trained temporal block maps a constant video to the same output at
    every frame and pixel (it is translation-equivariant); with position it does not, yet it
    is still the identity at init."""
    video = jnp.ones((1, 4, 6, 6, 8))
    emb = jnp.ones((1, 16))
    spread = {}
    for position in (False, True):
        block = TemporalConvBlock(8, 16, 3, position=position, rngs=nnx.Rngs(1))
        np.testing.assert_array_equal(block(video, emb), video)
        randomise_zero_kernels(block, seed=2)
        out = np.asarray(block(video, emb))[0, 1:3]  # inner frames: no zero-padding effect
        spread[position] = np.abs(out - out[0, 0, 0]).max()
        weights = jax.tree.leaves(nnx.state(block, nnx.Param),
                                  is_leaf=lambda x: isinstance(x, nnx.Variable))
        assert all(isinstance(weight, TemporalParam) for weight in weights)
    assert spread[False] < 1e-5 and spread[True] > 1e-3


def test_a_space_time_position_stunet_is_the_identity_at_init(cond):
    config = dataclasses.replace(TEMPORAL, space_time_position=True)
    model = STUNet(TEXT, UNET, config, rngs=nnx.Rngs(0))
    blocks = list(model.temporal_convs.values()) + [
        block for stack in model.temporal_attention.values() for block in stack]
    assert blocks and all(block.position is not None for block in blocks)
    check_identity_at_init_for_a_static_video(model, cond)


def test_text_attention_levels_follow_each_conv_block_and_start_as_the_identity(cond):
    config = dataclasses.replace(TEMPORAL, space_time_position=True, text_attention_levels=(0, 1))
    model = STUNet(TEXT, UNET, config, rngs=nnx.Rngs(0))
    # Levels 0 and 1 hold every conv block (level 2, the coarsest, has attention blocks).
    assert set(model.temporal_text_attention) == set(model.temporal_convs) != set()
    only_level_1 = STUNet(TEXT, UNET, dataclasses.replace(config, text_attention_levels=(1,)),
                          rngs=nnx.Rngs(0))
    assert set(only_level_1.temporal_text_attention) == {
        key for key in model.temporal_convs if key.endswith(tuple(f"_1_{i}" for i in range(4)))}
    check_identity_at_init_for_a_static_video(model, cond)


def test_text_attention_reads_the_unmasked_tokens_where_it_is():
    """Trained (non-zero output weights), the block's output follows the caption but not its
    padding; with position it differs between places of a constant video, without it does not."""
    video = jnp.ones((1, 4, 6, 6, 8))
    context = jax.random.normal(jax.random.key(5), (2, 5, 32))
    mask = jnp.array([[True, True, True, False, False]])
    spread = {}
    for position in (False, True):
        block = TemporalTextAttention(8, 2, 32, position=position, rngs=nnx.Rngs(1))
        np.testing.assert_array_equal(block(video, context[:1], mask), video)
        randomise_zero_kernels(block, seed=2)
        out = np.asarray(block(video, context[:1], mask))
        other_caption = np.asarray(block(video, context[1:], mask))
        other_padding = np.asarray(block(video, context[:1].at[:, 3:].set(7.0), mask))
        assert np.abs(out - other_caption).max() > 1e-3
        np.testing.assert_allclose(other_padding, out, atol=1e-6)
        spread[position] = np.abs(out - out[0, 0, 0, 0]).max()
        weights = jax.tree.leaves(nnx.state(block, nnx.Param),
                                  is_leaf=lambda x: isinstance(x, nnx.Variable))
        assert all(isinstance(weight, TemporalParam) for weight in weights)
    assert spread[False] < 1e-5 and spread[True] > 1e-3


def test_a_gated_temporal_conv_block_multiplies_by_its_linear_half(cond):
    """The residual is linear in the gate half of the conv: doubling that half's kernel and bias
    doubles it. A gated STUNet is still the identity at init."""
    video = jax.random.normal(jax.random.key(3), (1, 4, 6, 6, 8))
    emb = jax.random.normal(jax.random.key(4), (1, 16))
    block = TemporalConvBlock(8, 16, 3, position=True, gate=True, rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(block(video, emb), video)
    randomise_zero_kernels(block, seed=2)
    residual = block(video, emb) - video
    assert block.conv.kernel.value.shape[-1] == 16
    doubled = nnx.clone(block)
    doubled.conv.kernel.value = doubled.conv.kernel.value.at[..., 8:].multiply(2.0)
    doubled.conv.bias.value = doubled.conv.bias.value.at[8:].multiply(2.0)
    assert float(jnp.abs(residual).max()) > 1e-2
    np.testing.assert_allclose(doubled(video, emb) - video, 2 * residual, rtol=1e-4, atol=1e-5)
    model = STUNet(TEXT, UNET, dataclasses.replace(TEMPORAL, temporal_conv_gate=True),
                   rngs=nnx.Rngs(0))
    assert all(block.gate for block in model.temporal_convs.values())
    check_identity_at_init_for_a_static_video(model, cond)

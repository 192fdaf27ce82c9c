"""The T2I backbone: tokenizer, text encoder, U-Net walk and shapes, guidance with the real model."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lumiere_jax import diffusion
from lumiere_jax.models.t2i import TextToImage
from lumiere_jax.models.text_encoder import TextEncoder, TextEncoderConfig
from lumiere_jax.models.unet2d import UNet2D, UNetConfig, from_patches, to_patches
from lumiere_jax.text import tokenizer

TEXT = TextEncoderConfig(width=32, num_layers=1, num_heads=2, max_length=48)


def small_unet(**overrides):
    values = dict(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(8,), num_heads=2, context_features=32)
    values.update(overrides)
    return UNetConfig(**values)


@pytest.fixture(scope="module")
def t2i():
    return TextToImage(TEXT, small_unet(), rngs=nnx.Rngs(0))


def test_tokenizer_round_trip_and_padding():
    ids = tokenizer.tokenize("a red circle, fast", 32)
    assert ids.dtype == np.int32 and ids.shape == (32,)
    assert tokenizer.detokenize(ids) == "a red circle, fast"
    length = len(tokenizer.encode_pieces("a red circle, fast"))
    assert length == 5  # a, red, circle, comma, fast: known words are one token each
    assert ids[length] == tokenizer.EOS_ID
    assert tokenizer.padding_mask(ids)[:length + 1].all()
    assert not tokenizer.padding_mask(ids)[length + 1:].any()


def test_tokenizer_spells_unknown_words_in_bytes_and_round_trips():
    text = "a purple hexagon, zig-zagging 3 times!"
    ids = tokenizer.tokenize(text, 64)
    assert tokenizer.detokenize(ids) == text
    assert tokenizer.tokenize("A RED Circle", 16).tolist() == tokenizer.tokenize("a red circle", 16).tolist()
    known = tokenizer.encode_pieces(" red")
    assert len(known) == 1 and known[0] >= tokenizer.PIECE_OFFSET
    assert all(i < tokenizer.PIECE_OFFSET for i in tokenizer.encode_pieces("hexagon"))


def test_every_shapes_caption_word_is_one_token():
    from lumiere_jax.data import shapes

    rng = np.random.default_rng(0)
    for index in range(500):
        caption = shapes.make_caption(shapes.sample_spec(rng, shapes.SPLITS[index % 3]), rng)
        ids = tokenizer.encode_pieces(caption)
        assert all(i >= tokenizer.PIECE_OFFSET for i in ids), caption
        assert tokenizer.detokenize(tokenizer.tokenize(caption, 32)) == caption


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_tokenizer_refuses_empty_or_non_text(prompt):
    with pytest.raises(tokenizer.PromptError, match="empty|string"):
        tokenizer.tokenize(prompt, 16)


def test_tokenizer_truncates_long_prompts_with_warning():
    with pytest.warns(UserWarning, match="truncated"):
        ids = tokenizer.tokenize("x" * 100, 16)
    assert tokenizer.detokenize(ids) == "x" * 15
    assert ids[-1] == tokenizer.EOS_ID


def test_text_encoder_ignores_padding_length():
    encoder = TextEncoder(TEXT, rngs=nnx.Rngs(1))
    short = jnp.asarray(tokenizer.tokenize_batch(["blue star spinning"], 24))
    long = jnp.asarray(tokenizer.tokenize_batch(["blue star spinning"], 48))
    out_short, mask_short = encoder(short)
    out_long, mask_long = encoder(long)
    real = int(mask_short.sum())
    np.testing.assert_allclose(out_short[:, :real], out_long[:, :real], atol=1e-5)
    assert int(mask_long.sum()) == real


def test_text_encoder_distinguishes_prompts():
    encoder = TextEncoder(TEXT, rngs=nnx.Rngs(1))
    out, _ = encoder(jnp.asarray(tokenizer.tokenize_batch(["red circle", "blue circle"], 24)))
    assert float(jnp.abs(out[0] - out[1]).max()) > 1e-3


@pytest.mark.parametrize("config", [
    small_unet(),
    small_unet(resolution=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(16, 8)),
    small_unet(resolution=24, channel_mult=(1, 1, 2, 2), attention_resolutions=(), out_channels=6,
               in_channels=7),
    small_unet(resolution=32, patch_size=2, in_channels=6),
])
def test_unet_output_shapes(config):
    unet = UNet2D(config, rngs=nnx.Rngs(0))
    x = jnp.zeros((3, config.resolution, config.resolution, config.in_channels))
    context = jnp.zeros((3, 5, config.context_features))
    out = jax.eval_shape(lambda: unet(x, jnp.zeros((3,)), context, jnp.ones((3, 5), bool)))
    assert out.shape == (3, config.resolution, config.resolution, config.out_channels)


def expected_sites(config):
    levels = len(config.channel_mult)
    sites = []
    for level in range(levels):
        sites += [f"down.{level}.{i}" for i in range(config.num_res_blocks)]
        if level < levels - 1:
            sites.append(f"down.{level}.downsample")
    sites += ["middle.0", "middle.1"]
    for level in reversed(range(levels)):
        sites += [f"up.{level}.{i}" for i in range(config.num_res_blocks + 1)]
        if level > 0:
            sites.append(f"up.{level}.upsample")
    return sites


def test_walk_calls_hook_at_every_site_with_the_right_resolution():
    config = small_unet(resolution=32, channel_mult=(1, 2, 2), num_res_blocks=2)
    unet = UNet2D(config, rngs=nnx.Rngs(0))
    seen = []

    def hook(site, h):
        seen.append((site, h.shape[1]))
        return h

    x = jnp.zeros((1, 32, 32, 3))
    jax.eval_shape(lambda: unet(x, jnp.zeros((1,)), jnp.zeros((1, 4, 32)), jnp.ones((1, 4), bool),
                                hook=hook))
    assert [s for s, _ in seen] == expected_sites(config)
    resolution = dict(seen)
    assert resolution["down.0.0"] == 32 and resolution["down.0.downsample"] == 16
    assert resolution["middle.0"] == 8 and resolution["up.1.upsample"] == 32


def test_patch_stem_runs_the_walk_at_the_patched_side():
    config = small_unet(resolution=32, channel_mult=(1, 2), attention_resolutions=(8,), patch_size=2)
    assert config.level_resolutions == (16, 8)
    unet = UNet2D(config, rngs=nnx.Rngs(0))
    sides = {}
    hook = lambda site, h: sides.setdefault(site, h.shape[1]) and h
    jax.eval_shape(lambda: unet(jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,)), jnp.zeros((1, 4, 32)),
                                jnp.ones((1, 4), bool), hook=hook))
    assert sides["down.0.0"] == 16 and sides["middle.0"] == 8
    assert len(unet.up[-1].attention) == 0 and len(unet.middle.attention) == 2


def test_patches_hold_neighbouring_pixels_and_round_trip():
    x = jax.random.normal(jax.random.key(2), (2, 8, 6, 3))
    cells = to_patches(x, 2)
    chex.assert_shape(cells, (2, 4, 3, 12))
    # Cell (1, 2) holds the 2x2 block at rows 2-3, columns 4-5, row-major, channels innermost.
    np.testing.assert_array_equal(cells[:, 1, 2].reshape(2, 2, 2, 3), x[:, 2:4, 4:6])
    np.testing.assert_array_equal(from_patches(cells, 2), x)
    np.testing.assert_array_equal(to_patches(x, 1), x)


@pytest.mark.parametrize("resolution, patch_size", [(12, 2), (16, 3)])
def test_patch_size_the_resolution_cannot_hold_is_refused(resolution, patch_size):
    with pytest.raises(ValueError, match="multiple of"):
        small_unet(resolution=resolution, channel_mult=(1, 2, 2), patch_size=patch_size)


def refine_pair():
    """The same patched U-Net without and with a full-resolution head: every shared weight is
    drawn identically (the head is built last)."""
    config = small_unet(resolution=16, channel_mult=(1, 2), attention_resolutions=(4,), patch_size=2)
    plain = UNet2D(config, rngs=nnx.Rngs(0))
    refined = UNet2D(dataclasses.replace(config, refine_blocks=2), rngs=nnx.Rngs(0))
    kernel = jax.random.normal(jax.random.key(1), plain.conv_out.kernel.value.shape) * 0.1
    plain.conv_out.kernel.value = kernel
    refined.conv_out.kernel.value = kernel
    return plain, refined


def refine_inputs():
    x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    return x, jnp.array([0.3, 0.8]), jax.random.normal(jax.random.key(4), (2, 4, 32)), jnp.ones((2, 4), bool)


def test_refine_head_starts_as_the_plain_patched_unet():
    plain, refined = refine_pair()
    args = refine_inputs()
    expected = plain(*args)
    assert float(jnp.abs(expected).max()) > 1e-2
    np.testing.assert_allclose(refined(*args), expected, atol=1e-6)


def test_refine_head_learns_from_the_start():
    """Its output conv starts at zero but gets a gradient, and its full-resolution input conv
    gets one as soon as that output conv has weights."""
    _, refined = refine_pair()
    args = refine_inputs()
    target = jax.random.normal(jax.random.key(6), args[0].shape)
    loss = lambda model: jnp.mean((model(*args) - target) ** 2)
    grads = nnx.grad(loss)(refined)
    assert float(jnp.abs(grads.refine.conv_out.kernel.value).max()) > 1e-4
    assert float(jnp.abs(grads.refine.from_input.kernel.value).max()) == 0.0
    refined.refine.conv_out.kernel.value = -1e-2 * grads.refine.conv_out.kernel.value / float(
        jnp.abs(grads.refine.conv_out.kernel.value).max())
    assert float(loss(refined)) < float(loss(refine_pair()[1]))
    grads = nnx.grad(loss)(refined)
    assert float(jnp.abs(grads.refine.from_input.kernel.value).max()) > 1e-6


@pytest.mark.parametrize("overrides", [dict(refine_blocks=1), dict(refine_blocks=-1, patch_size=2)])
def test_refine_head_without_a_patch_stem_is_refused(overrides):
    with pytest.raises(ValueError, match="refine_blocks must be 0, or >= 1 with a patch stem"):
        small_unet(**overrides)


def test_hook_output_is_used_by_the_walk(t2i):
    tokens = jnp.asarray(tokenizer.tokenize_batch(["red square"], TEXT.max_length))
    x = jax.random.normal(jax.random.key(0), (1, 16, 16, 3))
    # Give the zero-initialised output layer weights so the output depends on the walk.
    t2i_copy = nnx.clone(t2i)
    kernel = t2i_copy.unet.conv_out.kernel
    kernel.value = jax.random.normal(jax.random.key(1), kernel.value.shape) * 0.1
    cond = t2i_copy.encode_text(tokens)
    t = jnp.array([0.5])
    plain = t2i_copy.denoise(x, t, cond)
    same = t2i_copy.denoise(x, t, cond, hook=lambda site, h: h + 0.0)
    changed = t2i_copy.denoise(x, t, cond, hook=lambda site, h: h * 2.0 if site == "middle.0" else h)
    np.testing.assert_array_equal(plain, same)
    assert float(jnp.abs(plain - changed).max()) > 1e-4


@pytest.mark.parametrize("resolution", [10, 7, 1])
def test_indivisible_resolution_is_refused(resolution):
    with pytest.raises(ValueError, match="multiple of"):
        small_unet(resolution=resolution, channel_mult=(1, 2, 2))


def test_unet_refuses_input_it_cannot_divide(t2i):
    cond = t2i.encode_text(jnp.asarray(tokenizer.tokenize_batch(["red square"], TEXT.max_length)))
    with pytest.raises(ValueError, match="multiple of 2"):
        t2i.denoise(jnp.zeros((1, 15, 15, 3)), jnp.zeros((1,)), cond)


def test_mismatched_text_width_is_refused():
    with pytest.raises(ValueError, match="context_features"):
        TextToImage(TEXT, small_unet(context_features=64), rngs=nnx.Rngs(0))


def test_guidance_scale_one_equals_conditional_model(t2i):
    model = nnx.clone(t2i)
    kernel = model.unet.conv_out.kernel
    kernel.value = jax.random.normal(jax.random.key(2), kernel.value.shape) * 0.1
    tokens = jnp.asarray(tokenizer.tokenize_batch(["red square", "cyan star"], TEXT.max_length))
    null = jnp.asarray(tokenizer.tokenize("", TEXT.max_length, allow_empty=True))[None]
    cond, uncond = model.encode_text(tokens), model.encode_text(null)
    x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    t = jnp.array([0.3, 0.7])
    jitted = nnx.jit(lambda m, x_t, s, c: m.denoise(x_t, s, c))  # one compile per batch size
    denoise = lambda x_t, s, c: jitted(model, x_t, s, c)
    guided = diffusion.classifier_free_guidance(denoise, cond, uncond, 1.0)(x, t)
    np.testing.assert_allclose(guided, denoise(x, t, cond), atol=1e-5)
    unguided = diffusion.classifier_free_guidance(denoise, cond, uncond, 0.0)(x, t)
    uncond_batch = jax.tree.map(lambda a: jnp.repeat(a, 2, axis=0), uncond)
    np.testing.assert_allclose(unguided, denoise(x, t, uncond_batch), atol=1e-5)

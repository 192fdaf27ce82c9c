"""Temporal MultiDiffusion: per-frame means of overlapping windows, exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.diffusion.multidiffusion import temporal_multidiffusion, window_starts


def clip(frames, batch=2, side=3, seed=0):
    return jax.random.normal(jax.random.key(seed), (batch, frames, side, side, 3))


def per_frame(window_clip):
    """A denoiser that acts on each frame alone (no mixing across time)."""
    return jnp.tanh(2.0 * window_clip) - 0.5 * window_clip ** 2


def mixing(window_clip):
    """A denoiser that mixes frames: each frame minus the window's mean frame."""
    return window_clip - window_clip.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("frames,window,stride", [(16, 8, 4), (11, 4, 3), (13, 5, 5), (9, 3, 1)])
def test_a_per_frame_denoiser_gives_the_whole_clip_call(frames, window, stride):
    video = clip(frames)
    np.testing.assert_allclose(temporal_multidiffusion(per_frame, video, window, stride),
                               per_frame(video), rtol=1e-6, atol=1e-6)


def test_a_clip_as_long_as_the_window_gives_the_plain_call():
    video = clip(8)
    np.testing.assert_allclose(temporal_multidiffusion(mixing, video, 8, 3), mixing(video),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("frames,window,stride", [(16, 8, 4), (11, 4, 3), (10, 4, 4), (7, 7, 2)])
def test_every_frame_gets_exactly_the_mean_of_the_windows_that_hold_it(frames, window, stride):
    """A denoiser with a known output per window (its first frame's index, broadcast): each
    frame's result is the mean of those indices over the windows covering it, computed here
    from the window list by hand."""
    index = jnp.broadcast_to(jnp.arange(frames, dtype=jnp.float32)[None, :, None], (1, frames, 2))
    first_frame = lambda w: jnp.broadcast_to(w[:, :1], w.shape)
    got = np.asarray(temporal_multidiffusion(first_frame, index, window, stride))[0, :, 0]
    starts = window_starts(frames, window, stride)
    assert starts[0] == 0 and starts[-1] == frames - window  # the last window is anchored
    expected = [np.mean([s for s in starts if s <= f < s + window]) for f in range(frames)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_odd_lengths_and_strides_cover_every_frame():
    np.testing.assert_array_equal(window_starts(11, 4, 3), [0, 3, 6, 7])
    np.testing.assert_array_equal(window_starts(16, 8, 4), [0, 4, 8])
    np.testing.assert_array_equal(window_starts(13, 5, 5), [0, 5, 8])
    np.testing.assert_array_equal(window_starts(5, 5, 5), [0])


def test_windows_of_several_clips_are_cut_alike_and_chunking_changes_nothing():
    """A conditioned denoiser (noisy clip, low-res clip): the windows of both line up, and 2
    windows at a time give the vmap of all of them."""
    noisy, low_res = clip(12, seed=1), clip(12, seed=2)
    denoise = lambda x, c: mixing(x) * jnp.cos(c)
    whole = temporal_multidiffusion(denoise, (noisy, low_res), 6, 2)
    np.testing.assert_allclose(temporal_multidiffusion(denoise, (noisy, low_res), 6, 2, chunk=2),
                               whole, rtol=1e-6, atol=1e-6)
    # With per-frame conditioning the result differs from windows of the noisy clip alone.
    misaligned = temporal_multidiffusion(lambda x: denoise(x, low_res[:, :6]), noisy, 6, 2)
    assert not np.allclose(misaligned, whole, atol=1e-3)
    # And the mixing denoiser really differs from one whole-clip call (the windows matter).
    assert not np.allclose(whole, denoise(noisy, low_res), atol=1e-3)


def test_it_compiles_under_jit():
    video = clip(10)
    run = jax.jit(lambda x: temporal_multidiffusion(mixing, x, 4, 2))
    np.testing.assert_allclose(run(video), temporal_multidiffusion(mixing, video, 4, 2),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window,stride,message", [
    (12, 4, "longer than the clip"),
    (4, 0, "stride=0"),
    (4, 5, "stride=5"),
    (0, 1, "must be >= 1"),
])
def test_bad_windows_are_refused(window, stride, message):
    with pytest.raises(ValueError, match=message):
        temporal_multidiffusion(per_frame, clip(10), window, stride)


def test_a_denoiser_of_the_wrong_shape_and_clips_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="must return"):
        temporal_multidiffusion(lambda w: w[:, :2], clip(10), 4, 2)
    with pytest.raises(ValueError, match="same number of frames"):
        temporal_multidiffusion(lambda x, c: x, (clip(10), clip(9)), 4, 2)

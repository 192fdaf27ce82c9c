"""Caption swaps: exactly one attribute changes, and the per-example loss is the prediction's."""
import dataclasses
import types

import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.eval import caption_swap


def specs(num=40):
    return [shapes.spec_for_seed(tfds_shapes.example_seed("validation", i), "validation")
            for i in range(num)]


@pytest.mark.parametrize("attribute", caption_swap.SWAPPABLE)
def test_a_swap_changes_that_attribute_and_nothing_else(attribute):
    for spec in specs():
        if attribute == "motion" and spec.motion not in caption_swap.REVERSED_MOTION:
            continue
        other = caption_swap.swapped(spec, attribute)
        assert getattr(other, attribute) != getattr(spec, attribute)
        assert dataclasses.replace(other, **{attribute: getattr(spec, attribute)}) == spec
        assert shapes.canonical_caption(other) != shapes.canonical_caption(spec)


def test_reversing_a_motion_twice_gives_it_back_and_unreversible_motions_are_refused():
    for spec in specs():
        if spec.motion in caption_swap.REVERSED_MOTION:
            twice = caption_swap.swapped(caption_swap.swapped(spec, "motion"), "motion")
            assert twice == spec
    still = dataclasses.replace(specs(1)[0], motion="orbiting", speed="slowly")
    with pytest.raises(ValueError, match="no reverse"):
        caption_swap.swapped(still, "motion")
    with pytest.raises(ValueError, match="Cannot swap 'size'"):
        caption_swap.swapped(still, "size")


def test_per_example_losses_are_the_mse_of_the_prediction():
    """An oracle that knows the clean images recovers the noise exactly (loss 0); the same
    oracle off by a constant c in each example scores c^2: so x_t is noised with the
    schedule's alpha and sigma at t, and the loss is the prediction's mean squared error."""
    settings = DiffusionSettings(prediction="eps")
    clean = np.stack([shapes.render_frame(s, 0, 16) for s in specs(3)])
    x0 = frames_to_model_range(jnp.asarray(clean))
    offset = jnp.asarray([0.0, 0.5, 2.0])[:, None, None, None]

    def oracle(x_t, t, cond):
        alpha, sigma = settings.noise_schedule().alpha_sigma(t)
        return (x_t - alpha[:, None, None, None] * x0) / sigma[:, None, None, None] + offset

    model = types.SimpleNamespace(encode_text=lambda tokens: {"tokens": tokens},
                                  self_conditioned=False, denoise=oracle)
    pipeline = types.SimpleNamespace(
        model=model, diffusion=settings,
        tokenize=lambda captions: np.zeros((len(captions), 4), np.int32))
    for t in (0.2, 0.7):
        losses = caption_swap.per_example_losses(pipeline, clean, ["a"] * 3, t, seed=3)
        np.testing.assert_allclose(losses, [0.0, 0.25, 4.0], atol=1e-4)

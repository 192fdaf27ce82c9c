"""Does a model read a word of its caption? Its denoising loss on true shapes data with the true
caption against the same caption with one attribute changed (motion reversed, another colour,
another shape), at fixed noise levels and with the same noise. A model that ignores the word
scores the two alike."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import diffusion
from lumiere_jax.data import shapes
from lumiere_jax.diffusion.noise import gaussian_noise
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.models.t2i import X0_ESTIMATE

# Each motion's opposite; the motions without one (bouncing, orbiting, rotating, still) have
# no reversal and are left out of a motion swap.
REVERSED_MOTION = {"left": "right", "right": "left", "up": "down", "down": "up",
                   "growing": "shrinking", "shrinking": "growing"}
SWAPPABLE = ("motion", "colour", "shape")


def swapped(spec: shapes.ClipSpec, attribute: str) -> shapes.ClipSpec:
    """`spec` with one attribute changed: the motion reversed, the colour three along the
    colour list, the shape two along the shape list (never the same as before)."""
    if attribute == "motion":
        if spec.motion not in REVERSED_MOTION:
            raise ValueError(f"Motion {spec.motion!r} has no reverse; reversible motions: "
                             f"{', '.join(REVERSED_MOTION)}.")
        return dataclasses.replace(spec, motion=REVERSED_MOTION[spec.motion])
    if attribute == "colour":
        colours = list(shapes.COLOURS)
        return dataclasses.replace(
            spec, colour=colours[(colours.index(spec.colour) + 3) % len(colours)])
    if attribute == "shape":
        return dataclasses.replace(
            spec, shape=shapes.SHAPES[(shapes.SHAPES.index(spec.shape) + 2) % len(shapes.SHAPES)])
    raise ValueError(f"Cannot swap {attribute!r}; choose one of {', '.join(SWAPPABLE)}.")


def per_example_losses(pipeline, clean: np.ndarray, captions: list[str], t: float | np.ndarray,
                       seed: int = 0) -> np.ndarray:
    """Loss (in the model's prediction space) of each clean uint8 image or clip for its caption,
    one forward pass at noise level(s) `t` with noise drawn from `seed` (for clips, correlated
    across frames as the model's `frame_noise_correlation` says, as in its training)."""
    settings = pipeline.diffusion
    x0 = frames_to_model_range(jnp.asarray(clean))
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x0.shape[0],))
    eps = gaussian_noise(jax.random.key(seed), x0.shape, settings.frame_noise_correlation)
    alpha, sigma = settings.noise_schedule().alpha_sigma(t)
    x_t = diffusion.per_example(alpha, x0) * x0 + diffusion.per_example(sigma, x0) * eps
    target = diffusion.from_x0_eps(x0, eps, alpha, sigma, settings.prediction)
    out = one_step_output(pipeline, x_t, t, captions)
    return np.asarray(jnp.mean((out - target) ** 2, axis=tuple(range(1, x0.ndim))))


def one_step_output(pipeline, x_t, t, captions: list[str]):
    """The model's output (its prediction kind) for x_t at times t (B,), one caption each, in a
    single call: no earlier x0 estimate for a self-conditioned model, as at a sampler's first
    step."""
    model = pipeline.model
    cond = model.encode_text(jnp.asarray(pipeline.tokenize(captions)))
    if model.self_conditioned:
        cond = dict(cond, **{X0_ESTIMATE: jnp.zeros_like(x_t)})
    return model.denoise(x_t, t, cond)


def caption_swap_table(pipeline, specs: list[shapes.ClipSpec], attribute: str,
                       t_values=(0.3, 0.5, 0.7, 0.85), seed: int = 0) -> dict:
    """Per t: the mean loss with the true and with the swapped caption, and the fraction of
    examples whose true-caption loss is the lower. Clips for a video model, frame 0 for an
    image model."""
    if pipeline.is_video:
        clean = np.stack([shapes.render_clip(s, pipeline.resolution, pipeline.default_frames)
                          for s in specs])
    else:
        clean = np.stack([shapes.render_frame(s, 0, pipeline.resolution) for s in specs])
    true = [shapes.canonical_caption(s) for s in specs]
    other = [shapes.canonical_caption(swapped(s, attribute)) for s in specs]
    table = {}
    for t in t_values:
        with_true = per_example_losses(pipeline, clean, true, t, seed)
        with_other = per_example_losses(pipeline, clean, other, t, seed)
        table[float(t)] = {"true": float(with_true.mean()), "swapped": float(with_other.mean()),
                           "true_lower": float(np.mean(with_true < with_other))}
    return table

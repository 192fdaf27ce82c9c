"""Does a video model know where the caption's motion puts the object at each frame?

From pure noise, a denoiser's x0 estimate is the mean of the clips its caption allows. For
"moving quickly to the left" that mean has the object on the right in the first frame and on the
left in the last: the start is drawn so that the whole path stays in the frame. A model that reads
the direction word reproduces that drift in its estimate at high noise, long before it can draw
the object; a model that ignores it estimates the same blur in every frame. The probe compares
the drift of the estimate's centroid, first frame to last, along the caption's direction, with
the drift of the data's own mean clip: the ratio is 1 for a model that knows the mean, 0 for one
blind to the direction (or to the frame).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lumiere_jax import diffusion
from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.eval.caption_swap import one_step_output

# The translations and their unit direction in image coordinates (x right, y down).
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def centroids(clips, background) -> np.ndarray:
    """Per-frame centroid (x, y), in frame widths, of how far each pixel is from the background,
    beyond the frame's median distance (a blurred estimate's uniform offset from the background
    would pull every centroid to the middle).

    clips: (..., T, H, W, 3) in the model range [-1, 1]; background: (3,) in the same range
    (or broadcastable to the clips) -> (..., T, 2)."""
    clips = np.asarray(clips, np.float64)
    distance = np.abs(clips - np.asarray(background, np.float64)).mean(-1)    # (..., T, H, W)
    median = np.median(distance.reshape(*distance.shape[:-2], -1), axis=-1)
    weight = np.maximum(distance - median[..., None, None], 0.0)
    height, width = weight.shape[-2:]
    ys, xs = (np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width
    mass = weight.sum((-1, -2))
    if np.any(mass <= 0):
        raise ValueError("A frame equals the background everywhere: it has no centroid.")
    x = (weight * xs).sum((-1, -2)) / mass
    y = (weight * ys[:, None]).sum((-1, -2)) / mass
    return np.stack([x, y], axis=-1)


def background_in_model_range(spec: shapes.ClipSpec) -> np.ndarray:
    """The spec's background colour in the model range [-1, 1]."""
    return np.asarray(frames_to_model_range(np.asarray(shapes.BACKGROUND_RGB[spec.background],
                                                        np.uint8)))


def data_mean_clip(spec: shapes.ClipSpec, resolution: int, frames: int, num: int = 64,
                   seed: int = 0) -> np.ndarray:
    """The mean, in the model range, of `num` clips of `spec`'s attributes at random starts (as
    the data draws them) -> (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num):
        x, y = shapes.sample_start(rng, spec.size, spec.motion, spec.speed)
        start = dataclasses.replace(spec, x=float(x), y=float(y))
        total = total + np.asarray(frames_to_model_range(shapes.render_clip(start, resolution,
                                                                            frames)))
    return total / num


def validation_subjects(count: int) -> list[shapes.ClipSpec]:
    """The first `count` validation clips' specs: the subjects (colour, shape, size,
    background) the probe averages over."""
    return [shapes.spec_for_seed(tfds_shapes.example_seed("validation", i), "validation")
            for i in range(count)]


def drift(path: np.ndarray, motion: str) -> np.ndarray:
    """Displacement of centroid paths (..., T, 2) from first to last frame along `motion`'s
    direction, in frame widths."""
    return (path[..., -1, :] - path[..., 0, :]) @ np.asarray(DIRECTIONS[motion])


def x0_estimates(pipeline, captions: list[str], t: float, noise: jax.Array) -> np.ndarray:
    """The model's x0 estimate for noise-only inputs at time `t`, one per caption
    (noise: (len(captions), T, H, W, 3); x_t = sigma * noise)."""
    settings = pipeline.diffusion
    times = jnp.full((noise.shape[0],), t, jnp.float32)
    alpha, sigma = settings.noise_schedule().alpha_sigma(times)
    x_t = diffusion.per_example(sigma, noise) * noise
    out = one_step_output(pipeline, x_t, times, captions)
    x0, _ = diffusion.to_x0_eps(out, x_t, alpha, sigma, settings.prediction)
    return np.asarray(x0)


def trajectory_table(pipeline, subjects: list[shapes.ClipSpec],
                     t_values=(0.995, 0.99, 0.97, 0.9), noise_draws: int = 4,
                     seed: int = 0) -> dict:
    """For each t: the drift of the model's mean x0 estimate along each direction, over
    `subjects` (their colour, shape, size and background; moving quickly), against the data's,
    and their ratio (`ratio`: the mean over subjects and directions of model / data drift)."""
    if not pipeline.is_video:
        raise ValueError("The trajectory probe needs a video model; this checkpoint is an image "
                         "model.")
    if noise_draws < 1 or not subjects:
        raise ValueError(f"Need >= 1 subject and >= 1 noise draw, got {len(subjects)} subjects "
                         f"and {noise_draws} draws.")
    resolution, frames = pipeline.resolution, pipeline.default_frames
    specs = [dataclasses.replace(subject, motion=motion, speed="quickly")
             for subject in subjects for motion in DIRECTIONS]
    data_drift = np.array([drift(centroids(data_mean_clip(spec, resolution, frames, seed=seed),
                                           background_in_model_range(spec)), spec.motion)
                           for spec in specs])
    captions = [shapes.canonical_caption(spec) for spec in specs for _ in range(noise_draws)]
    noise = jax.random.normal(jax.random.key(seed), (noise_draws, frames, resolution,
                                                     resolution, 3))
    noise = jnp.tile(noise, (len(specs), 1, 1, 1, 1))  # the same draws for every caption
    table = {}
    for t in t_values:
        estimates = x0_estimates(pipeline, captions, float(t), noise)
        estimates = estimates.reshape(len(specs), noise_draws, *estimates.shape[1:]).mean(1)
        model_drift = np.array([drift(centroids(estimate, background_in_model_range(spec)),
                                      spec.motion) for estimate, spec in zip(estimates, specs)])
        by_direction = {
            motion: float(np.mean(model_drift[i::len(DIRECTIONS)] / data_drift[i::len(DIRECTIONS)]))
            for i, motion in enumerate(DIRECTIONS)}
        table[float(t)] = {"ratio": float(np.mean(model_drift / data_drift)),
                           "model_drift": float(model_drift.mean()),
                           "data_drift": float(data_drift.mean()), "by_direction": by_direction}
    return table

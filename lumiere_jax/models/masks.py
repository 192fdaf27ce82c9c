"""The <C, M> layouts of Lumiere's conditional generation (paper section 4.2), as pure functions.

A layout is a boolean `known` (T, H, W): True where the conditioning video C holds pixels the
result must keep, False where the model generates. C is the source video where known and 0 (the
model range's grey) elsewhere.

- image-to-video: the image is frame 0, known; every later frame is generated;
- inpainting: the user's video, known outside a space-time region;
- cinemagraph: the image repeated over all frames, known everywhere except a region to animate
  in frames 1..T-1 (frame 0 is the whole image).

`training_layout` draws one of these (or none: plain text-to-video) per training clip, so the
conditional STUNet learns all the applications at once.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# Order of the layouts `training_layout` draws from (its `probs`).
LAYOUTS = ("image_to_video", "inpainting", "cinemagraph", "none")


def first_frame_known(frames: int, height: int, width: int) -> jax.Array:
    """Image-to-video: (T, H, W) True on frame 0 only."""
    return jnp.broadcast_to((jnp.arange(frames) == 0)[:, None, None], (frames, height, width))


def cinemagraph_known(region: jax.Array, frames: int) -> jax.Array:
    """Cinemagraph: frame 0 known whole, later frames known outside `region`, (H, W) bool or one
    per frame (T, H, W)."""
    later = jnp.broadcast_to(~region, (frames,) + region.shape[-2:])
    return later.at[0].set(True)


def masked_video(video: jax.Array, known: jax.Array) -> jax.Array:
    """C: `video` (T, H, W, C) where `known` (T, H, W), 0 elsewhere."""
    return jnp.where(known[..., None], video, jnp.zeros((), video.dtype))


def box_region(height: int, width: int, top, bottom, left, right) -> jax.Array:
    """(H, W) True inside rows [top, bottom) and columns [left, right) (traced bounds allowed)."""
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def moving_region(clip: jax.Array, threshold: float = 0.1, margin: int = 1) -> jax.Array:
    """(H, W): the bounding box, grown by `margin` pixels, of the pixels of `clip` (T, H, W, C;
    model range) that differ from frame 0 by more than `threshold` in some frame: where a
    cinemagraph of this clip is animated. All False for a clip that does not change."""
    changed = jnp.max(jnp.abs(clip - clip[:1]), axis=(0, 3)) > threshold
    height, width = changed.shape
    rows, cols = jnp.any(changed, axis=1), jnp.any(changed, axis=0)
    top = jnp.argmax(rows) - margin
    bottom = height - jnp.argmax(rows[::-1]) + margin
    left = jnp.argmax(cols) - margin
    right = width - jnp.argmax(cols[::-1]) + margin
    return box_region(height, width, top, bottom, left, right) & jnp.any(changed)


def random_box(key: jax.Array, height: int, width: int, low: float = 0.25,
               high: float = 0.6) -> jax.Array:
    """(H, W): a box whose sides are uniform fractions in [low, high) of the frame's, placed
    uniformly inside it."""
    size_key, place_key = jax.random.split(key)
    fractions = jax.random.uniform(size_key, (2,), minval=low, maxval=high)
    box_h = jnp.maximum(1, jnp.round(fractions[0] * height)).astype(jnp.int32)
    box_w = jnp.maximum(1, jnp.round(fractions[1] * width)).astype(jnp.int32)
    corner = jax.random.uniform(place_key, (2,))
    top = jnp.floor(corner[0] * (height - box_h + 1)).astype(jnp.int32)
    left = jnp.floor(corner[1] * (width - box_w + 1)).astype(jnp.int32)
    return box_region(height, width, top, top + box_h, left, left + box_w)


def random_span(key: jax.Array, frames: int) -> jax.Array:
    """(T,) bool: every frame (half the draws), else a random run of at least 2 frames."""
    whole_key, start_key, length_key = jax.random.split(key, 3)
    length = jax.random.randint(length_key, (), min(2, frames), frames + 1)
    start = jax.random.randint(start_key, (), 0, frames - length + 1)
    steps = jnp.arange(frames)
    run = (steps >= start) & (steps < start + length)
    return run | jax.random.bernoulli(whole_key, 0.5)


def training_layout(key: jax.Array, clip: jax.Array, probs) -> tuple[jax.Array, jax.Array]:
    """(C, known) for one training clip (T, H, W, C) in the model range: a layout drawn with
    `probs` over `LAYOUTS`. Inpainting hides a random box over a random span of frames;
    a cinemagraph animates the box around what moves in `clip` and keeps frame 0 elsewhere."""
    kind_key, box_key, span_key = jax.random.split(key, 3)
    frames, height, width = clip.shape[:3]
    kind = jax.random.choice(kind_key, len(LAYOUTS), p=jnp.asarray(probs, jnp.float32))
    hidden = random_box(box_key, height, width)[None] & random_span(span_key, frames)[:, None, None]
    knowns = jnp.stack([
        first_frame_known(frames, height, width),
        ~hidden,
        cinemagraph_known(moving_region(clip), frames),
        jnp.zeros((frames, height, width), bool),
    ])
    known = knowns[kind]
    source = jnp.where(kind == LAYOUTS.index("cinemagraph"),
                       jnp.broadcast_to(clip[:1], clip.shape), clip)
    return masked_video(source, known), known

"""User inputs of the applications (images, videos, masks as uint8 arrays) checked, fitted to the
model's frame size and turned into the conditional STUNet's <C, M> (`models.masks` layouts).

A mask is white (non-zero) where the application acts: the region to inpaint, or the region of a
cinemagraph to animate. It may be one image (used for every frame) or a video of the clip's
frame count. A mask that is not purely black and white is thresholded at half intensity, with a
warning that says how many pixels were in between. An image, video or mask of another size is
resized to the model's, with a warning.

What comes out is the model's `conditions`: `known_video` (N, T, H, W, 3) uint8 and
`known_mask` (N, T, H, W, 1) uint8, 255 where known.
"""
from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
from PIL import Image

from lumiere_jax.models import masks
from lumiere_jax.models.conditional import KNOWN_MASK, KNOWN_VIDEO


def _check_uint8(array, what: str, ndims: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim not in ndims:
        raise ValueError(f"The {what} must have {' or '.join(map(str, ndims))} axes, got shape "
                         f"{array.shape}.")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"The {what} must hold uint8 pixels, got dtype {array.dtype}.")
    if 0 in array.shape:
        raise ValueError(f"The {what} is empty (shape {array.shape}).")
    return array


def _resize(frames: np.ndarray, side: int, what: str, resample) -> np.ndarray:
    """(T, h, w, C) uint8 -> (T, side, side, C), warning when it changes size."""
    if frames.shape[1:3] == (side, side):
        return frames
    warnings.warn(f"The {what} is {frames.shape[2]}x{frames.shape[1]}; resized to the model's "
                  f"{side}x{side}.", stacklevel=3)
    return np.stack([np.asarray(Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1
                                                else frame).resize((side, side), resample))
                     .reshape(side, side, frame.shape[-1]) for frame in frames])


def fit_image(image, side: int) -> np.ndarray:
    """An RGB image (H, W, 3) uint8 at the model's `side` (resized, with a warning)."""
    image = _check_uint8(image, "image", (3,))
    if image.shape[-1] != 3:
        raise ValueError(f"The image must be RGB (H, W, 3), got shape {image.shape}.")
    return _resize(image[None], side, "image", Image.BILINEAR)[0]


def fit_video(video, side: int) -> np.ndarray:
    """An RGB video (T, H, W, 3) uint8 at the model's `side` (resized, with a warning)."""
    video = _check_uint8(video, "video", (4,))
    if video.shape[-1] != 3:
        raise ValueError(f"The video must be RGB (T, H, W, 3), got shape {video.shape}.")
    return _resize(video, side, "video", Image.BILINEAR)


def fit_mask(mask, frames: int, side: int) -> np.ndarray:
    """A mask image (H, W[, C]) or video (T, H, W[, C]) -> (frames, side, side) bool, True where
    white: binarised (thresholded at 128 with a warning unless already 0/255), resized (nearest),
    an image repeated over the frames; a video must have `frames` frames."""
    mask = _check_uint8(mask, "mask", (2, 3, 4))
    if mask.ndim == 4 or (mask.ndim == 3 and mask.shape[-1] not in (1, 3)):
        video = mask if mask.ndim == 4 else mask[..., None]
    else:
        video = (mask if mask.ndim == 3 else mask[..., None])[None]
    if video.shape[-1] not in (1, 3):
        raise ValueError(f"A mask has 1 or 3 channels, got shape {mask.shape}.")
    if video.shape[0] not in (1, frames):
        raise ValueError(f"The mask video has {video.shape[0]} frames; it must have the clip's "
                         f"{frames} (or be one image, used for every frame).")
    grey = video.max(axis=-1, keepdims=True)
    between = int(np.count_nonzero((grey > 0) & (grey < 255)))
    if between:
        warnings.warn(f"The mask is not binary: {between} of {grey.size} pixels lie between black "
                      f"and white; thresholded at 128 (white = the region).", stacklevel=2)
    binary = np.where(grey >= 128, 255, 0).astype(np.uint8)
    binary = _resize(binary, side, "mask", Image.NEAREST)[..., 0] > 0
    return np.broadcast_to(binary, (frames, side, side)).copy()


def _conditions(video: np.ndarray, known: np.ndarray) -> dict:
    """uint8 C and M, one clip, with the batch axis."""
    known_video = np.asarray(masks.masked_video(jnp.asarray(video), jnp.asarray(known)))
    return {KNOWN_VIDEO: known_video[None].astype(np.uint8),
            KNOWN_MASK: (known[None, ..., None] * 255).astype(np.uint8)}


def image_to_video_conditions(image, frames: int, side: int) -> dict:
    """The image as frame 0 (known), every later frame generated."""
    image = fit_image(image, side)
    video = np.broadcast_to(image, (frames,) + image.shape)
    return _conditions(video, np.asarray(masks.first_frame_known(frames, side, side)))


def inpainting_conditions(video, mask, side: int) -> dict:
    """The video known outside the mask's white region (a mask image or a video of its frames)."""
    video = fit_video(video, side)
    region = fit_mask(mask, video.shape[0], side)
    if not region.any():
        raise ValueError("The mask marks no pixels to inpaint (it is all black).")
    if region.all():
        raise ValueError("The mask covers every pixel of every frame: nothing is known, so this "
                         "is text-to-video; use `lumiere-jax sample`.")
    return _conditions(video, ~region)


def cinemagraph_conditions(image, mask, frames: int, side: int) -> dict:
    """The image repeated; frame 0 known, later frames known outside the mask's white region."""
    image = fit_image(image, side)
    region = fit_mask(mask, frames, side)
    if not region[1:].any():
        raise ValueError("The mask marks no region to animate (it is all black).")
    video = np.broadcast_to(image, (frames,) + image.shape)
    return _conditions(video, np.asarray(masks.cinemagraph_known(jnp.asarray(region), frames)))

"""Video and image files: mp4 (ffmpeg, libx264), gif and png, as uint8 RGB arrays.

Videos are (T, H, W, 3) uint8 and images (H, W, 3) uint8. Every write goes to a temporary file
in the destination folder and is renamed into place, so a failed write never leaves a
half-written file behind.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageSequence

from lumiere_jax import checks

VIDEO_EXTENSIONS = (".mp4", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# A gif stores runs of identical frames as one longer frame; this comment records the duration of
# one frame so that reading expands the runs back to the written frame count.
_GIF_FRAME_MS_PREFIX = b"lumiere-jax frame_ms="

# imageio-ffmpeg quality on a 0-10 scale; 8 maps to libx264 crf 10 (visually lossless).
_MP4_QUALITY = 8


def _extension(path, allowed: tuple[str, ...], kind: str) -> str:
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in allowed:
        raise ValueError(f"Unsupported {kind} file extension {extension!r} in {os.fspath(path)!r}; "
                         f"allowed: {', '.join(allowed)}.")
    return extension


def _require_file(path, kind: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such {kind} file: {os.fspath(path)!r}")


def _as_uint8_rgb(array, ndim: int, layout: str) -> np.ndarray:
    """Checks an array is `layout` with 3 (or 1) channels and converts it to uint8 RGB."""
    array = np.asarray(array)
    if array.ndim != ndim or array.shape[-1] not in (1, 3):
        raise ValueError(f"Expected a {layout} array with 3 (or 1) channels, got shape {array.shape}.")
    if 0 in array.shape:
        raise ValueError(f"Expected a non-empty {layout} array, got shape {array.shape}.")
    if array.dtype == np.uint8:
        pass
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"Integer pixels must lie in [0, 255], got [{array.min()}, {array.max()}].")
        array = array.astype(np.uint8)
    else:
        raise ValueError(f"Pixels must be uint8 (or integers in [0, 255]), got dtype {array.dtype}; "
                         "scale floating-point images to [0, 255] and cast them first.")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


@contextlib.contextmanager
def _atomic_output(path, extension: str):
    """Yields a temporary path next to `path`; renames it onto `path` only if the body succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=extension)
    os.close(handle)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would make it (mkstemp makes it 0600)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def upscale_nearest(frames, factor: int) -> np.ndarray:
    """Repeats every pixel `factor` times along height and width of (..., H, W, C) arrays."""
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}.")
    frames = np.asarray(frames)
    if frames.ndim < 3:
        raise ValueError(f"Expected (..., H, W, C) pixels, got shape {frames.shape}.")
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def _write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:  # yuv420p needs even sizes
        frames = upscale_nearest(frames, 2)
        height, width = 2 * height, 2 * width
    writer = imageio_ffmpeg.write_frames(
            path, (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=_MP4_QUALITY, macro_block_size=1, output_params=["-f", "mp4"])
    writer.send(None)
    try:
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()


def _read_mp4(path: str) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    width, height = next(reader)["size"]
    frames = [np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3) for data in reader]
    if not frames:
        raise ValueError(f"The video {path!r} has no frames.")
    return np.stack(frames)


def gif_frame_durations(count: int, fps: float) -> list[int]:
    """Per-frame durations in ms for a gif at `fps`. Gif stores hundredths of a second, so
    frame k starts at k / fps rounded to 10 ms (8 fps: 120, 130, 120, ...): every frame starts
    within 5 ms of its time, and ffmpeg reads the file at its true rate, not at 8.33 fps."""
    starts = [10 * round(k * 100.0 / fps) for k in range(count + 1)]
    return [max(10, b - a) for a, b in zip(starts, starts[1:])]


def _write_gif(path: str, frames: np.ndarray, fps: float) -> None:
    frame_ms = 1000.0 / fps
    iio.imwrite(path, frames, extension=".gif", duration=gif_frame_durations(len(frames), fps),
                loop=0, comment=_GIF_FRAME_MS_PREFIX + repr(frame_ms).encode())


def _read_gif(path: str) -> np.ndarray:
    frames = []
    with Image.open(path) as gif:
        comment = gif.info.get("comment", b"")
        frame_ms = None
        if comment.startswith(_GIF_FRAME_MS_PREFIX):
            frame_ms = float(comment[len(_GIF_FRAME_MS_PREFIX):])
        for frame in ImageSequence.Iterator(gif):
            copies = max(1, round(frame.info.get("duration", 0) / frame_ms)) if frame_ms else 1
            frames.extend([np.asarray(frame.convert("RGB"))] * copies)
    return np.stack(frames)


def write_video(path, frames, fps: float = 16) -> None:
    """Writes (T, H, W, 3) uint8 frames as .mp4 (libx264, yuv420p) or .gif.

    mp4 needs even sizes: odd-sized frames are upscaled 2x (nearest) first.
    """
    extension = checks.extension("path", checks.output_file("path", path, VIDEO_EXTENSIONS),
                                 VIDEO_EXTENSIONS)
    frames = _as_uint8_rgb(frames, 4, "(T, H, W, C) video")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    write = _write_mp4 if extension == ".mp4" else _write_gif
    with _atomic_output(path, extension) as temporary:
        write(temporary, frames, fps)


def read_video(path) -> np.ndarray:
    """Reads an .mp4 or .gif file into (T, H, W, 3) uint8 RGB frames."""
    extension = _extension(path, VIDEO_EXTENSIONS, "video")
    _require_file(path, "video")
    read = _read_mp4 if extension == ".mp4" else _read_gif
    return read(os.fspath(path))


def write_image(path, image) -> None:
    """Writes an (H, W, 3) uint8 image as .png (lossless) or .jpg."""
    extension = checks.extension("path", checks.output_file("path", path, IMAGE_EXTENSIONS),
                                 IMAGE_EXTENSIONS)
    image = _as_uint8_rgb(image, 3, "(H, W, C) image")
    with _atomic_output(path, extension) as temporary:
        iio.imwrite(temporary, image, extension=extension)


def read_image(path) -> np.ndarray:
    """Reads an image file into (H, W, 3) uint8 RGB (alpha dropped, grey expanded)."""
    extension = _extension(path, IMAGE_EXTENSIONS, "image")
    _require_file(path, "image")
    return np.asarray(iio.imread(path, extension=extension, mode="RGB"), dtype=np.uint8)


def image_grid(images, columns: int | None = None, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """Tiles N images (N, H, W, 3) into one (H', W', 3) image, row by row.

    Clips (N, T, H, W, 3) tile frame by frame into a (T, H', W', 3) video. `columns` defaults to
    ceil(sqrt(N)); `pad` pixels of `pad_value` separate the tiles and frame the grid.
    """
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(f"Expected (N, H, W, C) images or (N, T, H, W, C) clips, got shape {images.shape}.")
    images = _as_uint8_rgb(images, images.ndim, "(N, [T,] H, W, C)")
    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1 or pad < 0:
        raise ValueError(f"columns must be >= 1 and pad >= 0, got columns={columns}, pad={pad}.")
    rows = math.ceil(count / columns)
    height, width = images.shape[-3:-1]
    lead = images.shape[1:-3]
    grid_size = (rows * (height + pad) + pad, columns * (width + pad) + pad)
    grid = np.full(lead + grid_size + (3,), pad_value, np.uint8)
    for position, image in enumerate(images):
        top = pad + (position // columns) * (height + pad)
        left = pad + (position % columns) * (width + pad)
        grid[..., top:top + height, left:left + width, :] = image
    return grid


def slice_row(height: int, row: int | None = None) -> int:
    """The pixel row an x-t slice takes: `row` checked against `height`, default the middle."""
    if row is None:
        return height // 2
    if not isinstance(row, (int, np.integer)) or not 0 <= row < height:
        raise ValueError(f"The x-t slice row must be an integer in [0, {height - 1}], got {row!r}.")
    return int(row)


def xt_slice(clip, row: int | None = None) -> np.ndarray:
    """One pixel row of every frame stacked over time, as in the Lumiere paper's x-t figures.

    (..., T, H, W, C) -> (..., T, W, C): row `row` (default H // 2, the middle) of each frame, so
    image rows are time and columns are x. Leading batch axes are kept.
    """
    clip = np.asarray(clip)
    if clip.ndim < 4:
        raise ValueError(f"Expected a (..., T, H, W, C) clip, got shape {clip.shape}.")
    return clip[..., slice_row(clip.shape[-3], row), :, :]

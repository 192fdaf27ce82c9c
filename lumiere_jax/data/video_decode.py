"""Decoding one video file into square frames at a target frame rate (imageio-ffmpeg).

Output frame j shows the source frame nearest to its timestamp j / fps: source frame
round(j * source_fps / fps), rounding halves up. Frames past the last source frame are not made,
so a 2 s source at 30 fps gives ceil((60 - 0.5) * fps / 30) frames at any `fps`. Each kept
frame's centre square is resized (PIL bilinear, antialiased when shrinking) to
resolution x resolution.

A variable-rate source (a GIF whose frames are held for different times, some WebM files: its
stream's average frame rate differs from the rate ffmpeg emits it at, `tbr`) is resampled by
ffmpeg's `fps` filter, which holds each source frame for its display time and picks, for each
output time j / fps, the frame that starts nearest it; its `source_frame` numbers are then
j / fps times the average rate, rounded down.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import subprocess
import tempfile
from typing import Iterator

import imageio_ffmpeg
import numpy as np
from etils import epath
from PIL import Image


class UnreadableVideo(ValueError):
    """A file that ffmpeg cannot decode (not a video, truncated, corrupt, no frame rate)."""


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
    """`frames` (N, R, R, 3) uint8 at the target fps; `source_frame[j]` is the source frame that
    output frame j shows; `source_fps` and `source_size` (width, height) as ffmpeg reported."""
    frames: np.ndarray
    source_frame: np.ndarray
    source_fps: float
    source_size: tuple[int, int]


def nearest_source_frame(output_index: int, source_fps: float, fps: float) -> int:
    """The source frame whose timestamp is nearest output frame `output_index`'s."""
    return math.floor(output_index * source_fps / fps + 0.5)


def select_nearest(frames: Iterator, source_fps: float, fps: float) -> Iterator[tuple[int, object]]:
    """(source index, frame) of every output frame, in order, from the source frames: a source
    frame is repeated when fps > source_fps and skipped when no output frame is nearest to it."""
    output_index = 0
    for source_index, frame in enumerate(frames):
        while nearest_source_frame(output_index, source_fps, fps) == source_index:
            yield source_index, frame
            output_index += 1


def centre_square(frame: np.ndarray, resolution: int) -> np.ndarray:
    """The centre square of an (H, W, 3) uint8 frame, resized to (resolution, resolution, 3)."""
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(frame[top:top + side, left:left + side])
    if side != resolution:
        square = square.resize((resolution, resolution), Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


@contextlib.contextmanager
def local_file(path) -> Iterator[str]:
    """A local path to `path`'s bytes: the path itself, or a temporary copy of a remote file
    (gs://..., read through etils.epath) that ffmpeg can open."""
    text = os.fspath(path)
    if "://" not in text:
        yield text
        return
    suffix = os.path.splitext(text)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
        copy.write(epath.Path(text).read_bytes())
        copy.flush()
        yield copy.name


def raw_frames(reader, width: int, height: int) -> Iterator[np.ndarray]:
    """The uint8 (height, width, 3) frames of an `imageio_ffmpeg.read_frames` reader (rgb24)
    whose metadata has been read."""
    for data in reader:
        yield np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def _rate(header: str, unit: str) -> float | None:
    """The first video stream's rate in `unit` ("fps" or "tbr") from ffmpeg's header, or None."""
    line = next((line for line in header.splitlines() if "Video:" in line), "")
    match = re.search(r"([0-9.]+)(k?) " + unit + r"\b", line)
    if not match:
        return None
    return float(match.group(1)) * (1000.0 if match.group(2) else 1.0)


def is_variable_rate(local: str) -> bool:
    """Whether ffmpeg emits `local`'s video at another rate (tbr) than its average (fps)."""
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", local],
                           capture_output=True, text=True, errors="replace", check=False)
    average, emitted = _rate(probe.stderr, "fps"), _rate(probe.stderr, "tbr")
    return bool(average and emitted) and abs(emitted - average) > 0.01 * average


def decode_video(path, fps: float, resolution: int) -> DecodedVideo:
    """`path`'s frames resampled to `fps` and cut to squares (see the module doc).

    Raises UnreadableVideo for anything ffmpeg cannot decode, or a video without frames or
    without a frame rate.
    """
    with local_file(path) as local:
        try:
            variable = is_variable_rate(local)
            resample = ["-vf", f"fps={float(fps)!r}"] if variable else None
            reader = imageio_ffmpeg.read_frames(local, pix_fmt="rgb24", output_params=resample)
            try:
                meta = next(reader)
                source_fps = float(meta.get("fps") or 0.0)
                width, height = meta["size"]
                if not source_fps > 0:
                    raise UnreadableVideo(f"ffmpeg reports no frame rate for {os.fspath(path)!r}")
                frames = raw_frames(reader, width, height)
                if variable:  # already at `fps`: every frame is kept
                    picked = [(math.floor(index * source_fps / fps + 1e-9),
                               centre_square(frame, resolution))
                              for index, frame in enumerate(frames)]
                else:
                    picked = [(index, centre_square(frame, resolution)) for index, frame in
                              select_nearest(frames, source_fps, fps)]
            finally:
                reader.close()
        except UnreadableVideo:
            raise
        except (OSError, RuntimeError, ValueError, KeyError, StopIteration) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            last = lines[-1] if lines else type(error).__name__  # ffmpeg's own error line
            raise UnreadableVideo(f"ffmpeg cannot decode it: {last}") from error
    if not picked:
        raise UnreadableVideo("no frames could be decoded")
    return DecodedVideo(frames=np.stack([frame for _, frame in picked]),
                        source_frame=np.asarray([index for index, _ in picked], np.int64),
                        source_fps=source_fps, source_size=(int(width), int(height)))

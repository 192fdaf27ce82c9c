"""The decode stage of a video-folder build: one part file per source video, written once.

Each captioned video is decoded (`video_decode.decode_video`) into `<key>.npz` (its frames at
the target fps and resolution, with their source frame indices and fps), or, when ffmpeg cannot
read it, into `<key>.unreadable.json` (why). A part is written to a temporary name and renamed,
so it exists only when complete: it is the file's done-marker. An interrupted build resumes by
decoding only the files without a part; processes share the work by `shard_of(path, count)`,
each decoding a disjoint subset of the files into the same folder.

Parts depend only on the video folder, the resolution and the fps, so builds that differ in
clip length, stride, captions or validation fraction reuse them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import uuid

import numpy as np
from etils import epath
from tqdm.auto import tqdm

from lumiere_jax.data.captions import Skip
from lumiere_jax.data.video_decode import UnreadableVideo, decode_video

PARTS_FOLDER = "video_folder_parts"
_FRAMES_SUFFIX, _UNREADABLE_SUFFIX = ".npz", ".unreadable.json"


def stable_hash(text: str, salt: str) -> int:
    """A 64-bit hash of `text` that is the same in every process and Python run."""
    return int(hashlib.sha1(f"{salt}:{text}".encode()).hexdigest()[:16], 16)


def shard_of(path: str, process_count: int) -> int:
    """The process (of `process_count`) that decodes the file at relative path `path`."""
    return stable_hash(path, "shard") % process_count


def normalized_dir(path) -> str:
    """A folder path as builds name it: absolute for local folders, unchanged for URLs."""
    text = os.fspath(path)
    return text.rstrip("/") if "://" in text else os.path.abspath(text)


def parts_dir(data_dir, video_dir, resolution: int, fps: float) -> epath.Path:
    """Where the parts of `video_dir` decoded at `resolution` and `fps` live under `data_dir`."""
    folder = hashlib.sha1(normalized_dir(video_dir).encode()).hexdigest()[:10]
    name = f"r{resolution}_fps{fps:g}_{folder}".replace(".", "p")
    return epath.Path(data_dir) / PARTS_FOLDER / name


def _key(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:20]


def _write_atomically(target: epath.Path, data: bytes) -> None:
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    temporary.write_bytes(data)
    temporary.rename(target)


def _write_part(folder: epath.Path, path: str, decoded) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, frames=decoded.frames, source_frame=decoded.source_frame,
             source_fps=np.float64(decoded.source_fps),
             source_size=np.asarray(decoded.source_size, np.int64), path=np.str_(path))
    _write_atomically(folder / (_key(path) + _FRAMES_SUFFIX), buffer.getvalue())


def _write_unreadable(folder: epath.Path, path: str, detail: str) -> None:
    text = json.dumps(Skip(path, detail).to_json())
    _write_atomically(folder / (_key(path) + _UNREADABLE_SUFFIX), text.encode())


@dataclasses.dataclass
class DecodeSummary:
    """What one process's decode stage did with its share of the files."""
    process_index: int
    process_count: int
    files: int = 0
    decoded: int = 0
    already_done: int = 0
    unreadable: int = 0

    def line(self) -> str:
        return (f"process {self.process_index} of {self.process_count}: {self.files} files, "
                f"{self.decoded} decoded now, {self.already_done} done before, "
                f"{self.unreadable} unreadable")


def decode_parts(video_dir, paths: list[str], folder: epath.Path, resolution: int, fps: float,
                 process_index: int = 0, process_count: int = 1,
                 progress: bool = True) -> DecodeSummary:
    """Decodes this process's share of `paths` (relative to `video_dir`) that has no part yet.

    A file ffmpeg cannot read gets an unreadable marker, never an error; anything else (a full
    disk, a failed copy from remote storage) stops the stage, and the next call resumes.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must lie in [0, process_count={process_count}), got "
                         f"{process_index}.")
    folder.mkdir(parents=True, exist_ok=True)
    present = {entry.name for entry in folder.iterdir()}
    share = [p for p in paths if shard_of(p, process_count) == process_index]
    summary = DecodeSummary(process_index, process_count, files=len(share))
    video_dir = epath.Path(video_dir)
    for path in tqdm(share, desc="decoding videos", unit="file", disable=not progress):
        key = _key(path)
        if key + _FRAMES_SUFFIX in present or key + _UNREADABLE_SUFFIX in present:
            summary.already_done += 1
            continue
        try:
            decoded = decode_video(video_dir / path, fps, resolution)
        except UnreadableVideo as error:
            _write_unreadable(folder, path, str(error))
            summary.unreadable += 1
            continue
        _write_part(folder, path, decoded)
        summary.decoded += 1
    return summary


def part_status(folder: epath.Path, path: str, present: set[str]) -> str:
    """'frames', 'unreadable' or 'missing': the state of `path`'s part among the names `present`
    in `folder` (one listing, so remote folders are not asked once per file)."""
    key = _key(path)
    if key + _FRAMES_SUFFIX in present:
        return "frames"
    return "unreadable" if key + _UNREADABLE_SUFFIX in present else "missing"


def read_unreadable(folder: epath.Path, path: str) -> Skip:
    """The skip that `path`'s unreadable marker records."""
    record = json.loads((folder / (_key(path) + _UNREADABLE_SUFFIX)).read_text())
    return Skip(record["path"], record["detail"])


def load_part(folder: epath.Path, path: str, arrays: tuple[str, ...] | None = None) -> dict:
    """`path`'s decoded part as numpy arrays (only `arrays` of them, when given)."""
    with (folder / (_key(path) + _FRAMES_SUFFIX)).open("rb") as handle:
        with np.load(handle) as part:
            return {name: part[name] for name in (arrays or part.files)}

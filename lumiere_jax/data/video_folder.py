"""TFDS builder for a folder of video files with a caption table: clips as uint8 ArrayRecords.

A build has two stages:
1. decode (`video_parts`): every captioned video is decoded once at the target fps and
   resolution into a part file; resumable (files with a part are not decoded again) and
   shardable (`decode_share(..., process_index=k, process_count=n)` on n processes decodes
   disjoint subsets into the same parts folder);
2. combine (`prepare_video_folder_dataset`): decodes whatever has no part yet, cuts clips of
   `num_frames` frames every `clip_stride` output frames from each part and writes the TFDS
   dataset (train, and validation when `validation_fraction` > 0: the files whose path hashes
   below it), with `build_report.json` next to its files.

Files that cannot be used are skipped and listed by reason in the report (see
`SKIP_REASONS`); only a build with no clip at all is an error. Record order is the sorted file
paths, then clip order, so sharded, resumed and one-go builds give the same records.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from lumiere_jax import checks
from lumiere_jax.data import captions as caption_table
from lumiere_jax.data import video_parts
from lumiere_jax.data.captions import Skip
from lumiere_jax.data.tfds_build import DatasetBuildError, prepare_builder

SKIP_REASONS = ("missing_file", "no_caption", "duplicate_row", "bad_row", "unreadable",
                "too_short")
REPORT_NAME = "build_report.json"
_VALIDATION_SALT = "validation"


@dataclasses.dataclass(eq=False)
class VideoFolderConfig(tfds.core.BuilderConfig):
    """Which folder and caption table, and how clips are cut from them."""

    video_dir: str = ""
    captions: str = ""
    resolution: int = 32
    num_frames: int = 16
    fps: float = 8.0
    clip_stride: int = 16
    validation_fraction: float = 0.0


def _check_settings(resolution, num_frames, fps, clip_stride, validation_fraction) -> dict:
    """The settings as numbers of the right kind, or an error that names the bad one."""
    checked = {name: checks.number(name, value, 1, None, integer=True) for name, value in {
            "resolution": resolution, "num_frames": num_frames, "clip_stride": clip_stride}.items()}
    checked["fps"] = checks.settings(fps=fps)["fps"]
    checked["validation_fraction"] = checks.number("validation_fraction", validation_fraction,
                                                   0.0, 1.0, what="a fraction of the files")
    if checked["validation_fraction"] == 1.0:
        raise checks.InputError("validation_fraction must lie in [0, 1): at 1 no file is left "
                                "for training.")
    return checked


def _check_inputs(video_dir: str, captions: str) -> None:
    if not video_dir or not epath.Path(video_dir).is_dir():
        raise ValueError(f"video_dir {video_dir!r} is not a folder; give the folder that holds "
                         f"the video files.")
    if not captions or not epath.Path(captions).is_file():
        raise ValueError(f"captions {captions!r} is not a file; give a caption table "
                         f"({' or '.join(caption_table.TABLE_EXTENSIONS)}).")
    caption_table.check_table_extension(captions)


def _file_digest(path: str) -> str:
    digest = hashlib.sha1()
    with epath.Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_builder_config(video_dir, captions, resolution: int = 32, num_frames: int = 16,
                        fps: float = 8.0, clip_stride: int | None = None,
                        validation_fraction: float = 0.0) -> VideoFolderConfig:
    """A config named after its settings and a digest of the folder path and the caption
    table's contents (e.g. `r32_f16_fps8_s16_val0_1a2b3c4d5e`), so builds never collide.
    `clip_stride` defaults to `num_frames` (back-to-back clips)."""
    clip_stride = num_frames if clip_stride is None else clip_stride
    settings = _check_settings(resolution, num_frames, fps, clip_stride, validation_fraction)
    video_dir, captions = os.fspath(video_dir), os.fspath(captions)
    _check_inputs(video_dir, captions)
    video_dir = video_parts.normalized_dir(video_dir)
    digest = hashlib.sha1(f"{video_dir}\n{_file_digest(captions)}".encode()).hexdigest()[:10]
    size, frames, stride = settings["resolution"], settings["num_frames"], settings["clip_stride"]
    fps_text = f"{settings['fps']:g}"
    name = (f"r{size}_f{frames}_fps{fps_text}_s{stride}_val{settings['validation_fraction']:g}"
            .replace(".", "p") + f"_{digest}")
    return VideoFolderConfig(
            name=name,
            description=(f"{size}x{size} clips of {frames} frames at {fps_text} fps, one every "
                         f"{stride} frames, from {video_dir} captioned by {captions}."),
            video_dir=video_dir, captions=captions, **settings)


def list_files(video_dir) -> list[str]:
    """Every file under `video_dir` (recursively, hidden ones left out) as sorted
    '/'-separated paths relative to it."""
    root = epath.Path(video_dir)
    found = []
    for folder, _, names in root.walk():
        relative = epath.Path(folder).relative_to(root).as_posix()
        found += [name if relative == "." else f"{relative}/{name}" for name in names
                  if not name.startswith(".")]
    return sorted(found)


def find_captioned_files(config: VideoFolderConfig) -> caption_table.CaptionMatch:
    """The folder's files paired with their captions, and the skipped rows and files."""
    rows, bad_rows = caption_table.read_caption_table(config.captions)
    match = caption_table.match_captions(rows, list_files(config.video_dir))
    match.skipped["bad_row"] = bad_rows
    return match


def parts_dir_of(config: VideoFolderConfig, data_dir) -> epath.Path:
    return video_parts.parts_dir(data_dir, config.video_dir, config.resolution, config.fps)


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    """One source file of a split: its path, caption and how many clips it gives."""
    path: str
    caption: str
    num_clips: int


@dataclasses.dataclass
class ClipPlan:
    """The files of each split and everything skipped, by reason."""
    splits: dict[str, list[PlannedFile]]
    skipped: dict[str, list[Skip]]

    def clip_counts(self) -> dict[str, int]:
        return {split: sum(f.num_clips for f in files) for split, files in self.splits.items()}

    def report(self, config: VideoFolderConfig) -> dict:
        """The build report: settings, clips and files per split, skips by reason."""
        settings = {name: getattr(config, name) for name in (
                "video_dir", "captions", "resolution", "num_frames", "fps", "clip_stride",
                "validation_fraction")}
        return {
                "config": config.name,
                "settings": settings,
                "clips": self.clip_counts(),
                "files": {split: len(files) for split, files in self.splits.items()},
                "skipped_counts": {reason: len(self.skipped[reason]) for reason in SKIP_REASONS},
                "skipped": {reason: [s.to_json() for s in self.skipped[reason]]
                            for reason in SKIP_REASONS},
        }


def split_of(path: str, validation_fraction: float) -> str:
    """'validation' for the files whose path hashes below the fraction, else 'train'."""
    unit = video_parts.stable_hash(path, _VALIDATION_SALT) / 2**64
    return "validation" if unit < validation_fraction else "train"


def plan_clips(config: VideoFolderConfig, match: caption_table.CaptionMatch,
               parts: epath.Path) -> ClipPlan:
    """Which clips the dataset holds, from the decoded parts of the captioned files."""
    present = {entry.name for entry in parts.iterdir()}
    skipped = {reason: list(match.skipped.get(reason, [])) for reason in SKIP_REASONS}
    names = ("train", "validation") if config.validation_fraction > 0 else ("train",)
    splits = {name: [] for name in names}
    for path, caption in match.captions.items():
        status = video_parts.part_status(parts, path, present)
        if status == "missing":
            raise DatasetBuildError(f"{path!r} has not been decoded yet: run the decode stage "
                                    f"on every process (or once without process_count) first.")
        if status == "unreadable":
            skipped["unreadable"].append(video_parts.read_unreadable(parts, path))
            continue
        length = len(video_parts.load_part(parts, path, ("source_frame",))["source_frame"])
        if length < config.num_frames:
            skipped["too_short"].append(Skip(path, (
                    f"{length} frames at {config.fps:g} fps; a clip needs {config.num_frames}")))
            continue
        num_clips = (length - config.num_frames) // config.clip_stride + 1
        splits[split_of(path, config.validation_fraction)].append(
                PlannedFile(path, caption, num_clips))
    return ClipPlan(splits=splits, skipped=skipped)


class VideoFolder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Captioned clips cut from a folder of videos (see the module doc)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None  # nothing is downloaded (see tfds_shapes.ShapesVideos)

    def __init__(self, *, config: VideoFolderConfig | None = None, plan: ClipPlan | None = None,
                 parts: epath.Path | None = None, **kwargs):
        if not isinstance(config, VideoFolderConfig):
            raise ValueError(f"VideoFolder needs config=make_builder_config(...), got {config!r}.")
        self._plan, self._parts = plan, parts
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        shape = (config.num_frames, config.resolution, config.resolution, 3)
        return self.dataset_info_from_configs(
                description="Captioned clips from a folder of video files.",
                features=tfds.features.FeaturesDict({
                        "frames": tfds.features.Tensor(shape=shape, dtype=np.uint8,
                                                       encoding=tfds.features.Encoding.BYTES),
                        "caption": tfds.features.Text(),
                        "source_path": tfds.features.Text(),
                        "clip_index": tfds.features.Scalar(dtype=np.int64),
                        "start_frame": tfds.features.Scalar(dtype=np.int64),
                        "start_time": tfds.features.Scalar(dtype=np.float32),
                        "source_fps": tfds.features.Scalar(dtype=np.float32),
                }),
                disable_shuffling=True,  # record order is file order; readers shuffle with grain
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the videos are local or read in place
        if self._plan is None:
            raise DatasetBuildError("Build a video-folder dataset with "
                                    "prepare_video_folder_dataset(...).")
        # data_dir is TFDS's temporary folder here, renamed with the dataset when complete.
        report = json.dumps(self._plan.report(self.builder_config), indent=1)
        (epath.Path(self.data_dir) / REPORT_NAME).write_text(report + "\n")
        return {split: self._generate_examples(files)
                for split, files in self._plan.splits.items() if files}

    def _generate_examples(self, files: list[PlannedFile]):
        config = self.builder_config
        for planned in files:
            part = video_parts.load_part(self._parts, planned.path)
            for clip in range(planned.num_clips):
                start = clip * config.clip_stride
                source_start = int(part["source_frame"][start])
                yield f"{planned.path}#{clip}", {
                        "frames": part["frames"][start:start + config.num_frames],
                        "caption": planned.caption,
                        "source_path": planned.path,
                        "clip_index": clip,
                        "start_frame": source_start,
                        "start_time": source_start / float(part["source_fps"]),
                        "source_fps": float(part["source_fps"]),
                }


def decode_share(data_dir, video_dir, captions, resolution: int = 32, fps: float = 8.0,
                 process_index: int = 0, process_count: int = 1,
                 progress: bool = True) -> video_parts.DecodeSummary:
    """The decode stage for process `process_index` of `process_count` (see the module doc)."""
    config = make_builder_config(video_dir, captions, resolution, fps=fps)
    match = find_captioned_files(config)
    return video_parts.decode_parts(config.video_dir, list(match.captions),
                                    parts_dir_of(config, data_dir), resolution, fps,
                                    process_index, process_count, progress)


def _first_skips(plan: ClipPlan, per_reason: int = 3) -> str:
    shown = [f"{s.path or '-'} ({reason}: {s.detail})" for reason in SKIP_REASONS
             for s in plan.skipped[reason][:per_reason]]
    return "; ".join(shown) or "none"


def prepare_video_folder_dataset(data_dir, video_dir, captions, resolution: int = 32,
                                 num_frames: int = 16, fps: float = 8.0,
                                 clip_stride: int | None = None, validation_fraction: float = 0.0,
                                 progress: bool = True) -> VideoFolder:
    """Builds the dataset under `data_dir` unless it is already there; returns its builder.

    Decodes the files that have no part yet (all of them on a first build), then writes the
    dataset. Raises DatasetBuildError when no file gives a clip, or the write fails; the decoded
    parts are kept either way, so the next call only writes.
    """
    config = make_builder_config(video_dir, captions, resolution, num_frames, fps, clip_stride,
                                 validation_fraction)
    data_dir = os.fspath(data_dir)
    reader = VideoFolder(config=config, data_dir=data_dir, file_format="array_record")
    if reader.is_prepared():
        return reader
    match = find_captioned_files(config)
    parts = parts_dir_of(config, data_dir)
    video_parts.decode_parts(config.video_dir, list(match.captions), parts, resolution, fps,
                             progress=progress)
    plan = plan_clips(config, match, parts)
    if not plan.splits["train"]:
        summary = report_summary(plan.report(config))
        raise DatasetBuildError(f"No training clip could be made from {config.video_dir!r} "
                                f"with {config.captions!r} ({summary}); "
                                f"first skips: {_first_skips(plan)}.")
    return prepare_builder(
            lambda: VideoFolder(config=config, plan=plan, parts=parts, data_dir=data_dir,
                                file_format="array_record"),
            data_dir, f"the video-folder dataset {config.name!r}",
            after_failure=f"The dataset was not written; the decoded videos under {parts} are "
                          f"kept, so the next call only writes it.")


def read_build_report(builder: VideoFolder) -> dict:
    """The build report written with a prepared dataset."""
    return json.loads((epath.Path(builder.data_dir) / REPORT_NAME).read_text())


def report_summary(report: dict) -> str:
    """One line: clips per split and skipped files per reason."""
    clips = ", ".join(f"{count} {split}" for split, count in report["clips"].items())
    skipped = ", ".join(f"{count} {reason}" for reason, count in report["skipped_counts"].items()
                        if count)
    return f"clips: {clips}; skipped: {skipped or 'none'}"

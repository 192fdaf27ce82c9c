"""The UCF101 zero-shot protocol (Lumiere's Table 1, after Make-A-Video): a text-to-video model
samples clips for prompts made from the 101 UCF101 class names, class-balanced (10,000 clips in
all by default), and their first 16 frames are compared with real UCF101 clips: FVD with I3D
features, IS with the C3D UCF101 classifier.

    python -m launch.ucf101_zero_shot --ucf-dir DATA/UCF-101 --checkpoint DIR \\
        --i3d-weights i3d.npz --c3d-weights c3d.npz [--num-clips 10000 | --clips-per-class N] \\
        [--real-per-class 100] [--prompts FILE] [--batch 16] [--steps 50] [--json scores.json]

--ucf-dir holds one folder per class with its .avi videos (`UCF-101/<ClassName>/*.avi`, as the
archive unpacks; the folder above it is accepted too). Prompts: the class name split into
lower-case words ("ApplyEyeMakeup" -> "apply eye makeup"); --prompts FILE overrides some or all,
one `ClassName: prompt` a line. The weight files' layout is in docs/metrics.md. Everything is
streamed batch by batch: only features and class probabilities are kept.

`run_protocol` takes the sampler and both extractors as functions, so other models and networks
plug in (the tests pass tiny random ones).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
from typing import Callable, Iterable, Iterator

import imageio_ffmpeg
import numpy as np
from tqdm import tqdm

from lumiere_jax.data.video_decode import raw_frames
from lumiere_jax.eval.frechet import frechet_distance, inception_score

CLIP_FRAMES = 16
UCF101_CLASSES = 101
PROTOCOL_CLIPS = 10_000
VIDEO_EXTENSION = ".avi"
IS_SPLITS = 10

Sampler = Callable[[list, int], np.ndarray]          # (prompts, seed) -> uint8 clips
ClipFunction = Callable[[np.ndarray], np.ndarray]     # uint8 clips -> (N, D) array

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """The UCF101 folder, the prompt file or a video does not fit the protocol."""


# ----------------------------------------------------------------------------- prompts


def class_prompt(class_name: str) -> str:
    """A CamelCase class name as lower-case words: "ApplyEyeMakeup" -> "apply eye makeup"."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", class_name)
    if not words:
        raise ProtocolError(f"Cannot make a prompt from the class name {class_name!r}.")
    return " ".join(word.lower() for word in words)


def read_prompt_file(path: str, class_names) -> dict[str, str]:
    """{class: prompt} from a file of `ClassName: prompt` lines (blank and # lines skipped)."""
    overrides = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, separator, prompt = line.partition(":")
            name, prompt = name.strip(), prompt.strip()
            if not separator or not prompt:
                raise ProtocolError(f"{path}:{number}: expected `ClassName: prompt`, got "
                                    f"{line!r}.")
            if name not in class_names:
                raise ProtocolError(f"{path}:{number}: {name!r} is not a class of the UCF101 "
                                    f"folder.")
            overrides[name] = prompt
    return overrides


def class_prompts(class_names, prompt_file: str | None = None) -> dict[str, str]:
    """{class: prompt} for every class, from its name unless the prompt file gives one."""
    prompts = {name: class_prompt(name) for name in class_names}
    if prompt_file:
        prompts.update(read_prompt_file(prompt_file, prompts))
    return prompts


def balanced_counts(class_names, total: int) -> dict[str, int]:
    """`total` clips spread over the classes as evenly as possible (the first classes in order
    get one more when it does not divide)."""
    if total < len(class_names):
        raise ProtocolError(f"{total} clips cannot cover {len(class_names)} classes.")
    base, extra = divmod(int(total), len(class_names))
    return {name: base + (index < extra) for index, name in enumerate(class_names)}


# ----------------------------------------------------------------------------- real videos


def find_videos(ucf_dir: str) -> dict[str, list[str]]:
    """{class name: sorted .avi paths} of a `UCF-101/<ClassName>/*.avi` folder (or its
    parent); refuses a folder of any other layout."""
    if not os.path.isdir(ucf_dir):
        raise ProtocolError(f"No UCF101 folder at {ucf_dir!r}.")
    nested = os.path.join(ucf_dir, "UCF-101")
    root = nested if os.path.isdir(nested) else ucf_dir
    videos = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isdir(folder):
            videos[name] = sorted(os.path.join(folder, file) for file in os.listdir(folder)
                                  if file.lower().endswith(VIDEO_EXTENSION))
    if not videos:
        raise ProtocolError(f"{root!r} has no class folders; expected UCF-101/<ClassName>/"
                            f"*{VIDEO_EXTENSION}.")
    empty = [name for name, paths in videos.items() if not paths]
    if empty:
        raise ProtocolError(f"Class folder(s) without {VIDEO_EXTENSION} videos in {root!r}: "
                            f"{', '.join(empty[:5])}.")
    if len(videos) != UCF101_CLASSES:
        log.warning("%s has %d classes, UCF101 has %d: the figures are not the protocol's.",
                    root, len(videos), UCF101_CLASSES)
    return videos


def read_first_frames(path: str, frames: int = CLIP_FRAMES) -> np.ndarray:
    """The first `frames` frames of a video file, uint8 (frames, H, W, 3)."""
    reader = imageio_ffmpeg.read_frames(path)
    try:
        meta = next(reader)
        width, height = meta["size"]
        clip = list(itertools.islice(raw_frames(reader, width, height), frames))
    except (OSError, RuntimeError, StopIteration) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ProtocolError(f"Cannot decode {path!r}: {reason}") from error
    finally:
        reader.close()
    if len(clip) < frames:
        raise ProtocolError(f"{path!r} has {len(clip)} frames; the protocol reads {frames}.")
    return np.stack(clip)


def _batches_of_equal_shape(clips: Iterable[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    """Stacks consecutive clips into batches of at most `batch`, a new one at a size change."""
    pending = []
    for clip in clips:
        if pending and (len(pending) == batch or clip.shape != pending[0].shape):
            yield np.stack(pending)
            pending = []
        pending.append(clip)
    if pending:
        yield np.stack(pending)


# ----------------------------------------------------------------------------- the protocol


def _measure(batches: Iterable[np.ndarray], extract: ClipFunction, classify: ClipFunction,
             total: int, what: str):
    """(features, probabilities) of every clip of `batches`, as two stacked arrays."""
    features, probabilities = [], []
    with tqdm(total=total, desc=what, unit="clip") as bar:
        for clips in batches:
            clips = clips[:, :CLIP_FRAMES]
            features.append(extract(clips))
            probabilities.append(classify(clips))
            bar.update(len(clips))
    return np.concatenate(features), np.concatenate(probabilities)


def _generated_batches(sample: Sampler, prompts: list[str], batch: int, seed: int):
    for start in range(0, len(prompts), batch):
        clips = np.asarray(sample(prompts[start:start + batch], seed + start))
        if clips.ndim != 5 or clips.shape[1] < CLIP_FRAMES or len(clips) != len(
                prompts[start:start + batch]):
            raise ProtocolError(f"The sampler must return one uint8 clip (T >= {CLIP_FRAMES}, "
                                f"H, W, 3) per prompt; got shape {clips.shape} for "
                                f"{len(prompts[start:start + batch])} prompts.")
        yield clips


def run_protocol(ucf_dir: str, sample: Sampler, extract: ClipFunction, classify: ClipFunction,
                 *, clips_per_class: int | None = None, num_clips: int = PROTOCOL_CLIPS,
                 real_per_class: int | None = None, prompt_file: str | None = None,
                 batch: int = 16, seed: int = 0, is_splits: int = IS_SPLITS) -> dict:
    """FVD (`extract`: clips -> features) of generated against real clips and IS (`classify`:
    clips -> class probabilities) of the generated ones (and, as a check, of the real ones),
    over the first 16 frames. `sample(prompts, seed)` makes one clip per prompt; the prompts
    repeat each class's prompt `clips_per_class` times (or `num_clips` spread evenly).
    `real_per_class` videos of each class are read (default: as many as are generated)."""
    videos = find_videos(ucf_dir)
    names = list(videos)
    prompts = class_prompts(names, prompt_file)
    counts = ({name: int(clips_per_class) for name in names} if clips_per_class
              else balanced_counts(names, num_clips))
    generated_prompts = [prompts[name] for name in names for _ in range(counts[name])]
    real_paths = {name: paths[:real_per_class or counts[name]] for name, paths in videos.items()}
    all_real = [path for paths in real_paths.values() for path in paths]
    real = _measure(_batches_of_equal_shape((read_first_frames(p) for p in all_real), batch),
                    extract, classify, len(all_real), "real clips")
    fake = _measure(_generated_batches(sample, generated_prompts, batch, seed), extract,
                    classify, len(generated_prompts), "generated clips")
    is_mean, is_std = inception_score(fake[1], splits=min(is_splits, len(generated_prompts)))
    real_is, _ = inception_score(real[1], splits=min(is_splits, len(all_real)))
    return {"fvd": frechet_distance(fake[0], real[0]), "is": is_mean, "is_std": is_std,
            "is_real": real_is, "frames": CLIP_FRAMES, "classes": len(names),
            "num_generated": len(generated_prompts), "num_real": len(all_real),
            "prompts": prompts, "generated_per_class": counts,
            "real_per_class": {name: len(paths) for name, paths in real_paths.items()}}


# ----------------------------------------------------------------------------- command line


def model_sampler(checkpoint: str | None, *, steps: int | None, guidance: float | None,
                  frames: int | None) -> Sampler:
    """(prompts, seed) -> clips of a text-to-video checkpoint (default: the shipped STUNet)."""
    from lumiere_jax.pipeline import LumierePipeline  # only the command line needs a model

    pipeline = LumierePipeline.from_checkpoint(checkpoint, default="stunet")
    if not pipeline.is_video:
        raise ProtocolError(f"{checkpoint!r} holds a text-to-image model; the protocol needs a "
                            f"text-to-video one.")
    frames = frames or pipeline.default_frames
    if frames < CLIP_FRAMES:
        raise ProtocolError(f"The protocol reads {CLIP_FRAMES} frames; the model makes {frames} "
                            f"(set --frames).")
    return lambda prompts, seed: pipeline.sample(prompts, seed=seed, steps=steps,
                                                 guidance=guidance, frames=frames)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ucf-dir", required=True, help="UCF-101/<ClassName>/*.avi folder.")
    parser.add_argument("--checkpoint", default=None, help="Text-to-video model (default: the "
                        "shipped STUNet).")
    parser.add_argument("--i3d-weights", required=True, help="I3D .npz (FVD features).")
    parser.add_argument("--c3d-weights", required=True, help="C3D UCF101 .npz (IS).")
    counts = parser.add_mutually_exclusive_group()
    counts.add_argument("--num-clips", type=int, default=PROTOCOL_CLIPS,
                        help="Generated clips in all, spread evenly over the classes.")
    counts.add_argument("--clips-per-class", type=int, default=None)
    parser.add_argument("--real-per-class", type=int, default=None,
                        help="Real videos read per class (default: as many as generated).")
    parser.add_argument("--prompts", default=None, help="File of `ClassName: prompt` lines.")
    parser.add_argument("--i3d-output", choices=("features", "logits"), default="features",
                        help="FVD features: the 1024-d pool (default) or the 400 logits.")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--frames", type=int, default=None, help="Frames the model makes "
                        "(default: its own; the first 16 are scored).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--is-splits", type=int, default=IS_SPLITS)
    parser.add_argument("--json", default=None, help="Also write the scores here.")
    return parser


def main(argv=None) -> int:
    from lumiere_jax.eval import video_extractors  # networks load only when run

    args = build_parser().parse_args(argv)
    for name in ("num_clips", "clips_per_class", "real_per_class", "batch", "is_splits"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
    try:
        find_videos(args.ucf_dir)  # a wrong folder fails before any network loads
        classify = video_extractors.c3d_classifier(video_extractors.load_c3d(args.c3d_weights),
                                                   args.batch)
        extract = video_extractors.i3d_extractor(video_extractors.load_i3d(args.i3d_weights),
                                                 args.batch, args.i3d_output)
        sample = model_sampler(args.checkpoint, steps=args.steps, guidance=args.guidance,
                               frames=args.frames)
        scores = run_protocol(args.ucf_dir, sample, extract, classify,
                              clips_per_class=args.clips_per_class, num_clips=args.num_clips,
                              real_per_class=args.real_per_class, prompt_file=args.prompts,
                              batch=args.batch, seed=args.seed, is_splits=args.is_splits)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"ucf101_zero_shot: error: {error}") from error
    from lumiere_jax.cli import report_scores  # prints the JSON, and writes --json
    report_scores(scores, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

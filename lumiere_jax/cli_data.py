"""`lumiere-jax build-video-dataset`: a TFDS dataset of captioned clips from a folder of videos."""
from __future__ import annotations

import argparse

from lumiere_jax.data import video_folder
from lumiere_jax.train.setup import default_data_dir

def add_commands(commands) -> None:
    """Adds the data commands to the `lumiere-jax` subparsers."""
    build = commands.add_parser(
        "build-video-dataset", help="Build a training dataset of captioned clips from a folder "
                                    "of videos (docs/data.md).",
        description="Decodes every captioned video, resamples it to --fps, cuts clips of "
                    "--frames frames every --stride frames, centre-crops them to --resolution "
                    "px squares and writes a TFDS (ArrayRecord) dataset with build_report.json, "
                    "which lists every skipped file and why. Interrupted builds resume. With "
                    "--process-count N, run it on N processes (--process-index 0..N-1) to "
                    "decode, then once without them to write the dataset.")
    build.add_argument("--video-dir", required=True, help="Folder of video files (or gs://...).")
    build.add_argument("--captions", required=True,
                       help="Caption table: .csv (path/video or WebVid videoid, plus "
                            "caption/text/name) or .jsonl with the same keys.")
    build.add_argument("--resolution", type=int, default=32, help="Square frame side in px.")
    build.add_argument("--frames", type=int, default=16, help="Frames per clip.")
    build.add_argument("--fps", type=float, default=8.0, help="Frame rate the videos are "
                                                              "resampled to.")
    build.add_argument("--stride", type=int, default=None,
                       help="Frames between clip starts (default: --frames, back to back).")
    build.add_argument("--validation-fraction", type=float, default=0.0,
                       help="Fraction of files (by hash of their path) in the validation split.")
    build.add_argument("--data-dir", default=None,
                       help="Where datasets live (default: $LUMIERE_DATA_DIR or "
                            "~/.cache/lumiere_jax/datasets).")
    build.add_argument("--process-index", type=int, default=0,
                       help="This process's index with --process-count (decode stage only).")
    build.add_argument("--process-count", type=int, default=1,
                       help="Processes sharing the decode stage (1: decode, then write).")


def run_build_video_dataset(args: argparse.Namespace) -> None:
    """Runs one process's decode stage, or the whole build, and prints what it did."""
    if not 0 <= args.process_index < args.process_count:
        raise ValueError(f"--process-index must lie in [0, --process-count={args.process_count}), "
                         f"got {args.process_index}.")
    data_dir = args.data_dir or default_data_dir()
    if args.process_count > 1:
        summary = video_folder.decode_share(
            data_dir, args.video_dir, args.captions, args.resolution, args.fps,
            args.process_index, args.process_count)
        print(f"Decoded the share of {summary.line()}. When every process is done, run the "
              f"same command once without --process-index/--process-count to write the dataset.")
        return
    builder = video_folder.prepare_video_folder_dataset(
        data_dir, args.video_dir, args.captions, args.resolution, args.frames, args.fps,
        args.stride, args.validation_fraction)
    report = video_folder.read_build_report(builder)
    print(f"Dataset {builder.builder_config.name} in {builder.data_dir}: "
          f"{video_folder.report_summary(report)}.")
    print(f"Every skipped file and why: {builder.data_dir}/{video_folder.REPORT_NAME}")


COMMANDS = {"build-video-dataset": run_build_video_dataset}

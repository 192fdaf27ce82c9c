"""The applications' `lumiere-jax` commands: i2v, inpaint, cinemagraph (the conditional STUNet),
stylize (SDEdit), and what `sample` shares with them: the style flags and the summary line."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lumiere_jax.applications import edit
from lumiere_jax.data import video_io
from lumiere_jax.pipeline import LumierePipeline

CONDITIONAL = "the shipped conditional STUNet"


def summary(path: str, samples: np.ndarray, seconds: float) -> str:
    """The line a command ends with: its output, what it holds (clips (N, T, H, W, 3) or images
    (N, H, W, 3)), the model's resolution and the seconds it took."""
    samples = np.asarray(samples)
    count, (height, width) = samples.shape[0], samples.shape[-3:-1]
    what = (f"{count} clip{'s' * (count != 1)} of {samples.shape[1]} frames" if samples.ndim == 5
            else f"{count} image{'s' * (count != 1)}")
    return f"Wrote {path}: {what}, {width}x{height} px, in {seconds:.1f} s."


def add_style_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style-checkpoint", default=None,
                        help="A T2I export fine-tuned on a style (configs/t2i_style_shapes.py) "
                             "whose U-Net weights are blended into the video model's spatial "
                             "ones: W = A * W_style + (1 - A) * W.")
    parser.add_argument("--style-alpha", type=float, default=None,
                        help="A in [0, 1] (default 0.75 with --style-checkpoint).")


def apply_style(pipeline: LumierePipeline, args) -> LumierePipeline:
    """The pipeline with the style flags applied (unchanged without --style-checkpoint)."""
    if args.style_checkpoint is None:
        return pipeline
    alpha = 0.75 if args.style_alpha is None else args.style_alpha
    return pipeline.with_style(args.style_checkpoint, alpha)


def read_media(path: str, what: str, video: bool | None) -> np.ndarray:
    """An image (video=False), a video (True) or either by extension (None), with clear errors
    for a missing, unsupported or unreadable file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such {what} file: {path!r}")
    is_video = path.lower().endswith(video_io.VIDEO_EXTENSIONS) if video is None else video
    try:
        return video_io.read_video(path) if is_video else video_io.read_image(path)
    except ValueError:
        raise
    except Exception as error:  # decoders raise many types; say which file and why
        raise ValueError(f"Could not read the {what} {path!r}: {type(error).__name__}: "
                         f"{error}") from error


def _add_common(parser: argparse.ArgumentParser, add_sampling_flags, shipped: str) -> None:
    """--prompt, --out, --fps, --scale, the sampling flags (default checkpoint: `shipped`) and
    the style flags."""
    parser.add_argument("--prompt", required=True, help="What the clip shows.")
    parser.add_argument("--out", default=f"{parser.prog.split()[-1]}.mp4",
                        help="Output video (.mp4 or .gif; default <command>.mp4).")
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument("--scale", type=int, default=4,
                        help="Nearest-neighbour upscaling of the written video, for viewing.")
    add_sampling_flags(parser, video=True, shipped=shipped)
    add_style_flags(parser)


def add_commands(commands, add_sampling_flags) -> None:
    """Registers the application commands on the `lumiere-jax` subparsers."""
    i2v = commands.add_parser("i2v", help="Image-to-video: a clip that starts at the image.")
    i2v.add_argument("--image", required=True, help="First frame (.png or .jpg).")
    _add_common(i2v, add_sampling_flags, CONDITIONAL)
    inpaint = commands.add_parser("inpaint", help="Regenerate the mask's white region of a video.")
    inpaint.add_argument("--video", required=True, help="Input clip (.mp4 or .gif).")
    inpaint.add_argument("--mask", required=True,
                         help="White = the region to regenerate: an image (every frame) or a "
                              "video of the clip's frames.")
    _add_common(inpaint, add_sampling_flags, CONDITIONAL)
    cinema = commands.add_parser("cinemagraph",
                                 help="Animate only the mask's white region of an image.")
    cinema.add_argument("--image", required=True, help="The still image (.png or .jpg).")
    cinema.add_argument("--mask", required=True,
                        help="White = the region to animate (an image, or a video of the frames).")
    _add_common(cinema, add_sampling_flags, CONDITIONAL)
    stylize = commands.add_parser("stylize", help="SDEdit: noise a video to --strength and "
                                                  "denoise it with the (stylized) video model.")
    stylize.add_argument("--video", required=True, help="Input clip (.mp4 or .gif).")
    stylize.add_argument("--strength", type=float, required=True,
                         help="Noise level S in [0, 1]: 0 keeps the video, 1 ignores it.")
    _add_common(stylize, add_sampling_flags, "the shipped STUNet")


def _load(args, default: str) -> LumierePipeline:
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint, default=default)
    if default == "conditional":
        edit.check_conditional(pipeline)
    else:
        edit.check_text_to_video(pipeline)
    return apply_style(pipeline, args)


def _settings(args) -> dict:
    return dict(seed=args.seed, steps=args.steps, guidance=args.guidance, sampler=args.sampler,
                per_frame_below=args.per_frame_below, progress=True)


def run(args) -> None:
    """Runs one application command (its flags checked already: `cli_checks.check_args`)."""
    frames = dict(frames=args.frames) if args.frames else {}
    if args.command == "i2v":
        image = read_media(args.image, "image", video=False)
        pipeline = _load(args, "conditional")
        make = lambda: edit.image_to_video(pipeline, image, args.prompt, **frames,
                                           **_settings(args))
    elif args.command == "inpaint":
        video = read_media(args.video, "video", video=True)
        mask = read_media(args.mask, "mask", video=None)
        pipeline = _load(args, "conditional")
        make = lambda: edit.inpaint(pipeline, video, mask, args.prompt, **_settings(args))
    elif args.command == "cinemagraph":
        image = read_media(args.image, "image", video=False)
        mask = read_media(args.mask, "mask", video=None)
        pipeline = _load(args, "conditional")
        make = lambda: edit.cinemagraph(pipeline, image, mask, args.prompt, **frames,
                                        **_settings(args))
    else:
        video = read_media(args.video, "video", video=True)
        pipeline = _load(args, "stunet")
        make = lambda: edit.stylize_video(pipeline, video, args.prompt, args.strength,
                                          **_settings(args))
    start = time.perf_counter()
    clip = make()
    video_io.write_video(args.out, video_io.upscale_nearest(clip, args.scale), fps=args.fps)
    print(summary(args.out, clip[None], time.perf_counter() - start))


COMMANDS = {name: run for name in ("i2v", "inpaint", "cinemagraph", "stylize")}

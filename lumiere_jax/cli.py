"""The `lumiere-jax` command: sampling and evaluation with shipped or trained models."""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

from lumiere_jax import cli_data
from lumiere_jax.checkpoints.exported import CheckpointError
from lumiere_jax.cli_checks import check_args
from lumiere_jax.cli_applications import COMMANDS as APPLICATION_COMMANDS
from lumiere_jax.cli_applications import add_commands, add_style_flags, apply_style, summary
from lumiere_jax.data import video_io
from lumiere_jax.data.tfds_build import DatasetBuildError
from lumiere_jax.eval.per_frame_baseline import PerFrameT2I
from lumiere_jax.eval.ssr_eval import evaluate_sr_fidelity, evaluate_ssr
from lumiere_jax.eval.t2i_eval import evaluate_t2i
from lumiere_jax.eval.video_eval import evaluate_video
from lumiere_jax.pipeline import CascadePipeline, LumierePipeline, low_res_side, upscale
from lumiere_jax.text.tokenizer import PromptError

# command -> (needs a video model, the command to use for the other kind of model)
MODEL_KIND = {
    "sample-image": (False, "sample"),
    "sample": (True, "sample-image"),
    "evaluate-t2i": (False, "evaluate-video"),
    "evaluate-video": (True, "evaluate-t2i"),
}


EXAMPLES = {
    "sample": 'lumiere-jax sample --prompt "a large red circle moving quickly to the left on a '
              'black background" --xt-slice xt.png',
    "sample-image": 'lumiere-jax sample-image --prompt "a large red circle on a black '
                    'background" --num 4',
    "upscale": "lumiere-jax upscale --video low.mp4 --prompt \"a red circle moving left\"",
    "i2v": 'lumiere-jax i2v --image first.png --prompt "a red circle moving to the left"',
    "inpaint": 'lumiere-jax inpaint --video in.mp4 --mask region.png --prompt "a blue square '
               'moving up"',
    "cinemagraph": 'lumiere-jax cinemagraph --image still.png --mask region.png --prompt "a red '
                   'circle rotating"',
    "stylize": 'lumiere-jax stylize --video in.mp4 --strength 0.6 --prompt "a red circle moving '
               'left" --style-checkpoint lumiere_jax/weights/t2i_outlined_shapes',
    "evaluate-t2i": "lumiere-jax evaluate-t2i --num 256 --json t2i.json",
    "evaluate-video": "lumiere-jax evaluate-video --num 128 --batch 16 --json video.json",
    "evaluate-ssr": "lumiere-jax evaluate-ssr --num 32 --batch 16",
    "evaluate-sr": "lumiere-jax evaluate-sr --num 128 --batch 64",
    "info": "lumiere-jax info",
    "build-video-dataset": "lumiere-jax build-video-dataset --video-dir videos/ --captions "
                           "captions.csv --resolution 32 --frames 16 --fps 8",
}


def _add_sampling_flags(parser: argparse.ArgumentParser, video: bool = False,
                        shipped: str | None = None) -> None:
    shipped = shipped or ("the shipped STUNet" if video else "the shipped T2I model")
    parser.add_argument("--checkpoint", default=None,
                        help=f"Exported checkpoint dir or training workdir (default: {shipped}).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="Denoising steps (default: config).")
    parser.add_argument("--guidance", type=float, default=None,
                        help="Classifier-free guidance scale (default: config; 1 = no guidance).")
    parser.add_argument("--sampler", choices=("ddim", "ancestral"), default=None)
    if video:
        parser.add_argument("--frames", type=int, default=None,
                            help="Clip length (default: the model's training length).")
        parser.add_argument("--per-frame-below", type=float, default=None,
                            help="Noise level t in [0, 1] below which the steps skip the temporal "
                                 "layers and the frozen 2D model denoises each frame alone "
                                 "(default: config; 0 = never).")


def _add_window_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, default=None,
                        help="SSR temporal window in frames (default: its training length).")
    parser.add_argument("--stride", type=int, default=None,
                        help="Frames between window starts (default: half a window).")
    parser.add_argument("--noise-aug", type=float, default=None,
                        help="Noise-augmentation level of the SSR's low-res input, in [0, 1] "
                             "(default: its config's).")
    parser.add_argument("--enlarged-start", type=float, default=None,
                        help="Noise level t in [0, 1] at which the SSR starts, from its low-res "
                             "input enlarged bilinearly (SDEdit; default: its config's; 1 = "
                             "from pure noise).")
    parser.add_argument("--window-chunk", type=int, default=0,
                        help="Windows denoised at a time: 0 = all in one vmap (fastest), k > 0 "
                             "= k at a time (peak memory of k windows, for long clips).")


def _add_grid_flags(parser: argparse.ArgumentParser, num: int, what: str) -> None:
    parser.add_argument("--prompt", action="append", required=True,
                        help="Text prompt; repeat the flag for several prompts (one grid row each).")
    parser.add_argument("--num", type=int, default=num,
                        help=f"Samples per prompt (grid columns of one {what}).")
    parser.add_argument("--scale", type=int, default=4, help="Nearest-neighbour upscaling for viewing.")


def _add_evaluation_flags(parser: argparse.ArgumentParser, num: int, batch: int) -> None:
    parser.add_argument("--num", type=int, default=num, help="Number of split captions to sample.")
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--split", default="validation", choices=("validation", "heldout", "train"),
                        help="Whose captions: validation, heldout (unseen attribute pairs), or "
                             "train (e.g. to check that a run fit a small training set).")
    parser.add_argument("--json", default=None, help="Also write the scores to this JSON file.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumiere-jax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    image = commands.add_parser("sample-image", help="Sample images from the text-to-image model.")
    _add_grid_flags(image, num=4, what="image")
    image.add_argument("--out", default="samples.png", help="Output image (.png; default "
                       "samples.png).")
    _add_sampling_flags(image)

    video = commands.add_parser(
        "sample", help="Sample clips from the video (STUNet) model, each in one pass.",
        description="Samples clips and writes them as one grid video: a row per prompt, --num "
                    "clips per row (a single clip when there is one prompt and --num 1).")
    _add_grid_flags(video, num=1, what="video")
    video.add_argument("--out", default="sample.mp4",
                       help="Output video (.mp4 or .gif; default sample.mp4).")
    video.add_argument("--fps", type=float, default=16.0, help="Frames per second of the video.")
    video.add_argument("--xt-slice", default=None,
                       help="Also write the x-t slice (.png): one pixel row of every frame stacked "
                            "over time, in the same grid layout.")
    video.add_argument("--xt-row", type=int, default=None,
                       help="Pixel row of the x-t slice, in model pixels (default: the middle).")
    _add_sampling_flags(video, video=True)
    video.add_argument("--ssr", nargs="?", const="shipped", default=None, metavar="CHECKPOINT",
                       help="Lift the clips to full resolution with the SSR model (default: the "
                            "shipped one) over temporal windows (MultiDiffusion).")
    video.add_argument("--ssr-steps", type=int, default=None,
                       help="Denoising steps of the SSR stage (default: its config).")
    _add_window_flags(video)
    add_style_flags(video)
    add_commands(commands, _add_sampling_flags)

    upscale_parser = commands.add_parser(
        "upscale", help="Lift a low-resolution clip with the SSR model alone (MultiDiffusion "
                        "over temporal windows).")
    upscale_parser.add_argument("--video", required=True, help="Input clip (.mp4 or .gif) at the "
                                "SSR's low resolution.")
    upscale_parser.add_argument("--out", default="upscaled.mp4",
                                help="Output video (.mp4 or .gif; default upscaled.mp4).")
    upscale_parser.add_argument("--prompt", default="",
                                help="Caption of the clip (default: none, the null prompt).")
    upscale_parser.add_argument("--checkpoint", default=None,
                                help="Exported SSR checkpoint or workdir (default: the shipped SSR).")
    upscale_parser.add_argument("--seed", type=int, default=0)
    upscale_parser.add_argument("--steps", type=int, default=None,
                                help="Denoising steps (default: config).")
    upscale_parser.add_argument("--fps", type=float, default=16.0)
    _add_window_flags(upscale_parser)

    evaluate = commands.add_parser(
        "evaluate-t2i", help="Score a T2I model with the shapes evaluator on split captions.")
    _add_evaluation_flags(evaluate, num=256, batch=64)
    _add_sampling_flags(evaluate)

    evaluate_video = commands.add_parser(
        "evaluate-video", help="Score a video model with the shapes evaluator on split captions.")
    _add_evaluation_flags(evaluate_video, num=128, batch=16)
    _add_sampling_flags(evaluate_video, video=True)
    evaluate_video.add_argument(
        "--per-frame-t2i", action="store_true",
        help="Score the per-frame baseline instead: --checkpoint is a text-to-image model "
             "(default: the shipped T2I) and each frame of a clip is sampled on its own (same "
             "prompt, independent noise; --frames, default 16).")

    evaluate_ssr_parser = commands.add_parser(
        "evaluate-ssr", help="Score an SSR model on ground-truth clips shrunk to its input size: "
                             "seams at window boundaries, PSNR, evaluator accuracies.")
    _add_evaluation_flags(evaluate_ssr_parser, num=32, batch=8)
    evaluate_ssr_parser.add_argument("--checkpoint", default=None,
                                     help="Exported SSR checkpoint or workdir (default: shipped).")
    evaluate_ssr_parser.add_argument("--seed", type=int, default=0)
    evaluate_ssr_parser.add_argument("--steps", type=int, default=None)
    evaluate_ssr_parser.add_argument("--frames", type=int, default=16,
                                     help="Clip length (a multiple of --window).")
    _add_window_flags(evaluate_ssr_parser)

    evaluate_sr_parser = commands.add_parser(
        "evaluate-sr", help="Score a 2D super-resolution (SR) model on ground-truth frames "
                            "shrunk to its input size: PSNR against bilinear, evaluator "
                            "accuracies.")
    _add_evaluation_flags(evaluate_sr_parser, num=128, batch=64)
    evaluate_sr_parser.add_argument("--checkpoint", default=None,
                                    help="Exported SR checkpoint or workdir (default: shipped).")
    evaluate_sr_parser.add_argument("--seed", type=int, default=0)
    evaluate_sr_parser.add_argument("--steps", type=int, default=None,
                                    help="Denoising steps (default: config).")
    commands.add_parser("info", help="The shipped models, the devices JAX sees and the "
                                     "versions of the libraries.")
    cli_data.add_commands(commands)
    for name, command in commands.choices.items():
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.epilog = "example:\n  " + EXAMPLES[name]
    return parser


def _load_pipeline(args):
    """The checkpoint's pipeline, refused if its kind (image/video) does not suit the command."""
    video, other_command = MODEL_KIND[args.command]
    pipeline = LumierePipeline.from_checkpoint(args.checkpoint, default="stunet" if video else "t2i")
    if pipeline.is_video != video:
        kind = "a video (STUNet)" if pipeline.is_video else "a text-to-image"
        raise CheckpointError(f"The checkpoint holds {kind} model; use `lumiere-jax {other_command}` "
                              "for it.")
    if low_res_side(pipeline) is not None:
        raise CheckpointError("The checkpoint holds a video super-resolution (SSR) model; use "
                              "`lumiere-jax upscale --checkpoint ...` or `lumiere-jax sample "
                              "--ssr ...` for it.")
    if pipeline.is_video and pipeline.model.conditioning_shapes(1, 1):
        raise CheckpointError("The checkpoint holds the conditional STUNet; use `lumiere-jax "
                              "i2v`, `inpaint` or `cinemagraph` for it.")
    return pipeline


def _load_ssr(checkpoint: str | None) -> LumierePipeline:
    """The SSR pipeline (default: the shipped one), refused if the checkpoint holds another kind."""
    path = None if checkpoint in (None, "shipped") else checkpoint
    pipeline = LumierePipeline.from_checkpoint(path, default="ssr")
    if low_res_side(pipeline) is None:
        raise CheckpointError(f"{checkpoint!r} does not hold a video super-resolution (SSR) "
                              f"model.")
    return pipeline


def _load_sr(checkpoint: str | None) -> LumierePipeline:
    """The 2D SR pipeline (default: the shipped one), refused if the checkpoint holds another
    kind."""
    pipeline = LumierePipeline.from_checkpoint(checkpoint, default="sr")
    if pipeline.is_video or "low_res" not in pipeline.model.conditioning_shapes(1):
        raise CheckpointError(f"{checkpoint!r} does not hold a 2D super-resolution (SR) model; "
                              f"`lumiere-jax evaluate-ssr` scores video SSR models.")
    return pipeline


def _sample_kwargs(args) -> dict:
    kwargs = dict(steps=args.steps, guidance=args.guidance, sampler=args.sampler)
    if getattr(args, "frames", None) is not None:
        kwargs["frames"] = args.frames
    if getattr(args, "per_frame_below", None) is not None:
        kwargs["per_frame_below"] = args.per_frame_below
    return kwargs


def _sample_prompts(args, pipeline):
    """`--num` samples of every `--prompt`, prompt-major (the order of the grid)."""
    prompts = [p for p in args.prompt for _ in range(args.num)]
    return pipeline.sample(prompts, seed=args.seed, progress=True, **_sample_kwargs(args))


def _viewing_grid(samples, args):
    """Upscaled samples tiled with a row per prompt (images stay images, clips stay clips); one
    sample is written as it is, without the grid's frame, so it can be fed back in."""
    samples = video_io.upscale_nearest(samples, args.scale)
    return samples[0] if len(samples) == 1 else video_io.image_grid(samples, columns=args.num)


def run_sample_image(args) -> None:
    pipeline = _load_pipeline(args)
    start = time.perf_counter()
    images = _sample_prompts(args, pipeline)
    video_io.write_image(args.out, _viewing_grid(images, args))
    print(summary(args.out, images, time.perf_counter() - start))


def run_sample(args) -> None:
    pipeline = apply_style(_load_pipeline(args), args)
    cascade = None
    if args.ssr:
        cascade = CascadePipeline(pipeline, _load_ssr(args.ssr))
    row = video_io.slice_row(cascade.resolution if cascade else pipeline.resolution, args.xt_row)
    start = time.perf_counter()
    clips = _sample_prompts(args, pipeline)
    if cascade:
        prompts = [p for p in args.prompt for _ in range(args.num)]
        clips = cascade.upscale(prompts, clips, seed=args.seed, steps=args.ssr_steps,
                                window=args.window, stride=args.stride, noise_aug=args.noise_aug,
                                window_chunk=args.window_chunk, progress=True,
                                enlarged_start=args.enlarged_start)
    video_io.write_video(args.out, _viewing_grid(clips, args), fps=args.fps)
    if args.xt_slice:
        video_io.write_image(args.xt_slice, _viewing_grid(video_io.xt_slice(clips, row), args))
        print(f"Wrote the x-t slice of pixel row {row} to {args.xt_slice}.")
    print(summary(args.out, clips, time.perf_counter() - start))


def run_upscale(args) -> None:
    low_res = video_io.read_video(args.video)
    ssr = _load_ssr(args.checkpoint)
    start = time.perf_counter()
    clip = upscale(ssr, [args.prompt], low_res[None], seed=args.seed, steps=args.steps,
                   window=args.window, stride=args.stride, noise_aug=args.noise_aug,
                   window_chunk=args.window_chunk, progress=True,
                   enlarged_start=args.enlarged_start)[0]
    video_io.write_video(args.out, clip, fps=args.fps)
    print(summary(args.out, clip[None], time.perf_counter() - start))


def report_scores(scores: dict, json_path: str | None) -> None:
    """Prints the scores as JSON (NaN as null) and optionally writes them to a file."""
    clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in scores.items()}
    text = json.dumps(clean, indent=2, sort_keys=True)
    print(text)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            f.write(text + "\n")


def _run_evaluation(args, evaluate) -> None:
    pipeline = _load_pipeline(args)
    scores = evaluate(pipeline, num=args.num, batch=args.batch, split=args.split, seed=args.seed,
                      **_sample_kwargs(args))
    report_scores(scores, args.json)


def run_evaluate_t2i(args) -> None:
    _run_evaluation(args, evaluate_t2i)


def run_evaluate_video(args) -> None:
    if not args.per_frame_t2i:
        _run_evaluation(args, evaluate_video)
        return
    t2i = LumierePipeline.from_checkpoint(args.checkpoint, default="t2i")
    if t2i.is_video or t2i.model.conditioning_shapes(1):
        raise CheckpointError("--per-frame-t2i needs a text-to-image checkpoint (e.g. "
                              "lumiere_jax/weights/t2i_shapes), not a video or conditional model.")
    scores = evaluate_video(PerFrameT2I(t2i), num=args.num, batch=args.batch, split=args.split,
                            seed=args.seed, **_sample_kwargs(args))
    report_scores(scores, args.json)


def run_evaluate_ssr(args) -> None:
    ssr = _load_ssr(args.checkpoint)
    window = args.window or ssr.default_frames
    scores = evaluate_ssr(ssr, low_res_side(ssr), num=args.num, batch=args.batch,
                          split=args.split, seed=args.seed, frames=args.frames, window=window,
                          stride=args.stride or window // 2, steps=args.steps,
                          noise_aug=args.noise_aug, window_chunk=args.window_chunk,
                          enlarged_start=args.enlarged_start)
    report_scores(scores, args.json)


def run_evaluate_sr(args) -> None:
    sr = _load_sr(args.checkpoint)
    low_res = sr.model.conditioning_shapes(1)["low_res"][-2]
    scores = evaluate_sr_fidelity(sr, low_res, num=args.num, batch=args.batch, steps=args.steps,
                                  split=args.split, seed=args.seed)
    report_scores(dict(scores, split=args.split, num=args.num), args.json)


def run_info(args) -> None:
    """Prints the shipped models (name, kind, folder), the devices JAX sees and the versions."""
    del args
    import importlib.metadata as metadata  # only this command needs it

    import jax

    from lumiere_jax.pipeline import SHIPPED, SHIPPED_NAMES
    print("Shipped models (LumierePipeline.from_pretrained(name)):")
    for name, key in SHIPPED_NAMES.items():
        path = SHIPPED[key]
        state = "" if os.path.isdir(path) else "  (missing)"
        print(f"  {name:<11} {key:<12} {path}{state}")
    devices = jax.devices()
    print(f"Devices ({jax.default_backend()}, {len(devices)}): "
          + ", ".join(sorted({d.device_kind for d in devices})))
    packages = ("lumiere-jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
                "numpy")
    found = []
    for package in packages:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    print(f"Python {sys.version.split()[0]}; " + ", ".join(found))


COMMANDS = {"sample-image": run_sample_image, "info": run_info, "sample": run_sample, "upscale": run_upscale,
            "evaluate-ssr": run_evaluate_ssr, "evaluate-sr": run_evaluate_sr,
            "evaluate-t2i": run_evaluate_t2i, "evaluate-video": run_evaluate_video,
            **APPLICATION_COMMANDS, **cli_data.COMMANDS}


def configure_logging() -> None:
    """The package's log level from LUMIERE_JAX_LOG (default warning; `debug` also shows what
    the libraries reported behind a one-line error)."""
    name = os.environ.get("LUMIERE_JAX_LOG", "warning").upper()
    level = logging.getLevelName(name)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lumiere_jax").setLevel(level if isinstance(level, int) else logging.WARNING)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        check_args(args)
        COMMANDS[args.command](args)
    except (CheckpointError, PromptError, ValueError, FileNotFoundError,
            DatasetBuildError) as error:
        print(f"lumiere-jax {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

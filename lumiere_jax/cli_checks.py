"""Every `lumiere-jax` command's flags checked at once, before any model is loaded or compiled:
numbers against `checks.LIMITS`, output paths (known extension, an existing writable folder),
input files, checkpoint folders and prompts. What a check needs from the model itself (e.g. a
clip length the temporal downsampling divides) is checked when the model's config is known,
still before anything compiles."""
from __future__ import annotations

import os

from lumiere_jax import checks
from lumiere_jax.checkpoints.exported import CheckpointError
from lumiere_jax.data.video_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from lumiere_jax.text.tokenizer import check_prompts

JSON_OUT = (".json",)
MEDIA = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS

# command -> {flag attribute: extensions it may end in}
OUTPUTS = {
    "sample-image": {"out": (".png",)},
    "sample": {"out": VIDEO_EXTENSIONS, "xt_slice": (".png",)},
    "upscale": {"out": VIDEO_EXTENSIONS},
    "i2v": {"out": VIDEO_EXTENSIONS},
    "inpaint": {"out": VIDEO_EXTENSIONS},
    "cinemagraph": {"out": VIDEO_EXTENSIONS},
    "stylize": {"out": VIDEO_EXTENSIONS},
    "evaluate-t2i": {"json": JSON_OUT},
    "evaluate-video": {"json": JSON_OUT},
    "evaluate-ssr": {"json": JSON_OUT},
    "evaluate-sr": {"json": JSON_OUT},
}
INPUTS = {
    "upscale": {"video": VIDEO_EXTENSIONS},
    "i2v": {"image": IMAGE_EXTENSIONS},
    "inpaint": {"video": VIDEO_EXTENSIONS, "mask": MEDIA},
    "cinemagraph": {"image": IMAGE_EXTENSIONS, "mask": MEDIA},
    "stylize": {"video": VIDEO_EXTENSIONS},
}
# Flags that name a checkpoint folder ("shipped" = the shipped model, for --ssr).
CHECKPOINT_FLAGS = ("checkpoint", "ssr", "style_checkpoint")
# Commands whose clip length comes from an input video.
LENGTH_FROM_VIDEO = ("inpaint", "stylize")


def check_checkpoint_dir(flag: str, path: str) -> None:
    """An exported checkpoint (config.json + params/) or a training workdir (checkpoints/ or
    export/); the weights themselves are read, and checked, when the model loads."""
    if not os.path.exists(path):
        raise CheckpointError(f"{flag} {path!r}: no such folder. Give an exported checkpoint "
                              f"(config.json + params/) or a training workdir.")
    if not os.path.isdir(path):
        raise CheckpointError(f"{flag} {path!r} is a file; give a checkpoint folder (config.json "
                              f"+ params/) or a training workdir.")
    known = ("config.json", "params", "checkpoints", "export")
    if not any(os.path.exists(os.path.join(path, name)) for name in known):
        raise CheckpointError(f"{flag} {path!r} is neither an exported checkpoint (config.json + "
                              f"params/) nor a training workdir (checkpoints/ or export/).")


def check_args(args) -> None:
    """Refuses any bad flag of `args` (a parsed `lumiere-jax` command line)."""
    values = vars(args)
    flag = lambda name: checks.flag_name(name, flags=True)
    checks.settings(flags=True, **{name: value for name, value in values.items()
                                   if name in checks.LIMITS})
    for name, allowed in OUTPUTS.get(args.command, {}).items():
        if values.get(name) is not None:
            checks.output_file(flag(name), values[name], allowed)
    for name, allowed in INPUTS.get(args.command, {}).items():
        checks.input_file(flag(name), values[name], allowed)
    for name in CHECKPOINT_FLAGS:
        if values.get(name) not in (None, "shipped"):
            check_checkpoint_dir(flag(name), values[name])
    if values.get("prompt") is not None:
        check_prompts(values["prompt"], allow_empty=args.command == "upscale")
    if values.get("style_alpha") is not None and values.get("style_checkpoint") is None:
        raise checks.InputError("--style-alpha needs --style-checkpoint.")
    window, stride = values.get("window"), values.get("stride")
    if window and stride and stride > window:
        raise checks.InputError(f"--stride {stride} must be at most --window {window}: a larger "
                                f"stride leaves frames no window covers.")
    if args.command in LENGTH_FROM_VIDEO and values.get("frames"):
        raise checks.InputError(f"--frames is not for {args.command}: the input video sets the "
                                f"clip length.")
    if args.command == "sample" and not values.get("ssr"):
        ssr_only = [flag(name) for name in ("ssr_steps", "window", "stride", "noise_aug",
                                            "enlarged_start")
                    if values.get(name) is not None]
        if ssr_only:
            raise checks.InputError(f"{', '.join(ssr_only)} set the SSR stage: add --ssr.")

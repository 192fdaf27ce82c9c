"""Checks of what a user passes (CLI flags, pipeline arguments, paths), run before any model is
loaded or compiled. Each error names the input, says what was wrong and what is allowed.

`LIMITS` declares once the range of every numeric setting that the commands and the pipeline
share; `settings(...)` checks any of them by name. Names are given as the caller's user knows
them: `settings(flags=True, noise_aug=2)` says `--noise-aug`, without `flags` it says
`noise_aug`.
"""
from __future__ import annotations

import math
import numbers
import os

# name -> (minimum, maximum, integer?, what it is). None = unbounded.
LIMITS = {
    "steps": (1, 10_000, True, "denoising steps"),
    "ssr_steps": (1, 10_000, True, "denoising steps of the SSR stage"),
    "guidance": (1.0, 100.0, False, "the classifier-free guidance scale; 1 = no guidance"),
    "frames": (1, 4096, True, "frames per clip"),
    "seed": (0, 2**31 - 1, True, "the random seed"),
    "num": (1, 4096, True, "samples"),
    "batch": (1, 4096, True, "the batch size"),
    "scale": (1, 64, True, "the nearest-neighbour upscaling factor"),
    "fps": (0.1, 240.0, False, "frames per second"),
    "xt_row": (0, None, True, "the pixel row of the x-t slice"),
    "window": (1, 4096, True, "frames per temporal window"),
    "stride": (1, 4096, True, "frames between window starts"),
    "window_chunk": (0, 4096, True, "windows denoised at a time; 0 = all at once"),
    "noise_aug": (0.0, 1.0, False, "the noise-augmentation level"),
    "strength": (0.0, 1.0, False, "the SDEdit noise level"),
    "enlarged_start": (0.0, 1.0, False, "the noise level an SR model's sampling starts from, "
                       "on its enlarged low-res input; 1 = pure noise"),
    "per_frame_below": (0.0, 1.0, False, "the noise level t below which the frozen 2D model "
                        "denoises each frame alone; 0 = never"),
    "style_alpha": (0.0, 1.0, False, "the style interpolation weight"),
    "alpha": (0.0, 1.0, False, "the style interpolation weight"),
}


class InputError(ValueError):
    """An input outside what is allowed (the message says what was wrong and what is allowed)."""


def flag_name(name: str, flags: bool) -> str:
    """`noise_aug` as a CLI user knows it (`--noise-aug`) or as a Python caller does."""
    return "--" + name.replace("_", "-") if flags else name


def _text(bound) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _range_text(minimum, maximum) -> str:
    if maximum is None:
        return f">= {_text(minimum)}"
    if minimum is None:
        return f"<= {_text(maximum)}"
    return f"in [{_text(minimum)}, {_text(maximum)}]"


def number(name: str, value, minimum=None, maximum=None, integer: bool = False,
           what: str = "") -> int | float:
    """`value` as an int (integer=True) or a finite float inside [minimum, maximum]."""
    kind = "an integer" if integer else "a number"
    about = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be {kind}{about}; got {value!r}.")
    if not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number{about}; got {value!r}.")
    if integer and not float(value).is_integer():
        raise InputError(f"{name} must be {kind}{about}; got {value!r}.")
    value = int(value) if integer else float(value)
    low_ok = minimum is None or value >= minimum
    high_ok = maximum is None or value <= maximum
    if not (low_ok and high_ok):
        raise InputError(f"{name} must be {_range_text(minimum, maximum)}{about}; got {value!r}.")
    return value


def settings(flags: bool = False, **values) -> dict:
    """Checks every given (not None) setting of `LIMITS`; returns them converted."""
    checked = {}
    for name, value in values.items():
        if name not in LIMITS:
            raise KeyError(f"No limits declared for {name!r}; declared: {sorted(LIMITS)}.")
        if value is None:
            checked[name] = None
            continue
        minimum, maximum, integer, what = LIMITS[name]
        checked[name] = number(flag_name(name, flags), value, minimum, maximum, integer, what)
    return checked


def choice(name: str, value, allowed) -> str:
    """`value` if it is one of `allowed`."""
    if value not in tuple(allowed):
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")
    return value


def extension(name: str, path: str, allowed: tuple[str, ...]) -> str:
    """The lower-case extension of `path`, refused unless in `allowed`."""
    found = os.path.splitext(os.fspath(path))[1].lower()
    if found not in allowed:
        raise InputError(f"{name} must end in {' or '.join(allowed)}; got {os.fspath(path)!r}.")
    return found


def output_file(name: str, path, allowed: tuple[str, ...]) -> str:
    """A file path that can be written: known extension, an existing writable folder, and not
    a folder itself. Nothing is created."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputError(f"{name} must be a file path ending in {' or '.join(allowed)}; got "
                         f"{path!r}.")
    path = os.fspath(path)
    extension(name, path, allowed)
    if os.path.isdir(path):
        raise InputError(f"{name} {path!r} is a folder; give a file path ending in "
                         f"{' or '.join(allowed)}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{name} {path!r}: the folder {folder!r} does not exist; create it "
                         f"first or write elsewhere.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{name} {path!r}: the folder {folder!r} is not writable.")
    return path


def input_file(name: str, path, allowed: tuple[str, ...] | None = None) -> str:
    """An existing, readable file (with one of the `allowed` extensions, when given)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputError(f"{name} must be a file path; got {path!r}.")
    path = os.fspath(path)
    if allowed:
        extension(name, path, allowed)
    if not os.path.exists(path):
        raise InputError(f"{name}: no such file {path!r}.")
    if not os.path.isfile(path):
        raise InputError(f"{name} {path!r} is not a file.")
    if not os.access(path, os.R_OK):
        raise InputError(f"{name} {path!r} is not readable.")
    return path


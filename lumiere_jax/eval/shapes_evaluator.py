"""Reads shapes-world frames and clips (rendered or generated) back into attributes.

Method, per frame: the background is the median of the border pixels; the object colour is the
mean of the pixels furthest from it, snapped to the nearest palette colour; the soft object mask
is each pixel's projection onto the background->object colour line (which undoes the renderer's
anti-aliasing), softly thresholded and windowed around the object so that stray noise pixels
far away cannot dominate. From the mask come area, centroid and the normalised complex moments
h_k = |sum m z^k| / sum m |z|^k for k = 3, 4, 5 (z = pixel offset from the centroid): a regular
n-gon has power only at multiples of n, so the nearest of the shapes' prototype vectors gives the
shape, and the phase of the n-th moment gives its orientation. The hard mask's connected
components of at least a few pixels count the objects a frame shows (the world draws exactly
one; a generator that has not learnt that draws fragments). A clip takes majority votes over
frames and reads motion from the centroid trajectory, the area trend and the orientation trend;
speeds are split at the geometric mean of the world's slow and quick settings.

Inputs must be uint8 RGB arrays (a TypeError says so otherwise). Nothing visible gives
None attributes rather than an error.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import math

import numpy as np
from scipy import ndimage

from lumiere_jax.data import shapes as world

_COLOUR_NAMES = tuple(world.COLOURS)
_PALETTE = np.array([world.COLOURS[name] for name in _COLOUR_NAMES], dtype=np.float64)
_HARMONICS = (3, 4, 5)
_MIN_CONTRAST = 60.0          # RGB distance from the background below which nothing is visible
_MIN_OBJECT_PIXELS = 2.0      # smaller masks are treated as nothing visible
_STRONG_FRACTION = 0.85       # pixels this close to the peak contrast define the object colour
_STRAY_PIXELS = 2             # this many extreme pixels per frame are ignored when finding it
_MASK_FLOOR = 0.25            # soft threshold of the coverage estimate (symmetric about 0.5)
_WINDOW_SCALE = 1.8           # object window radius, in radii of the equal-area disc (star: 1.54)
_WINDOW_PAD = 1.5             # ... plus this many pixels
_MIN_SIDE = 8
_MIN_COMPONENT_PIXELS = 3     # smaller connected pieces of the hard mask are specks, not objects
# Motion decision thresholds (normalised units), between "no motion" and the slow settings.
_STATIONARY_SPREAD = 0.06     # centroid range below which the object is not travelling
_MIN_LOG_GROWTH = 0.2         # |log(area ratio)| over the clip that counts as growing/shrinking
_MIN_ROTATION = 30.0          # degrees over the clip that count as rotating
_ORBIT_RADIUS_JITTER = 0.12   # max relative std of the distance to the frame centre on an orbit
_MIN_ORBIT_SWEEP = 120.0      # degrees swept around the frame centre on an orbit
_MIN_ORBIT_RADIUS = 0.08
_MIN_PERIODIC_MOTION = 0.01   # centroid std (frame widths) below which there is no periodicity


def _between_speeds(table: dict) -> float:
    """Decision threshold between a slow and a quick setting: their geometric mean."""
    return math.sqrt(table["slowly"] * table["quickly"])


_SPEED_THRESHOLD = {
    "translation": _between_speeds(world.TRANSLATION_DISTANCE),
    "bounces": _between_speeds(world.BOUNCE_COUNT),
    "orbit_degrees": 360.0 * _between_speeds(world.ORBIT_TURNS),
    "rotation": _between_speeds(world.ROTATION_DEGREES),
    "log_growth": 2 * math.log(_between_speeds(world.SCALE_FACTOR)),
}
_SIZE_THRESHOLD = math.sqrt(world.SIZE_RADIUS["small"] * world.SIZE_RADIUS["large"])
CONSISTENCY_KEYS = ("size_stability", "colour_stability", "trajectory_smoothness", "periodicity")


@dataclasses.dataclass
class FrameReading:
    """What one frame shows. Geometry is normalised (centroid (x, y) in [0, 1], area as a
    fraction of the frame); angle is the orientation in degrees modulo the shape's symmetry
    period, in the renderer's convention (None for circles or nothing visible)."""

    background: str
    colour: str | None
    shape: str | None
    size: str | None
    centroid: tuple[float, float] | None
    area: float
    angle: float | None
    objects: int = 1    # separate pieces of foreground (see `count_objects`)


@dataclasses.dataclass
class ClipReading:
    """What a clip shows; speed is None for still clips (and when motion is unreadable)."""

    background: str
    colour: str | None
    shape: str | None
    size: str | None
    motion: str | None
    speed: str | None
    consistency: dict[str, float]
    single_object: float = 1.0   # fraction of frames that show exactly one object


# ----------------------------------------------------------------------------- input checks


def _as_frames(array, layout: str, what: str) -> np.ndarray:
    """Checked float64 frames (F, H, W, 3) from a uint8 array with the given layout."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"{what} must be a uint8 RGB array, got dtype {array.dtype}")
    if array.ndim != layout.count(",") + 1 or array.shape[-1] != 3:
        raise ValueError(f"{what} must have shape {layout}, got {array.shape}")
    if min(array.shape[-3:-1]) < _MIN_SIDE:
        raise ValueError(f"{what} must be at least {_MIN_SIDE}x{_MIN_SIDE}, got {array.shape}")
    return array.reshape((-1,) + array.shape[-3:]).astype(np.float64)


def _as_clip(clip) -> np.ndarray:
    frames = _as_frames(clip, "(T, H, W, 3)", "clip")
    if len(frames) < 2:
        raise ValueError(f"clip must have at least 2 frames, got {len(frames)}")
    return frames


# ----------------------------------------------------------------------------- per-frame features


@functools.lru_cache(maxsize=None)
def _shape_prototypes() -> np.ndarray:
    """Harmonic feature vector (h3, h4, h5) of each shape, measured on a large clean render."""
    resolution = 128
    prototypes = []
    for shape in world.SHAPES:
        coverage = world.shape_coverage(shape, [0.5], [0.5], [0.4], [0.0], resolution)
        prototypes.append(_harmonic_features(_moments(coverage))[0])
    return np.array(prototypes)


def _border_pixels(frames: np.ndarray) -> np.ndarray:
    top_bottom = frames[:, [0, -1], :, :].reshape(len(frames), -1, 3)
    left_right = frames[:, 1:-1, [0, -1], :].reshape(len(frames), -1, 3)
    return np.concatenate([top_bottom, left_right], axis=1)


def _peak_contrast(distance: np.ndarray) -> np.ndarray:
    """Per-frame contrast of the strongest pixels, ignoring up to a couple of stray ones."""
    flat = distance.reshape(len(distance), -1)
    rank = min(_STRAY_PIXELS, flat.shape[1] - 1)
    return -np.partition(-flat, rank, axis=1)[:, rank]


def _object_colour(frames: np.ndarray, distance: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Mean RGB (F, 3) of the pixels whose contrast is near the frame's peak contrast."""
    strong = (distance >= _STRONG_FRACTION * peak[:, None, None])[..., None]
    return (frames * strong).sum(axis=(1, 2)) / np.maximum(strong.sum(axis=(1, 2)), 1)


def _soft_mask(offset: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Coverage estimate: projection on the background->object colour line, softly thresholded."""
    scale = np.maximum((direction ** 2).sum(axis=-1), 1e-6)[:, None, None]
    coverage = np.einsum("fhwc,fc->fhw", offset, direction) / scale
    return np.clip((coverage - _MASK_FLOOR) / (1 - 2 * _MASK_FLOOR), 0.0, 1.0)


def _pixel_grid(height: int, width: int):
    return (np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height


def _centroids(mask: np.ndarray):
    xs, ys = _pixel_grid(*mask.shape[1:])
    mass = np.maximum(mask.sum(axis=(1, 2)), 1e-9)
    return np.einsum("fhw,w->f", mask, xs) / mass, np.einsum("fhw,h->f", mask, ys) / mass


def _local_window(mask: np.ndarray) -> np.ndarray:
    """Keep the mask near its centroid: stray pixels far away would dominate high moments."""
    height, width = mask.shape[1:]
    xs, ys = _pixel_grid(height, width)
    cx, cy = _centroids(mask)
    reach = _WINDOW_SCALE * np.sqrt(mask.sum(axis=(1, 2)) / np.pi) + _WINDOW_PAD
    dx = (xs[None, None, :] - cx[:, None, None]) * width
    dy = (ys[None, :, None] - cy[:, None, None]) * height
    return mask * (dx ** 2 + dy ** 2 <= reach[:, None, None] ** 2)


def _moments(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Mass, centroid (normalised) and complex moments of order 3..5 of masks (F, H, W)."""
    height, width = mask.shape[1:]
    xs, ys = _pixel_grid(height, width)
    cx, cy = _centroids(mask)
    z = (xs[None, None, :] - cx[:, None, None]) + 1j * (ys[None, :, None] - cy[:, None, None])
    powers = {1: z}
    for k in range(2, max(_HARMONICS) + 1):
        powers[k] = powers[k - 1] * z
    radius = np.abs(z)
    complex_moments = np.stack([(mask * powers[k]).sum(axis=(1, 2)) for k in _HARMONICS], -1)
    magnitudes = np.stack([(mask * radius ** k).sum(axis=(1, 2)) for k in _HARMONICS], -1)
    mass = mask.sum(axis=(1, 2))
    return {"mass": mass, "area": mass / (height * width), "cx": cx, "cy": cy,
            "complex": complex_moments, "magnitude": magnitudes}


def _harmonic_features(moments: dict) -> np.ndarray:
    return np.abs(moments["complex"]) / np.maximum(moments["magnitude"], 1e-12)


def _count_objects(mask: np.ndarray) -> np.ndarray:
    """Connected pieces (8-neighbourhood) of at least _MIN_COMPONENT_PIXELS pixels of each
    frame's hard mask (F, H, W) bool, as (F,) ints."""
    frames, height, width = mask.shape
    within_frame = np.zeros((3, 3, 3), bool)
    within_frame[1] = True
    labels, count = ndimage.label(mask, structure=within_frame)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    frame_of = np.zeros(count + 1, np.int64)
    frame_of[labels.ravel()] = np.repeat(np.arange(frames), height * width)
    kept = sizes >= _MIN_COMPONENT_PIXELS
    kept[0] = False
    return np.bincount(frame_of[kept], minlength=frames)


def _frame_features(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Everything the readers need, vectorised over frames (F, H, W, 3) float."""
    background_rgb = np.median(_border_pixels(frames), axis=1)
    offset = frames - background_rgb[:, None, None, :]
    distance = np.sqrt((offset ** 2).sum(axis=-1))
    peak = _peak_contrast(distance)
    object_rgb = _object_colour(frames, distance, peak)
    coverage = _soft_mask(offset, object_rgb - background_rgb)
    features = _moments(_local_window(coverage))
    features["visible"] = (peak >= _MIN_CONTRAST) & (features["mass"] >= _MIN_OBJECT_PIXELS)
    features["objects"] = np.where(features["visible"], _count_objects(coverage > 0.5), 0)
    features["background"] = np.where(background_rgb.mean(axis=1) > 127.5, "white", "black")
    features["background_rgb"] = background_rgb
    features["object_rgb"] = object_rgb
    features["colour"] = np.array(_COLOUR_NAMES)[
        np.argmin(((object_rgb[:, None, :] - _PALETTE[None]) ** 2).sum(-1), axis=1)]
    prototype_distance = ((_harmonic_features(features)[:, None, :]
                           - _shape_prototypes()[None]) ** 2).sum(-1)
    features["shape"] = np.array(world.SHAPES)[np.argmin(prototype_distance, axis=1)]
    return features


def measure_frames(frames) -> dict[str, np.ndarray]:
    """The evaluator's per-frame measurements of uint8 frames (F, H, W, 3), each an array over
    frames: `background_rgb` and `object_rgb` (F, 3), `area`, `cx`, `cy`, `visible`, `objects`
    (F,), `harmonics` (F, 3) (the shape features h3, h4, h5), and the readings `colour`,
    `shape`, `background` (F,) str."""
    features = _frame_features(_as_frames(frames, "(F, H, W, 3)", "frames"))
    features["harmonics"] = _harmonic_features(features)
    return features


def _orientation(features: dict, shape: str | None) -> np.ndarray | None:
    """Per-frame orientation (degrees, modulo the symmetry period) assuming `shape`."""
    if shape is None or shape == "circle":
        return None
    order = world.symmetry_order(shape)
    phase = np.degrees(np.angle(features["complex"][:, _HARMONICS.index(order)]))
    return np.mod(phase / order - world.vertex_base_angle(shape), 360.0 / order)


def _size(area: float, shape: str | None) -> str | None:
    if shape is None:
        return None
    radius = math.sqrt(max(area, 0.0) / world.unit_area(shape))
    return "large" if radius > _SIZE_THRESHOLD else "small"


def _reading_at(features: dict, index: int) -> FrameReading:
    background = str(features["background"][index])
    area = float(features["area"][index])
    if not features["visible"][index]:
        return FrameReading(background, None, None, None, None, area, None, objects=0)
    shape = str(features["shape"][index])
    orientation = _orientation(features, shape)
    return FrameReading(
        background=background, colour=str(features["colour"][index]), shape=shape,
        size=_size(area, shape),
        centroid=(float(features["cx"][index]), float(features["cy"][index])), area=area,
        angle=None if orientation is None else float(orientation[index]),
        objects=int(features["objects"][index]))


def read_frame(frame: np.ndarray) -> FrameReading:
    """Read one uint8 (H, W, 3) frame of any resolution into attributes."""
    return _reading_at(_frame_features(_as_frames(frame, "(H, W, 3)", "frame")), 0)


# ----------------------------------------------------------------------------- clips


def _majority(values) -> str | None:
    counts = collections.Counter(str(v) for v in values)
    return counts.most_common(1)[0][0] if counts else None


def _wrapped_steps(angles: np.ndarray, period: float) -> np.ndarray:
    return np.mod(np.diff(angles) + period / 2, period) - period / 2


def _log_growth(area: np.ndarray) -> float:
    """Least-squares slope of log(area) against clip time: log of the end/start area ratio."""
    u = np.linspace(0.0, 1.0, len(area))
    return float(np.polyfit(u, np.log(np.maximum(area, 1e-9)), 1)[0])


def _total_rotation(features: dict, visible: np.ndarray, shape: str | None) -> float:
    """Degrees turned over the clip, from orientation steps modulo the symmetry period."""
    orientation = _orientation(features, shape)
    if orientation is None:
        return 0.0
    period = 360.0 / world.symmetry_order(shape)
    return float(abs(_wrapped_steps(orientation[visible], period).sum()))


def _classify_stationary(area: np.ndarray, rotation: float):
    growth = _log_growth(area)
    if abs(growth) > _MIN_LOG_GROWTH:
        speed = "quickly" if abs(growth) > _SPEED_THRESHOLD["log_growth"] else "slowly"
        return ("growing" if growth > 0 else "shrinking"), speed
    if rotation > _MIN_ROTATION:
        return "rotating", "quickly" if rotation > _SPEED_THRESHOLD["rotation"] else "slowly"
    return "still", None


def _orbit_sweep(cx: np.ndarray, cy: np.ndarray) -> float | None:
    """Degrees swept around the frame centre if the path is a circle about it, else None."""
    radius = np.hypot(cx - 0.5, cy - 0.5)
    if radius.mean() < _MIN_ORBIT_RADIUS or radius.std() > _ORBIT_RADIUS_JITTER * radius.mean():
        return None
    sweep = abs(np.degrees(np.sum(_wrapped_steps(np.arctan2(cy - 0.5, cx - 0.5), 2 * np.pi))))
    return sweep if sweep > _MIN_ORBIT_SWEEP else None


def _count_arches(cy: np.ndarray) -> int:
    """Number of separate flights above the half height of a bounce (y grows downwards)."""
    airborne = cy < (cy.min() + cy.max()) / 2
    return int(airborne[0]) + int(np.sum(airborne[1:] & ~airborne[:-1]))


def _classify_travelling(cx: np.ndarray, cy: np.ndarray):
    sweep = _orbit_sweep(cx, cy)
    if sweep is not None:
        return "orbiting", "quickly" if sweep > _SPEED_THRESHOLD["orbit_degrees"] else "slowly"
    dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
    range_x, range_y = np.ptp(cx), np.ptp(cy)
    if range_x < 0.5 * range_y and abs(dy) < 0.5 * range_y:
        quick = _count_arches(cy) > _SPEED_THRESHOLD["bounces"]
        return "bouncing", "quickly" if quick else "slowly"
    if abs(dx) >= abs(dy):
        motion, distance = ("right" if dx > 0 else "left"), abs(dx)
    else:
        motion, distance = ("down" if dy > 0 else "up"), abs(dy)
    return motion, "quickly" if distance > _SPEED_THRESHOLD["translation"] else "slowly"


def _classify_motion(features: dict, visible: np.ndarray, shape: str | None):
    if visible.sum() < 2:
        return None, None
    cx, cy, area = features["cx"][visible], features["cy"][visible], features["area"][visible]
    if max(np.ptp(cx), np.ptp(cy)) >= _STATIONARY_SPREAD:
        return _classify_travelling(cx, cy)
    return _classify_stationary(area, _total_rotation(features, visible, shape))


def _segment_similarity(signal: np.ndarray, lag: int) -> float:
    """Cosine similarity between a signal and itself shifted by `lag` (overlap only)."""
    early, late = signal[:-lag], signal[lag:]
    norm = math.sqrt((early ** 2).sum() * (late ** 2).sum())
    return float((early * late).sum() / norm) if norm > 0 else 0.0


def _autocorrelation_peak(signal: np.ndarray) -> float:
    """Periodicity of a (T, D) zero-mean signal: the highest local maximum of its
    autocorrelation past the first dip, in [0, 1] (0 when it has no such repeat or no motion)."""
    if len(signal) < 5 or signal.std(axis=0).max() < _MIN_PERIODIC_MOTION:
        return 0.0
    lags = range(1, (2 * len(signal)) // 3 + 1)
    correlation = np.array([_segment_similarity(signal, lag) for lag in lags])
    inner = correlation[1:-1]
    peaks = (inner > correlation[:-2]) & (inner >= correlation[2:])
    return float(max(0.0, inner[peaks].max())) if peaks.any() else 0.0


def _consistency(features: dict) -> dict[str, float]:
    visible = features["visible"]
    if visible.sum() < 2:
        return dict.fromkeys(CONSISTENCY_KEYS, float("nan"))
    area = features["area"][visible]
    u = np.linspace(0.0, 1.0, len(area))
    log_area = np.log(np.maximum(area, 1e-9))
    trend = np.polyval(np.polyfit(u, log_area, 1), u)
    path = np.stack([features["cx"][visible], features["cy"][visible]], axis=-1)
    second_difference = np.diff(path, n=2, axis=0)
    return {
        "size_stability": float(np.std(np.exp(log_area - trend))),
        "colour_stability": float(features["object_rgb"][visible].std(axis=0).mean() / 255.0),
        "trajectory_smoothness": float(np.linalg.norm(second_difference, axis=-1).mean())
        if len(second_difference) else 0.0,
        "periodicity": _autocorrelation_peak(path - path.mean(axis=0)),
    }


def temporal_consistency(clip: np.ndarray) -> dict[str, float]:
    """Temporal quality figures of a uint8 (T, H, W, 3) clip, over frames with a visible object:

    - size_stability: relative std of the object area around its exponential trend over the
      clip (0 = steady size; intended growing/shrinking is the trend and does not count).
    - colour_stability: std over frames of the object's mean colour, in [0, 1] units
      (0 = constant colour).
    - trajectory_smoothness: mean |second difference| of the centroid per frame, in frame widths
      (0 = constant velocity; curved paths like orbits and bounces are naturally above 0).
    - periodicity: highest autocorrelation peak of the centroid trajectory after its first
      dip, in [0, 1] (near 1 = clearly repeating path, e.g. quick bouncing or orbiting; 0 = none).
    All are NaN when fewer than two frames show an object.
    """
    return _consistency(_frame_features(_as_clip(clip)))


def read_clip(clip: np.ndarray) -> ClipReading:
    """Read a uint8 (T, H, W, 3) clip, T >= 2, into attributes plus consistency figures."""
    features = _frame_features(_as_clip(clip))
    visible = features["visible"]
    shape = _majority(features["shape"][visible])
    motion, speed = _classify_motion(features, visible, shape)
    first_visible = int(np.argmax(visible))
    return ClipReading(
        background=_majority(features["background"]),
        colour=_majority(features["colour"][visible]),
        shape=shape,
        size=_size(float(features["area"][first_visible]), shape) if visible.any() else None,
        motion=motion, speed=speed, consistency=_consistency(features),
        single_object=float(np.mean(features["objects"] == 1)))


# ----------------------------------------------------------------------------- scoring


def _accuracies(readings, specs, attributes, captions=None) -> dict[str, float]:
    """Per-attribute accuracy and 'all'. With `captions`, an attribute of a sample counts only
    where its caption names it (a prompt that leaves out the background asks for none)."""
    readings, specs = list(readings), list(specs)
    correct = np.array([[getattr(r, a) == getattr(s, a) for a in attributes]
                        for r, s in zip(readings, specs)], dtype=bool).reshape(-1, len(attributes))
    asked = np.ones_like(correct)
    if captions is not None:
        _check_lengths(captions, specs, "captions")
        named = [world.parse_caption(caption) for caption in captions]
        asked = np.array([[a in n for a in attributes] for n in named], bool).reshape(correct.shape)
    scores = {a: float(correct[asked[:, i], i].mean()) if asked[:, i].any() else float("nan")
              for i, a in enumerate(attributes)}
    scores["all"] = float((correct | ~asked).all(axis=1).mean())
    return scores


def _check_lengths(items, specs, what: str) -> None:
    if len(items) != len(specs) or len(specs) == 0:
        raise ValueError(f"need as many {what} as specs (and at least one), got "
                         f"{len(items)} {what} and {len(specs)} specs")


def score_frames(frames, specs, captions=None) -> dict[str, float]:
    """Accuracy of read_frame against specs (frame-0 semantics for size): colour, shape, size,
    background and 'all' (fraction with every attribute right), and 'single_object' (fraction
    of frames showing exactly one object). frames: (N, H, W, 3) uint8. With `captions` (the
    prompts), only the attributes each prompt names are scored."""
    _check_lengths(frames, specs, "frames")
    features = _frame_features(_as_frames(frames, "(N, H, W, 3)", "frames"))
    readings = [_reading_at(features, i) for i in range(len(specs))]
    scores = _accuracies(readings, specs, ("colour", "shape", "size", "background"), captions)
    scores["single_object"] = float(np.mean([r.objects == 1 for r in readings]))
    return scores


def score_clips(clips, specs, captions=None) -> dict[str, float]:
    """Accuracy of read_clip against specs per attribute (incl. motion and speed), 'all',
    'single_object' (fraction of frames, over all clips, showing exactly one object), and the
    mean of each consistency figure as 'mean_<name>' (NaNs ignored). With `captions`, only the
    attributes each prompt names are scored."""
    _check_lengths(clips, specs, "clips")
    return score_readings([read_clip(clip) for clip in clips], specs, captions)


def score_readings(readings: list[ClipReading], specs, captions=None) -> dict[str, float]:
    """`score_clips` for clips already read (`read_clip`)."""
    _check_lengths(readings, specs, "readings")
    scores = _accuracies(readings, specs, ("colour", "shape", "size", "background", "motion",
                                           "speed"), captions)
    scores["single_object"] = float(np.mean([r.single_object for r in readings]))
    for key in CONSISTENCY_KEYS:
        values = np.array([r.consistency[key] for r in readings])
        scores[f"mean_{key}"] = float(np.nanmean(values)) if np.isfinite(values).any() \
            else float("nan")
    return scores


def accuracy_by_motion(readings: list[ClipReading], specs, captions=None) -> dict[str, float]:
    """Motion accuracy for each motion asked for, as 'motion_<motion>', over the clips of that
    motion whose caption names it (every clip without captions)."""
    _check_lengths(readings, specs, "readings")
    named = [True] * len(specs) if captions is None else [
        "motion" in world.parse_caption(caption) for caption in captions]
    hits: dict[str, list[bool]] = {}
    for reading, spec, asked in zip(readings, specs, named):
        if asked:
            hits.setdefault(spec.motion, []).append(reading.motion == spec.motion)
    return {f"motion_{motion}": float(np.mean(hits[motion])) for motion in sorted(hits)}

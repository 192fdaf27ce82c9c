"""The procedural "shapes world": one coloured shape moving on a plain background.

A clip is described by a `ClipSpec` (shape, colour, size, background, motion, speed and a start
pose) and rendered deterministically, anti-aliased, at any square resolution and frame count.
Motion is defined over clip time u = frame / (num_frames - 1) in [0, 1], so a clip shows the same
motion whatever its frame count. Geometry is in normalised image coordinates: x to the right,
y downwards, both in [0, 1]; angles are in degrees, positive = clockwise on screen.

Captions describing a spec come with varied wording (`make_caption`) or one fixed wording
(`canonical_caption`), and `parse_caption` reads the attributes back out of any of them.
"""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

SHAPES = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
}
SIZES = ("small", "large")
BACKGROUNDS = ("black", "white")
BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "white": (255, 255, 255)}
MOTIONS = ("left", "right", "up", "down", "bouncing", "orbiting", "rotating", "growing",
           "shrinking", "still")
SPEEDS = ("slowly", "quickly")
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("circle", "green"), ("square", "yellow"), ("triangle", "magenta"), ("star", "cyan"),
})
SPLITS = ("train", "validation", "heldout")

# Geometry of the world, in frame widths. A shape's size is the radius of its circumscribed circle.
SIZE_RADIUS = {"small": 0.17, "large": 0.26}
STAR_INNER_RATIO = 0.45          # inner / outer radius of the five-pointed star
# Render styles: "plain" fills the shape; "outlined" (the style world of stylized generation)
# draws only a band of OUTLINE_WIDTH inside its outline and shows the background within.
STYLES = ("plain", "outlined")
OUTLINE_WIDTH = 0.04
EDGE_MARGIN = 0.035              # gap kept between the shape and the frame border
# Motion magnitudes over the whole clip, per speed.
TRANSLATION_DISTANCE = {"slowly": 0.2, "quickly": 0.4}
BOUNCE_HEIGHT = 0.3
BOUNCE_COUNT = {"slowly": 1, "quickly": 3}
ORBIT_TURNS = {"slowly": 0.5, "quickly": 1.75}     # clockwise around the frame centre
MIN_ORBIT_RADIUS = 0.15
ROTATION_DEGREES = {"slowly": 90.0, "quickly": 270.0}   # clockwise, <= 18 deg/frame at 16 frames
SCALE_FACTOR = {"slowly": 1.25, "quickly": 1.65}        # end radius / start radius (or inverse)

_TRANSLATION_DIRECTION = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                          "down": (0.0, 1.0)}


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _check_finite(name: str, value, low=-math.inf, high=math.inf) -> None:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """Everything that determines a clip: attributes plus the start pose of the shape."""

    shape: str
    colour: str
    size: str
    background: str
    motion: str
    speed: str | None   # None iff motion == "still"
    x: float            # start centre, normalised image coordinates (x right, y down)
    y: float
    angle: float        # start orientation in degrees, clockwise

    def __post_init__(self):
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("colour", self.colour, COLOURS)
        _check_choice("size", self.size, SIZES)
        _check_choice("background", self.background, BACKGROUNDS)
        _check_choice("motion", self.motion, MOTIONS)
        if self.motion == "still":
            if self.speed is not None:
                raise ValueError(f"speed must be None when motion is 'still', got {self.speed!r}")
        else:
            _check_choice(f"speed (for motion {self.motion!r})", self.speed, SPEEDS)
        _check_finite("x", self.x, 0.0, 1.0)
        _check_finite("y", self.y, 0.0, 1.0)
        _check_finite("angle", self.angle)

    def to_dict(self) -> dict:
        """JSON-friendly dict; a still clip has speed None."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "ClipSpec":
        """Inverse of `to_dict`; an empty-string speed is read as None."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in d]
        if missing:
            raise ValueError(f"ClipSpec dict is missing {missing}; it needs {names}")
        values = {name: d[name] for name in names}
        values["speed"] = values["speed"] or None
        for key in ("x", "y", "angle"):
            values[key] = float(values[key])
        return cls(**values)


# ----------------------------------------------------------------------------- motion


def clip_times(num_frames: int) -> np.ndarray:
    """Clip time u in [0, 1] of each frame (a single frame sits at u = 0)."""
    if num_frames == 1:
        return np.zeros(1)
    return np.arange(num_frames) / (num_frames - 1)


def _orbit_polar(x: float, y: float) -> tuple[float, float]:
    return math.hypot(x - 0.5, y - 0.5), math.atan2(y - 0.5, x - 0.5)


def shape_poses(spec: ClipSpec, u: np.ndarray):
    """Centre x, centre y, circumradius and angle (degrees) of the shape at clip times `u`."""
    u = np.asarray(u, dtype=np.float64)
    cx, cy = np.full_like(u, spec.x), np.full_like(u, spec.y)
    radius = np.full_like(u, SIZE_RADIUS[spec.size])
    angle = np.full_like(u, spec.angle)
    if spec.motion in _TRANSLATION_DIRECTION:
        dx, dy = _TRANSLATION_DIRECTION[spec.motion]
        cx = cx + dx * TRANSLATION_DISTANCE[spec.speed] * u
        cy = cy + dy * TRANSLATION_DISTANCE[spec.speed] * u
    elif spec.motion == "bouncing":   # spec.y is the floor contact; height follows |sin|
        cy = cy - BOUNCE_HEIGHT * np.abs(np.sin(np.pi * BOUNCE_COUNT[spec.speed] * u))
    elif spec.motion == "orbiting":
        orbit_radius, phase = _orbit_polar(spec.x, spec.y)
        theta = phase + 2 * np.pi * ORBIT_TURNS[spec.speed] * u
        cx, cy = 0.5 + orbit_radius * np.cos(theta), 0.5 + orbit_radius * np.sin(theta)
    elif spec.motion == "rotating":
        angle = angle + ROTATION_DEGREES[spec.speed] * u
    elif spec.motion in ("growing", "shrinking"):
        sign = 1.0 if spec.motion == "growing" else -1.0
        radius = radius * SCALE_FACTOR[spec.speed] ** (sign * u)
    return cx, cy, radius, angle


# ----------------------------------------------------------------------------- sampling


def _max_radius(size: str, motion: str, speed: str | None) -> float:
    growth = SCALE_FACTOR[speed] if motion == "growing" else 1.0
    return SIZE_RADIUS[size] * growth + EDGE_MARGIN


def sample_start(rng: np.random.Generator, size: str, motion: str, speed: str | None):
    """Start centre such that the shape stays inside the frame for the whole clip."""
    reach = _max_radius(size, motion, speed)
    if motion == "orbiting":
        orbit_radius = rng.uniform(MIN_ORBIT_RADIUS, 0.5 - reach)
        phase = rng.uniform(-np.pi, np.pi)
        return 0.5 + orbit_radius * math.cos(phase), 0.5 + orbit_radius * math.sin(phase)
    x_low, x_high, y_low, y_high = reach, 1 - reach, reach, 1 - reach
    if motion in _TRANSLATION_DIRECTION:
        dx, dy = (d * TRANSLATION_DISTANCE[speed] for d in _TRANSLATION_DIRECTION[motion])
        x_low, x_high = x_low - min(dx, 0), x_high - max(dx, 0)
        y_low, y_high = y_low - min(dy, 0), y_high - max(dy, 0)
    elif motion == "bouncing":
        y_low += BOUNCE_HEIGHT
    return rng.uniform(x_low, x_high), rng.uniform(y_low, y_high)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _sample_pair(rng: np.random.Generator, split: str) -> tuple[str, str]:
    if split == "heldout":
        pairs = sorted(HELDOUT_PAIRS)
    else:
        pairs = [(s, c) for s in SHAPES for c in COLOURS if (s, c) not in HELDOUT_PAIRS]
    return pairs[rng.integers(len(pairs))]


def _choose(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def sample_spec(rng: np.random.Generator, split: str = "train") -> ClipSpec:
    """Draw a random clip spec. Held-out (shape, colour) pairs appear only in split 'heldout'."""
    _check_split(split)
    shape, colour = _sample_pair(rng, split)
    motions = tuple(m for m in MOTIONS if not (shape == "circle" and m == "rotating"))
    motion = _choose(rng, motions)
    speed = None if motion == "still" else _choose(rng, SPEEDS)
    size = _choose(rng, SIZES)
    x, y = sample_start(rng, size, motion, speed)
    return ClipSpec(shape=shape, colour=colour, size=size, background=_choose(rng, BACKGROUNDS),
                    motion=motion, speed=speed, x=float(x), y=float(y),
                    angle=float(rng.uniform(0.0, 360.0)))


def spec_for_seed(seed: int, split: str) -> ClipSpec:
    """The spec of clip number `seed` (>= 0) of a split; each split has its own stream."""
    _check_split(split)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return sample_spec(np.random.default_rng([int(seed), SPLITS.index(split)]), split)


# ----------------------------------------------------------------------------- rendering


def _polygon_vertices(shape: str) -> np.ndarray:
    """Vertices (n, 2) of a unit-circumradius polygon at angle 0 (points up, square upright)."""
    if shape == "square":
        angles = np.deg2rad(-45.0 + 90.0 * np.arange(4))
        radii = np.ones(4)
    elif shape == "triangle":
        angles = np.deg2rad(-90.0 + 120.0 * np.arange(3))
        radii = np.ones(3)
    elif shape == "star":
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
    else:
        raise ValueError(f"{shape!r} is not a polygon shape")
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1)


def _polygon_signed_distance(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Exact signed distance to a simple polygon (negative inside), elementwise over points."""
    squared = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0)):
        ex, ey = bx - ax, by - ay
        rx, ry = px - ax, py - ay
        along = np.clip((rx * ex + ry * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        squared = np.minimum(squared, (rx - along * ex) ** 2 + (ry - along * ey) ** 2)
        crosses = (ay > py) != (by > py)
        safe_ey = ey if ey != 0 else 1.0
        inside ^= crosses & (px < ax + (py - ay) * ex / safe_ey)
    return np.where(inside, -1.0, 1.0) * np.sqrt(squared)


def _unit_signed_distance(shape: str, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return np.hypot(px, py) - 1.0
    return _polygon_signed_distance(px, py, _polygon_vertices(shape))


def shape_coverage(shape: str, cx, cy, radius, angle, resolution: int,
                   style: str = "plain") -> np.ndarray:
    """Anti-aliased coverage in [0, 1], shape (F, H, W), of a shape at F poses.

    Pose arrays (length F) are in normalised coordinates; the coverage of a pixel is a one-pixel
    wide linear ramp of the exact signed distance from its centre to the shape outline. An
    "outlined" shape covers only the band within OUTLINE_WIDTH of its outline.
    """
    _check_choice("style", style, STYLES)
    _check_choice("shape", shape, SHAPES)
    cx, cy, radius, angle = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1)
                             for v in (cx, cy, radius, angle))
    centres = (np.arange(resolution) + 0.5) / resolution
    dx, dy = centres[None, None, :] - cx, centres[None, :, None] - cy
    cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    local_x = (cos * dx + sin * dy) / radius      # rotate by -angle into the shape's frame
    local_y = (-sin * dx + cos * dy) / radius
    distance_pixels = _unit_signed_distance(shape, local_x, local_y) * radius * resolution
    coverage = np.clip(0.5 - distance_pixels, 0.0, 1.0)
    if style == "outlined":
        coverage = coverage - np.clip(0.5 - distance_pixels - OUTLINE_WIDTH * resolution, 0.0, 1.0)
    return coverage


def _check_render_args(resolution: int, num_frames: int) -> None:
    if int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}")


def _compose(spec: ClipSpec, coverage: np.ndarray) -> np.ndarray:
    background = np.asarray(BACKGROUND_RGB[spec.background], dtype=np.float64)
    foreground = np.asarray(COLOURS[spec.colour], dtype=np.float64)
    pixels = background + coverage[..., None] * (foreground - background)
    return np.rint(pixels).astype(np.uint8)


def _render_times(spec: ClipSpec, u: np.ndarray, resolution: int, style: str) -> np.ndarray:
    return _compose(spec, shape_coverage(spec.shape, *shape_poses(spec, u), int(resolution),
                                         style))


def render_clip(spec: ClipSpec, resolution: int = 32, num_frames: int = 16,
                style: str = "plain") -> np.ndarray:
    """Render a clip as uint8 (num_frames, resolution, resolution, 3) in `style` (STYLES)."""
    _check_render_args(resolution, num_frames)
    return _render_times(spec, clip_times(int(num_frames)), resolution, style)


def render_frame(spec: ClipSpec, frame_index: int, resolution: int = 32,
                 num_frames: int = 16, style: str = "plain") -> np.ndarray:
    """Render one frame, uint8 (resolution, resolution, 3); equals render_clip(...)[frame_index]."""
    _check_render_args(resolution, num_frames)
    if int(frame_index) != frame_index or not 0 <= frame_index < num_frames:
        raise ValueError(
            f"frame_index must be an integer in [0, {num_frames}), got {frame_index!r}")
    u = clip_times(int(num_frames))[int(frame_index):int(frame_index) + 1]
    return _render_times(spec, u, resolution, style)[0]


# ----------------------------------------------------------------------------- captions

SHAPE_WORDS = {"circle": ("circle", "ball", "disc", "dot"), "square": ("square", "box", "block"),
               "triangle": ("triangle",), "star": ("star",)}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
BACKGROUND_WORDS = {"black": ("black", "dark"), "white": ("white",)}
SPEED_ADVERBS = {"slowly": ("slowly", "gently", "leisurely"),
                 "quickly": ("quickly", "rapidly", "fast", "swiftly")}
SPEED_TAILS = {"slowly": (", slow", " at a slow pace", ", slowly"),
               "quickly": (", fast", " at high speed", ", quickly")}
# Each motion phrase is (head, tail); a speed adverb can go before, between or after them.
MOTION_PHRASES = {
    "left": (("moving", "to the left"), ("moving", "left"), ("drifting", "left"),
             ("sliding", "left"), ("travelling", "left"), ("heading", "left")),
    "right": (("moving", "to the right"), ("moving", "right"), ("drifting", "right"),
              ("sliding", "right"), ("travelling", "right"), ("heading", "right")),
    "up": (("moving", "up"), ("moving", "upwards"), ("rising", ""), ("drifting", "up"),
           ("floating", "upward"), ("going", "up")),
    "down": (("moving", "down"), ("moving", "downwards"), ("falling", ""), ("sinking", ""),
             ("drifting", "down"), ("going", "down")),
    "bouncing": (("bouncing", ""), ("bouncing", "up and down"), ("hopping", "")),
    "orbiting": (("orbiting", "the centre"), ("circling", "around the middle"),
                 ("going", "round in a loop"), ("orbiting", "")),
    "rotating": (("rotating", ""), ("spinning", ""), ("turning", "in place"),
                 ("spinning", "around")),
    "growing": (("growing", ""), ("getting", "bigger"), ("expanding", ""), ("growing", "larger")),
    "shrinking": (("shrinking", ""), ("getting", "smaller"), ("contracting", ""),
                  ("shrinking", "away")),
    "still": (("standing", "still"), ("staying", "still"), ("not", "moving"), ("motionless", ""),
              ("sitting", "still")),
}
BACKGROUND_PHRASES = (" on a {} background", ", {} backdrop", " against a {} background",
                      " on {}", ", {} background")
MAX_CAPTION_LENGTH = 90

# Parsing vocabulary: word -> value. Motion words are checked in MOTION_PRIORITY order so that
# e.g. "bouncing up and down" is read as bouncing, not as up or down.
_MOTION_WORDS = {
    "bouncing": ("bouncing", "bounces", "bounce", "hopping", "hops"),
    "orbiting": ("orbiting", "orbits", "orbit", "circling", "loop"),
    "rotating": ("rotating", "rotates", "spinning", "spins", "turning", "turns"),
    "growing": ("growing", "grows", "bigger", "expanding", "expands", "larger"),
    "shrinking": ("shrinking", "shrinks", "smaller", "contracting", "contracts"),
    "still": ("still", "motionless", "stationary", "static", "not"),
    "left": ("left", "leftwards"),
    "right": ("right", "rightwards"),
    "up": ("up", "upwards", "upward", "rising", "rises"),
    "down": ("down", "downwards", "downward", "falling", "falls", "sinking", "sinks"),
}
_SPEED_WORDS = {"slowly": ("slowly", "slow", "gently", "leisurely"),
                "quickly": ("quickly", "quick", "rapidly", "fast", "swiftly", "high")}


def _motion_clause(spec: ClipSpec, rng: np.random.Generator) -> tuple[str, str]:
    """Motion words with the speed worked in; returns (clause, text to append at the end)."""
    head, tail = _choose(rng, MOTION_PHRASES[spec.motion])
    if spec.speed is None:
        return " ".join(w for w in (head, tail) if w), ""
    placement = rng.integers(4)
    if placement == 3:
        return " ".join(w for w in (head, tail) if w), _choose(rng, SPEED_TAILS[spec.speed])
    adverb = _choose(rng, SPEED_ADVERBS[spec.speed])
    words = [(adverb, head, tail), (head, adverb, tail), (head, tail, adverb)][placement]
    return " ".join(w for w in words if w), ""


def _subject(spec: ClipSpec, rng: np.random.Generator, with_size: bool) -> str:
    article = _choose(rng, ("a ", "the ", "one ", ""))
    size = _choose(rng, SIZE_WORDS[spec.size]) + " " if with_size else ""
    return f"{article}{size}{spec.colour} {_choose(rng, SHAPE_WORDS[spec.shape])}"


def _caption_once(spec: ClipSpec, rng: np.random.Generator) -> str:
    subject = _subject(spec, rng, with_size=rng.random() < 0.7)
    clause, speed_tail = _motion_clause(spec, rng)
    background = ""
    if rng.random() < 0.7:
        word = _choose(rng, BACKGROUND_WORDS[spec.background])
        background = _choose(rng, BACKGROUND_PHRASES).format(word)
    if background and rng.random() < 0.25:
        return f"{background.lstrip(' ,')}, {subject} {clause}{speed_tail}"
    return f"{subject} {clause}{background}{speed_tail}"


def make_caption(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A caption with varied wording; always names colour, shape, motion and (if moving) speed."""
    for _ in range(8):
        caption = _caption_once(spec, rng)
        if len(caption) <= MAX_CAPTION_LENGTH:
            return caption
    return canonical_caption(spec)


_CANONICAL_MOTION = {"left": "moving {} to the left", "right": "moving {} to the right",
                     "up": "moving {} up", "down": "moving {} down", "bouncing": "bouncing {}",
                     "orbiting": "orbiting {} around the centre", "rotating": "rotating {}",
                     "growing": "growing {}", "shrinking": "shrinking {}",
                     "still": "standing still"}


def canonical_caption(spec: ClipSpec) -> str:
    """The one fixed wording, e.g. 'a large red circle moving quickly to the left on a black
    background'."""
    motion = _CANONICAL_MOTION[spec.motion].format(spec.speed)
    return f"a {spec.size} {spec.colour} {spec.shape} {motion} on a {spec.background} background"


def _invert(table: dict) -> dict[str, str]:
    return {word: value for value, words in table.items() for word in words}


_WORD_TO_ATTRIBUTE = {
    "colour": {name: name for name in COLOURS},
    "shape": _invert(SHAPE_WORDS) | {"circles": "circle", "squares": "square", "stars": "star"},
    "size": _invert(SIZE_WORDS) | {"huge": "large"},
    "background": _invert(BACKGROUND_WORDS),
    "speed": _invert(_SPEED_WORDS),
}


def _first_match(words: list[str], vocabulary: dict[str, str]) -> str | None:
    return next((vocabulary[w] for w in words if w in vocabulary), None)


def _parse_motion(words: list[str]) -> str | None:
    present = set(words)
    return next((motion for motion, vocab in _MOTION_WORDS.items() if present & set(vocab)), None)


def parse_caption(text: str) -> dict[str, str]:
    """Attributes a caption or prompt mentions: any of colour, shape, size, background, motion,
    speed (first mention wins; attributes not mentioned are absent)."""
    words = re.findall(r"[a-z]+", text.lower())
    found = {name: _first_match(words, vocab) for name, vocab in _WORD_TO_ATTRIBUTE.items()}
    found["motion"] = _parse_motion(words)
    return {name: value for name, value in found.items() if value is not None}


def unit_area(shape: str) -> float:
    """Area of a shape with circumradius 1 (the evaluator turns areas into sizes with it)."""
    _check_choice("shape", shape, SHAPES)
    if shape == "circle":
        return math.pi
    x, y = _polygon_vertices(shape).T
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def symmetry_order(shape: str) -> int:
    """Rotational symmetry order of a polygon shape (its orientation repeats every 360/n deg)."""
    _check_choice("shape", shape, SHAPES[1:])
    return len(_polygon_vertices(shape)) // (2 if shape == "star" else 1)


def vertex_base_angle(shape: str) -> float:
    """Direction (degrees, clockwise from +x) of the first vertex of a shape at angle 0."""
    x, y = _polygon_vertices(shape)[0]
    return math.degrees(math.atan2(y, x))

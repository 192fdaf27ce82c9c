"""Typed views of an ml-collections config: unknown or missing keys get a clear error.

Config files (configs/*.py) stay plain data; code reads them through these dataclasses. The
sections that belong to one package are typed there (`models.settings.ModelSettings`,
`diffusion.settings.DiffusionSettings`); `train.settings.parse_run_config` parses a whole config.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from lumiere_jax import checks
from lumiere_jax.names import DATA, FSDP, LOGICAL_AXES, TIME

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that names unknown keys or lacks required ones."""


def as_dict(section: Any) -> dict:
    """A config section (ConfigDict or dict) as a plain dict."""
    if hasattr(section, "to_dict"):
        return section.to_dict()
    if isinstance(section, dict):
        return dict(section)
    raise ConfigError(f"Expected a config section (ConfigDict or dict), got {type(section).__name__}.")


def from_config(cls: type[T], section: Any, where: str) -> T:
    """Builds dataclass `cls` from a config section; `where` names the section in errors."""
    values = as_dict(section)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in config.{where}; allowed keys: {sorted(fields)}.")
    missing = sorted(name for name, f in fields.items() if name not in values
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"Missing key(s) {missing} in config.{where}.")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid config.{where}: {error}") from error


def check_sections(config: Any, allowed: tuple[str, ...]) -> None:
    """Refuses top-level sections that no code reads (usually a typo)."""
    unknown = sorted(set(as_dict(config)) - set(allowed))
    if unknown:
        raise ConfigError(f"Unknown top-level config key(s) {unknown}; allowed: {sorted(allowed)}.")


DATA_SOURCES = ("shapes", "video_folder")


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which dataset to build and how to batch it.

    source "shapes" renders the shapes world (num_train, num_validation, num_heldout, style);
    "video_folder" cuts clips from the videos in `video_dir` captioned by the table `captions`
    (.csv or .jsonl; docs/data.md), resampled to `fps`, one clip every `clip_stride` frames (0:
    every num_frames, back to back), with a `validation_fraction` of the files held out.
    resolution and num_frames apply to both. `motions` (shapes only) keeps just the training
    clips of those motions (empty: every clip), e.g. a leg on the motions a model lacks.
    """
    resolution: int = 32
    num_frames: int = 16
    num_train: int = 20000
    num_validation: int = 512
    num_heldout: int = 512
    mode: str = "frames"
    batch_size: int = 32
    data_dir: str = ""
    worker_count: int = 0
    seed: int = 0
    style: str = "plain"  # the shapes world's render style (data.shapes.STYLES; checked there)
    source: str = "shapes"
    video_dir: str = ""
    captions: str = ""
    fps: float = 8.0
    clip_stride: int = 0
    validation_fraction: float = 0.0
    motions: tuple = ()

    def __post_init__(self):
        if self.mode not in ("frames", "clips"):
            raise ValueError(f"mode {self.mode!r} is not one of ('frames', 'clips')")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.source not in DATA_SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {DATA_SOURCES}")
        self._check_video_folder()
        if not isinstance(self.motions, (tuple, list)) or not all(
                isinstance(m, str) for m in self.motions):
            raise ValueError(f"motions must be a tuple of motion names, got {self.motions!r}")
        if self.motions and self.source != "shapes":
            raise ValueError("motions selects shapes-world clips; it needs source='shapes'")

    def _check_video_folder(self):
        named = [name for name in ("video_dir", "captions") if getattr(self, name)]
        if self.source != "video_folder":
            if named:
                raise ValueError(f"{' and '.join(named)} are read only with "
                                 f"source='video_folder' (source is {self.source!r}): set "
                                 f"source='video_folder', or leave them empty")
            return
        if len(named) < 2:
            raise ValueError("source='video_folder' needs video_dir (the folder of video files) "
                             "and captions (its caption table, .csv or .jsonl)")
        checks.settings(fps=self.fps)
        checks.number("clip_stride", self.clip_stride, 0, None, integer=True,
                      what="frames between clip starts; 0 = num_frames, clips back to back")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in [0, 1), got "
                             f"{self.validation_fraction}")


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    """AdamW with linear warmup and cosine decay, global-norm clipping and EMA."""
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    total_steps: int = 4000
    end_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.99
    clip_norm: float = 1.0
    ema_decay: float = 0.999

    def __post_init__(self):
        if self.total_steps < 1 or self.warmup_steps < 0 or self.warmup_steps >= self.total_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps and total_steps >= 1, got "
                             f"warmup_steps={self.warmup_steps}, total_steps={self.total_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


REMAT_POLICIES = ("none", "block", "level")
COMPUTE_DTYPES = ("float32", "bfloat16")
ATTENTION_KERNELS = ("auto", "xla", "cudnn")  # `jax.nn.dot_product_attention`: auto = jax picks


@dataclasses.dataclass(frozen=True)
class ComputeSettings:
    """Memory switches of a training run; all off by default (the results stay the same, or
    within bf16 rounding).

    remat: rematerialise the U-Net walk in the backward pass per "block" (res block, attention
      and the temporal layers at its site) or per "level"; "none" keeps every activation.
    dtype: "bfloat16" runs the model in bf16; parameters, gradients and optimizer state stay fp32.
    frozen_dtype: "bfloat16" stores the frozen weights (backbone, text encoder) in bf16: half
      their memory on every chip, and their all-gathers move half the bytes. The trained
      parameters, their EMA and the optimizer state stay fp32.
    grad_accum_steps: the global batch is split into this many micro-batches, whose gradients
      are averaged inside one step (the step, its randomness and its result are unchanged).
    temporal_attention_chunk: temporal self-attention handles at most this many pixel sequences
      at a time (0: all at once).
    attention: the kernel of every attention (`jax.nn.dot_product_attention`): "auto" (jax
      picks: the fused cuDNN kernel on a GPU where shapes and dtypes allow, XLA otherwise),
      "xla", or "cudnn" (GPU only; it needs bf16 compute).
    """
    remat: str = "none"
    dtype: str = "float32"
    frozen_dtype: str = "float32"
    grad_accum_steps: int = 1
    temporal_attention_chunk: int = 0
    attention: str = "auto"

    def __post_init__(self):
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {REMAT_POLICIES}, got {self.remat!r}")
        if self.dtype not in COMPUTE_DTYPES:
            raise ValueError(f"dtype must be one of {COMPUTE_DTYPES}, got {self.dtype!r}")
        if self.frozen_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"frozen_dtype must be one of {COMPUTE_DTYPES}, got "
                             f"{self.frozen_dtype!r}")
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if self.temporal_attention_chunk < 0:
            raise ValueError(f"temporal_attention_chunk must be >= 0 (0: off), got "
                             f"{self.temporal_attention_chunk}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got "
                             f"{self.attention!r}")


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
    """How often to save, how many to keep, and an optional export to start from.

    `init_from_partial`: False restores every weight of the model from `init_from` (the export
    must be of the same model). True restores the weights that the model and the export both
    have (same name and shape), keeps the model's own initialisation for the weights the export
    lacks (e.g. zero-initialised layers added to a trained STUNet) and leaves out the export's
    weights that the model lacks; both lists are printed. A weight that both have with
    different shapes is refused.
    """
    every_steps: int = 500
    max_to_keep: int = 3
    init_from: str = ""
    init_from_partial: bool = False


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """How often to write metrics.jsonl and the progress line, and the in-training evaluation:
    every `eval_every_steps` steps (0: never) the EMA weights sample the first `eval_num`
    validation prompts with `eval_steps` DDIM steps, and the evaluator's scores are logged
    (`eval_<attribute>`), with `train_minutes`, the wall time of the training steps alone."""
    every_steps: int = 50
    eval_every_steps: int = 0
    eval_num: int = 32
    eval_steps: int = 25
    eval_batch: int = 32

    def __post_init__(self):
        if self.every_steps < 1 or self.eval_every_steps < 0:
            raise ValueError(f"need every_steps >= 1 and eval_every_steps >= 0, got "
                             f"{self.every_steps} and {self.eval_every_steps}")
        if min(self.eval_num, self.eval_steps, self.eval_batch) < 1:
            raise ValueError("eval_num, eval_steps and eval_batch must be >= 1")


@dataclasses.dataclass(frozen=True)
class SampleSettings:
    """Sampler defaults for the CLI and evaluation."""
    steps: int = 50
    guidance: float = 3.0
    sampler: str = "ddim"
    dynamic_threshold: float = 0.995
    # Video models: the steps at t below this skip the temporal layers (the frozen 2D model
    # denoises each frame alone; diffusion.noise_bands); 0 = never.
    per_frame_below: float = 0.0
    # SR models: sampling starts from the low-res input enlarged bilinearly and noised to this
    # t (SDEdit); 1 = from pure noise.
    enlarged_start: float = 1.0

    def __post_init__(self):
        for name, meaning in (("per_frame_below", "0 = never"),
                              ("enlarged_start", "1 = from pure noise")):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (a noise level t; {meaning}), got "
                                 f"{value}")


@dataclasses.dataclass(frozen=True)
class MeshSettings:
    """Device mesh ('data', 'fsdp', 'time') and the table from logical weight axes to mesh axes.

    Axis sizes: -1 (at most one) takes the devices the others leave. `rules` maps each logical
    name (see `lumiere_jax.names.LOGICAL_AXES`) to a mesh axis or None (replicated); names
    left out stay replicated. On top of the table, with fsdp > 1 every weight and its optimizer
    state is also split over 'fsdp' along its largest dimension that 'fsdp' divides.
    """
    data: int = -1
    fsdp: int = 1
    time: int = 1
    rules: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        sizes = {DATA: self.data, FSDP: self.fsdp, TIME: self.time}
        bad = {name: size for name, size in sizes.items() if size != -1 and size < 1}
        if bad or list(sizes.values()).count(-1) > 1:
            raise ValueError(f"mesh axis sizes must be >= 1, or -1 for one axis (the remaining "
                             f"devices); got {sizes}")
        rules = as_dict(self.rules)
        unknown = sorted(set(rules) - set(LOGICAL_AXES))
        if unknown:
            raise ValueError(f"rules name unknown logical axes {unknown}; known: {list(LOGICAL_AXES)}")
        targets = {name: axis for name, axis in rules.items()
                   if axis is not None and axis not in sizes}
        if targets:
            raise ValueError(f"rules map to unknown mesh axes {targets}; allowed: "
                             f"{sorted(sizes)} or None")
        object.__setattr__(self, "rules", rules)

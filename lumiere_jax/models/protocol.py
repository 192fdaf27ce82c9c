"""The one small protocol every model kind declares, so callers never tell kinds apart by probing.

T2I (`models.t2i.TextToImage`) and the 2D super-resolution model (`models.sr.SuperResolution2D`)
are `DiffusionModel`s; the STUNet and the SSR (`models.stunet.STUNet` inflating either) are
`VideoModel`s, which they declare with `is_video = True`. The trainer, the train step, the samplers and the pipeline use nothing else.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol

import jax

from lumiere_jax.models.text_encoder import TextEncoder
from lumiere_jax.nn.frame_sharding import FrameSharding


class DiffusionModel(Protocol):
    """What the trainer, the samplers and the pipeline use of a model (T2I, STUNet, SSR)."""

    trainable: ClassVar[Any]   # nnx filter of the weights its training stage updates
    is_video: ClassVar[bool]   # inputs are clips (B, T, H, W, C), not images (B, H, W, C)
    text_encoder: TextEncoder  # the frozen, pretrained text encoder (its max_length: token length)

    @property
    def resolution(self) -> int:
        """Side of the images or frames it outputs."""

    def input_shape(self, batch: int, frames: int | None = None) -> tuple[int, ...]:
        """Shape of x_t for `batch` samples (of `frames` frames: video models only); refuses a
        clip length the model cannot take."""

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict[str, tuple]:
        """The inputs besides the text that `denoise` reads from the condition dict, by name and
        shape (e.g. the SSR model's low-resolution clip `low_res`); {} for none."""

    @property
    def self_conditioned(self) -> bool:
        """Whether `denoise` also reads an x0 estimate, cond["x0_estimate"] (x_t's shape; zeros
        for none): the train step and the samplers then supply it (self-conditioning)."""

    def encode_text(self, tokens: jax.Array) -> dict:
        """tokens (B, L) -> the condition dict that `denoise` reads."""

    def condition_on(self, cond: dict, clean: jax.Array, keys: jax.Array) -> dict:
        """Training: the condition plus the inputs of `conditioning_shapes`, derived from the
        clean batch; keys (B, 2) uint32: one random key per example (e.g. for augmentation)."""

    def prepare_conditions(self, conditions: dict, rng: jax.Array,
                           noise_aug: float | None = None) -> dict:
        """Sampling: the given inputs of `conditions` (model range) made ready for `denoise`,
        once (e.g. the SR models' noise augmentation to `noise_aug`)."""

    def enlarged_input(self, conditions: dict, resolution: int) -> jax.Array | None:
        """Sampling: the given low-res input (model range) enlarged to `resolution`, from which
        sampling may start instead of pure noise (the SR models); None for the other kinds."""

    def denoise(self, x_t: jax.Array, t: jax.Array, cond: dict) -> jax.Array:
        """The model output (v or eps) for noisy inputs x_t at times t (B,)."""


class VideoModel(DiffusionModel, Protocol):
    """A model whose inputs are clips: it checks clip lengths and can split frames over devices."""

    spatial: DiffusionModel  # the 2D model it inflates (its `kind`: "t2i", or "sr" for the SSR)

    def check_frame_count(self, frames: int, shards: int | None = None) -> None:
        """Refuses a clip length its temporal strides (and `shards` time shards) cannot divide."""

    @property
    def per_frame_inputs(self) -> tuple[str, ...]:
        """Names of the conditions with one entry per frame (e.g. the SSR's `low_res`): cut into
        the same temporal windows as the clip."""

    def denoise_per_frame(self, x_t: jax.Array, t: jax.Array, cond: dict) -> jax.Array:
        """`denoise` by the frozen 2D model alone, frame by frame (no temporal layers)."""

    def shard_frames(self, frame_sharding: FrameSharding) -> None:
        """Splits clips over `frame_sharding`'s time axis in every later call."""

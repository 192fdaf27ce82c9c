"""TFDS builder for the shapes world: clips rendered offline into uint8 ArrayRecord files.

Example i of a split is rendered from `example_seed(split, i)`, so a build is reproducible and a
smaller dataset is a prefix of a larger one. No TensorFlow is needed to build or read it.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from lumiere_jax.data import shapes
# DatasetBuildError is re-exported: `tfds_shapes.DatasetBuildError` is what its callers catch.
from lumiere_jax.data.tfds_build import DatasetBuildError, prepare_builder  # noqa: F401

# Seeds of different splits live in disjoint ranges: split k owns [k * stride, (k + 1) * stride).
SPLIT_SEED_STRIDE = 2**32
# Tags the caption's random stream; `spec_for_seed` tags its streams with the split index (0, 1, 2).
_CAPTION_STREAM = 1000
ATTRIBUTE_FEATURES = ("shape", "colour", "size", "background", "motion", "speed")


def example_seed(split: str, index: int) -> int:
    """The render seed of example `index` of `split` (disjoint between splits)."""
    if split not in shapes.SPLITS:
        raise ValueError(f"Unknown split {split!r}; allowed: {', '.join(shapes.SPLITS)}.")
    if not 0 <= index < SPLIT_SEED_STRIDE:
        raise ValueError(f"Example index must lie in [0, {SPLIT_SEED_STRIDE}), got {index}.")
    return shapes.SPLITS.index(split) * SPLIT_SEED_STRIDE + index


def caption_for_seed(seed: int, split: str) -> tuple[str, shapes.ClipSpec]:
    """(caption, spec) of the example with render seed `seed`: what the dataset stores, without
    rendering a frame."""
    spec = shapes.spec_for_seed(seed, split)
    return shapes.make_caption(spec, np.random.default_rng([seed, _CAPTION_STREAM])), spec


def render_example(seed: int, split: str, resolution: int, num_frames: int,
                   style: str = "plain") -> dict:
    """One dataset example (features as stored) for a render seed."""
    caption, spec = caption_for_seed(seed, split)
    attributes = spec.to_dict()
    example = {
            "frames": shapes.render_clip(spec, resolution=resolution, num_frames=num_frames,
                                         style=style),
            "caption": caption,
            "canonical_caption": shapes.canonical_caption(spec),
            "seed": np.int64(seed),
    }
    for name in ATTRIBUTE_FEATURES:
        value = attributes.get(name)
        example[name] = "" if value is None else str(value)
    return example


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
    """Clip size and per-split example counts of one shapes dataset."""

    resolution: int = 32
    num_frames: int = 16
    num_train: int = 20_000
    num_validation: int = 1_000
    num_heldout: int = 1_000
    style: str = "plain"

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "validation": self.num_validation, "heldout": self.num_heldout}


def make_builder_config(resolution: int = 32, num_frames: int = 16, num_train: int = 20_000,
                        num_validation: int = 1_000, num_heldout: int = 1_000,
                        style: str = "plain") -> ShapesConfig:
    """A config named after its sizes and style (e.g. `r32_f16_n20000_1000_1000`, with
    `_outlined` appended for that style), so builds never collide."""
    if style not in shapes.STYLES:
        raise ValueError(f"Unknown style {style!r}; allowed: {shapes.STYLES}.")
    sizes = {"resolution": resolution, "num_frames": num_frames, "num_train": num_train,
             "num_validation": num_validation, "num_heldout": num_heldout}
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return ShapesConfig(
            name=f"r{resolution}_f{num_frames}_n{num_train}_{num_validation}_{num_heldout}"
                 + ("" if style == "plain" else f"_{style}"),
            description=(f"{resolution}x{resolution} clips of {num_frames} frames; "
                         f"{num_train} train, {num_validation} validation, {num_heldout} held-out examples."),
            style=style, **{name: int(value) for name, value in sizes.items()})


class ShapesVideos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Procedural shapes videos with captions and attributes (see lumiere_jax.data.shapes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    # Nothing is downloaded, so there are no URL checksums to look up (the look-up would locate the
    # package through `importlib_resources`, which TFDS does not install).
    url_infos = None

    def __init__(self, *, config: ShapesConfig | None = None, **kwargs):
        if not isinstance(config, ShapesConfig):
            raise ValueError(f"ShapesVideos needs config=make_builder_config(...), got {config!r}.")
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        size, frames = self.builder_config.resolution, self.builder_config.num_frames
        features = {
                # Raw bytes: far faster to write than TFDS's default int64 list per pixel.
                "frames": tfds.features.Tensor(shape=(frames, size, size, 3), dtype=np.uint8,
                                               encoding=tfds.features.Encoding.BYTES),
                "caption": tfds.features.Text(),
                "canonical_caption": tfds.features.Text(),
                "seed": tfds.features.Scalar(dtype=np.int64),
        }
        features.update({name: tfds.features.Text() for name in ATTRIBUTE_FEATURES})
        return self.dataset_info_from_configs(
                description="Coloured shapes moving on plain backgrounds, with generated captions.",
                features=tfds.features.FeaturesDict(features),
                disable_shuffling=True,  # record i is example i; readers shuffle with grain
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is rendered, nothing is downloaded
        return {split: self._generate_examples(split, count)
                for split, count in self.builder_config.split_sizes().items()}

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        for index in range(count):
            seed = example_seed(split, index)
            yield index, render_example(seed, split, config.resolution, config.num_frames,
                                        config.style)


def prepare_shapes_dataset(data_dir, resolution: int = 32, num_frames: int = 16, num_train: int = 20_000,
                           num_validation: int = 1_000, num_heldout: int = 1_000,
                           style: str = "plain") -> ShapesVideos:
    """Builds the dataset under `data_dir` unless it is already there; returns its builder.

    TFDS writes into a temporary folder and renames it when complete, so a failed build leaves
    nothing that a later call could mistake for a finished dataset.
    """
    config = make_builder_config(resolution, num_frames, num_train, num_validation, num_heldout,
                                 style)
    data_dir = os.fspath(data_dir)
    return prepare_builder(
            lambda: ShapesVideos(config=config, data_dir=data_dir, file_format="array_record"),
            data_dir, f"the shapes dataset {config.name!r}")

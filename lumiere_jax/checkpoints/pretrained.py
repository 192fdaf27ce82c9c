"""The pretrained parts a model starts from: the frozen 2D backbone a STUNet inflates (a T2I
export; an SR export for the SSR), the frozen text encoder of the 2D models. All are exports
(`checkpoints.exported`) whose config must match the model's."""
from __future__ import annotations

import dataclasses

import jax
import orbax.checkpoint as ocp
from flax import nnx

from lumiere_jax.checkpoints.exported import CheckpointError, read_exported_config, restore_params
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import ModelSettings, parse_model_config
from lumiere_jax.models.text_encoder import TextEncoder, TextParam
from lumiere_jax.settings import ConfigError


def describe_mismatch(expected, found, section: str) -> list[str]:
    """`section.field: checkpoint has X, model has Y` for every differing dataclass field (but
    sampling defaults, fields marked `sampling_default`, which the weights do not depend on)."""
    return [f"{section}.{field.name}: checkpoint has {getattr(found, field.name)!r}, this model "
            f"has {getattr(expected, field.name)!r}"
            for field in dataclasses.fields(expected)
            if not field.metadata.get("sampling_default")
            and getattr(expected, field.name) != getattr(found, field.name)]


def exported_settings(export_dir: str, kind: str, what: str) -> ModelSettings:
    """The model settings of an export, refused unless of `kind`."""
    try:
        settings = parse_model_config(read_exported_config(export_dir).get("model", {}))
    except ConfigError as error:
        raise CheckpointError(f"{export_dir!r} has an unreadable config: {error}") from error
    if settings.kind != kind:
        raise CheckpointError(f"{export_dir!r} is a {settings.kind!r} checkpoint; {what}.")
    return settings


def load_backbone(model, export_dir: str) -> None:
    """Restores the pretrained part a video model declares (`model.backbone()`: the 2D model of a
    STUNet or SSR, the whole STUNet of a conditional STUNet) from an export of its kind."""
    backbone = model.backbone()
    found = exported_settings(export_dir, backbone.kind, f"this video model inflates an exported "
                              f"{backbone.kind!r} model")
    if found.temporal is not None:  # compared with the model's resolved temporal config
        found = dataclasses.replace(found, temporal=found.temporal.resolve(found.unet))
    mismatch = [line for name, config in backbone.configs.items()
                for line in describe_mismatch(config, getattr(found, name), name)]
    if mismatch:
        raise CheckpointError(
            f"Backbone {export_dir!r} does not fit this model: " + "; ".join(mismatch)
            + f". Set config.model.{'/'.join(backbone.configs)} to the backbone's.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            nnx.state(backbone.module, backbone.params))
    nnx.update(backbone.module, restore_params(export_dir, abstract))


def load_text_encoder(text_encoder: TextEncoder, export_dir: str) -> None:
    """Restores an exported pretrained text encoder (kind "text_encoder") into `text_encoder`;
    its sizes must equal this encoder's."""
    found = exported_settings(export_dir, "text_encoder",
                              "config.model.text_checkpoint needs an exported text encoder "
                              "(train one with configs/t5_shapes.py)")
    mismatch = describe_mismatch(text_encoder.config, found.text_encoder, "text_encoder")
    if mismatch:
        raise CheckpointError(f"Text encoder {export_dir!r} does not fit config.model.text_encoder: "
                              + "; ".join(mismatch))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(text_encoder, TextParam))
    nnx.update(text_encoder, restore_params(export_dir, abstract))


def load_pretrained(model, settings: ModelSettings) -> None:
    """Restores the pretrained parts `settings` names (backbone, text_checkpoint) into `model`."""
    if settings.backbone:
        load_backbone(model, settings.backbone)
    if settings.text_checkpoint:
        load_text_encoder(model.text_encoder, settings.text_checkpoint)


def build_pretrained(settings: ModelSettings, seed: int = 0):
    """`build_model` plus `load_pretrained`: the model a training run starts from."""
    model = build_model(settings, seed)
    load_pretrained(model, settings)
    return model

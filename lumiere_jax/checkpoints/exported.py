"""Exported model checkpoints: `<dir>/params` (Orbax) plus `<dir>/config.json`.

This is the format that ships in `lumiere_jax/weights/` and that the STUNet loads its frozen
backbone from. The config is stored without machine-specific paths (`paths.portable_config`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

from lumiere_jax.checkpoints.paths import portable_config
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config


LOG = logging.getLogger("lumiere_jax")
DEBUG_HINT = "set LUMIERE_JAX_LOG=debug for the library's details"


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete or does not fit the model."""


def unreadable(folder: str, what: str, todo: str, error: BaseException) -> CheckpointError:
    """The error for a checkpoint the libraries could not read: one line naming the folder,
    what is wrong and what to do; the libraries' own report goes to the debug log."""
    LOG.debug("Reading %s failed", folder, exc_info=error)
    return CheckpointError(f"Checkpoint {folder!r}: {what} ({type(error).__name__}). {todo} "
                           f"({DEBUG_HINT}).")


def sync_processes(name: str) -> None:
    """Waits for every process (a no-op with one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def save_exported(directory: str, params: nnx.State, config: dict, extra_files: dict | None = None):
    """Writes params and config atomically: a staging sibling folder renamed at the end.

    With several processes every one calls it (Orbax writes each one's shards of `params`);
    process 0 writes the rest and renames. Paths in `config` are made portable.
    """
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    staging = os.path.join(parent, f".{os.path.basename(directory)}.staging")
    primary = jax.process_index() == 0
    if primary:
        os.makedirs(parent, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
    sync_processes("lumiere_jax: export staging ready")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(os.path.join(staging, "params"), params)
        if primary:
            with open(os.path.join(staging, "config.json"), "w", encoding="utf-8") as f:
                json.dump(portable_config(config), f, indent=2, sort_keys=True)
            for name, text in (extra_files or {}).items():
                with open(os.path.join(staging, name), "w", encoding="utf-8") as f:
                    f.write(text)
            if os.path.exists(directory):
                shutil.rmtree(directory)
            os.replace(staging, directory)
    except BaseException:
        if primary:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    sync_processes("lumiere_jax: export written")


def read_exported_config(directory: str) -> ml_collections.ConfigDict:
    """The config an exported checkpoint was trained with; clear errors if it is not there."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"Checkpoint directory {directory!r} does not exist.")
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointError(
            f"{directory!r} is not a complete exported checkpoint: config.json is missing "
            f"(expected config.json and params/).")
    if not os.path.isdir(os.path.join(directory, "params")):
        raise CheckpointError(
            f"{directory!r} is not a complete exported checkpoint: params/ is missing "
            f"(expected config.json and params/).")
    with open(config_path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_params(directory: str, abstract_params: nnx.State) -> nnx.State:
    """Restores `<directory>/params` into the structure (and shardings) of `abstract_params`."""
    path = os.path.join(os.path.abspath(os.fspath(directory)), "params")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            return checkpointer.restore(path, abstract_params)
    except Exception as error:  # Orbax raises many types; say what it means for the user.
        raise unreadable(
            os.path.dirname(path), "its weights (params/) could not be read: they are damaged, "
            "incomplete, or were saved for another model than its config.json describes", "Export "
            "the model again, or give another checkpoint", error) from None


@dataclasses.dataclass(frozen=True)
class PartialRestore:
    """What `restore_matching_params` read: the restored weights (a subset of the target's),
    the target's weights that the export lacks (left as they were) and the export's weights
    that the target lacks (not read); names are dotted paths."""
    params: nnx.State
    kept_fresh: tuple[str, ...]
    left_out: tuple[str, ...]


def _key_name(key) -> str:
    return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))


def restore_matching_params(directory: str, abstract_params: nnx.State) -> PartialRestore:
    """Restores the weights of `<directory>/params` that `abstract_params` also has, by name,
    into their shapes, dtypes and shardings. A weight both have with different shapes is
    refused (the export and the model disagree on what that layer is)."""
    path = os.path.join(os.path.abspath(os.fspath(directory)), "params")
    read_exported_config(directory)  # the same clear errors for a missing or partial folder
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            saved_tree = checkpointer.metadata(path).item_metadata
    except Exception as error:  # Orbax raises many types; say what it means for the user.
        raise unreadable(directory, "its weights' index (params/) could not be read",
                         "Export the model again, or give another checkpoint", error) from None
    # Saved leaves sit one level below the variable ('value'); the target's paths end at it.
    saved = {tuple(_key_name(k) for k in key_path[:-1]): leaf.shape
             for key_path, leaf in jax.tree_util.tree_flatten_with_path(saved_tree)[0]}
    flat = [(tuple(str(k) for k in key_path), key_path, variable)
            for key_path, variable in abstract_params.flat_state()]
    wanted = {name: variable for name, _, variable in flat}
    dotted = ".".join
    clashes = [f"{dotted(name)} {tuple(saved[name])} in the export, "
               f"{tuple(variable.shape)} in the model"
               for name, variable in wanted.items()
               if name in saved and tuple(saved[name]) != tuple(variable.shape)]
    if clashes:
        raise CheckpointError(
            f"Checkpoint {directory!r}: {len(clashes)} weight(s) have other shapes than the "
            f"model's ({'; '.join(clashes[:3])}{'; ...' if len(clashes) > 3 else ''}). A partial "
            f"start restores the weights that both have with the same shapes; change the "
            f"config so that the shared layers keep their shapes, or start from scratch.")
    shared = [(key_path, variable) for name, key_path, variable in flat if name in saved]
    if not shared:
        raise CheckpointError(f"Checkpoint {directory!r} has none of the model's weights: it "
                              f"was exported from another kind of model.")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.State.from_flat_path(shared))
    try:
        with ocp.PyTreeCheckpointer() as checkpointer:
            restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
                item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                partial_restore=True))
    except Exception as error:
        raise unreadable(directory, "its weights (params/) could not be read: they are "
                         "damaged or incomplete", "Export the model again, or give another "
                         "checkpoint", error) from None
    return PartialRestore(
        params=restored,
        kept_fresh=tuple(sorted(dotted(n) for n in wanted if n not in saved)),
        left_out=tuple(sorted(dotted(n) for n in saved if n not in wanted)))


def load_exported(directory: str):
    """(model, config) from an exported checkpoint (its own weights only: the pretrained parts
    its config names are in the export already)."""
    config = read_exported_config(directory)
    model = build_model(parse_model_config(config.model))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(model, nnx.Param))
    nnx.update(model, restore_params(directory, abstract))
    return model, config


def export_spatial(video_dir: str, out_dir: str) -> None:
    """Writes the T2I model that a video model's export inflates (its frozen spatial weights:
    text encoder and U-Net) as a T2I export of its own, with the video export's diffusion
    settings, e.g. to fine-tune a style copy of exactly the weights the STUNet was built on."""
    model, config = load_exported(video_dir)
    if not model.is_video or model.spatial.kind != "t2i":
        raise CheckpointError(f"{video_dir!r} does not hold a video model inflated from a T2I "
                              f"model (a STUNet or a conditional STUNet).")
    values = config.to_dict()
    values["model"] = dict(kind="t2i", text_encoder=values["model"]["text_encoder"],
                           unet=values["model"]["unet"], text_checkpoint="")
    values["data"] = dict(values.get("data", {}), mode="frames")
    t2i = build_model(parse_model_config(values["model"]))
    nnx.update(t2i.text_encoder, nnx.state(model.spatial.text_encoder, nnx.Param))
    nnx.update(t2i.unet, nnx.state(model.spatial.unet, nnx.Param))
    save_exported(out_dir, nnx.state(t2i, nnx.Param), values)

"""Orbax checkpoints of a training run: train state, data iterator and JSON metadata."""
from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp

from lumiere_jax.checkpoints.exported import unreadable

ITEMS = ("state", "data", "metadata")


class RunCheckpoints:
    """`workdir/checkpoints/<step>/{state,data,metadata}` managed by an Orbax CheckpointManager."""

    def __init__(self, workdir: str, every_steps: int, max_to_keep: int, cleanup: bool = False):
        """`cleanup`: delete what a killed save left half-written (only the run that writes the
        checkpoints may; a reader would delete a save in progress)."""
        self.directory = os.path.join(os.path.abspath(os.fspath(workdir)), "checkpoints")
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=every_steps, max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=True, cleanup_tmp_directories=cleanup)
        self.manager = ocp.CheckpointManager(self.directory, item_names=ITEMS, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def due(self, step: int) -> bool:
        """Whether `save` at this step would write a checkpoint (the interval says so)."""
        return self.manager.should_save(step)

    def save(self, step: int, state, data_iterator, metadata: dict, force: bool = False) -> bool:
        """Saves asynchronously when the interval (or `force`) says so; returns whether it did."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            metadata=ocp.args.JsonSave(metadata))
        return self.manager.save(step, args=args, force=force)

    def restore(self, step: int, abstract_state, data_iterator):
        """Restores state into `abstract_state`'s structure and the iterator in place."""
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator),
            metadata=ocp.args.JsonRestore())
        restored = self._restore(step, args)
        return restored.state, restored.metadata

    def _restore(self, step: int, args):
        """`manager.restore`, with a damaged checkpoint reported as a one-line CheckpointError."""
        try:
            return self.manager.restore(step, args=args)
        except Exception as error:  # Orbax, TensorStore and grain raise many types
            folder = os.path.join(self.directory, str(step))
            raise unreadable(folder, "this training checkpoint could not be restored: it is "
                             "damaged, or was written by a run of another config", "Delete that "
                             "folder to resume from the run's previous checkpoint, or start the "
                             "run in a new workdir", error) from None

    def resume_latest(self, abstract_state, data_iterator):
        """(state, metadata) of the latest checkpoint, restored into `abstract_state` (arrays or
        ShapeDtypeStructs, shardings kept) with the iterator restored in place; (None, None)
        where the run has no checkpoint yet."""
        latest = self.latest_step()
        if latest is None:
            return None, None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        state, metadata = self.restore(latest, abstract, data_iterator)
        print(f"Resuming from step {latest} ({self.directory}).", flush=True)
        return state, dict(metadata)

    def restore_metadata(self, step: int) -> dict:
        return self._restore(step, ocp.args.Composite(metadata=ocp.args.JsonRestore())).metadata

    def restore_state(self, step: int, abstract_state):
        """Only the train state (e.g. to sample from a run's EMA weights)."""
        return self._restore(step, ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state))).state

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

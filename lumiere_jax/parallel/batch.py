"""Batch shardings and global batches assembled from each process's share."""
from __future__ import annotations

import math
import warnings

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax.names import BATCH_AXES, TIME
from lumiere_jax.nn.frame_sharding import batch_axes


def train_batch_shardings(mesh: Mesh, global_batch: int, clips: bool) -> dict:
    """Shardings of the train step's batch, `frames` (B, [T,] H, W, 3) and `tokens` (B, L): rows
    over data x fsdp (replicated, with a warning, when they do not divide the batch), the frames
    of clips over time."""
    rows = batch_axes(mesh, global_batch)
    devices = math.prod(mesh.shape[axis] for axis in BATCH_AXES)
    if rows is None and jax.process_count() > 1:
        raise ValueError(f"The global batch of {global_batch} must split over data x fsdp = "
                         f"{devices} devices when several processes each load part of it.")
    if rows is None:
        warnings.warn(f"A global batch of {global_batch} does not split over data x fsdp = "
                      f"{devices} devices: each of them computes the whole batch. Use a multiple "
                      f"of {devices} (config.data.batch_size is per process).", stacklevel=2)
    frames = P(rows, TIME) if clips else P(rows)
    return {"frames": NamedSharding(mesh, frames), "tokens": NamedSharding(mesh, P(rows))}


def check_whole_clips_per_process(mesh: Mesh) -> None:
    """Each process reads whole clips, so a clip's time shards must all be on one process."""
    processes = np.vectorize(lambda device: device.process_index)(mesh.devices)
    time = mesh.axis_names.index(TIME)
    if not np.all(processes == np.take(processes, [0], axis=time)):
        raise ValueError(
            f"The mesh's time axis ({mesh.shape[TIME]} shards) spans several processes, but "
            f"each process loads whole clips: use a time axis of at most "
            f"{jax.local_device_count()} (the devices of one process).")


def global_batch(local_batch: dict, shardings: dict) -> dict:
    """One global array per key from every process's rows: each process holds the rows its
    devices hold (with `jax.make_mesh` on CPU or GPU: process 0 the first block, and so on)."""
    return {key: jax.make_array_from_process_local_data(
                shardings[key], np.asarray(value),
                (value.shape[0] * jax.process_count(),) + tuple(value.shape[1:]))
            for key, value in local_batch.items()}

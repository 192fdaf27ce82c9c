"""Batch shardings and global batches assembled from each process's share."""
from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class RowGroup:
    """The processes whose devices hold the same rows of the global batch, and so load the same
    clips: group `index` of `count`. `shards` are the batch shards (blocks of rows over
    data x fsdp, data-major) its devices hold, of `total`; the group's local batch holds their
    rows in that order."""
    index: int = 0
    count: int = 1
    shards: tuple[int, ...] = (0,)
    total: int = 1

    def local_rows(self, start: int, stop: int, global_rows: int) -> slice:
        """Where global rows [start, stop) (a device's) lie in this group's local batch."""
        if self.count == 1:  # every process loads the whole global batch
            return slice(start, stop)
        per_shard = global_rows // self.total
        first, last = start // per_shard, (stop - 1) // per_shard
        needed = list(range(first, last + 1))
        if not set(needed) <= set(self.shards):
            raise ValueError(f"A device needs rows {start}..{stop} of the global batch (batch "
                             f"shards {needed}), but this process loaded shards "
                             f"{list(self.shards)}.")
        position = self.shards.index(first)
        if list(self.shards[position:position + len(needed)]) != needed:
            raise ValueError(f"Rows {start}..{stop} are not one block of this process's batch.")
        offset = position * per_shard - first * per_shard
        return slice(start + offset, stop + offset)


def row_group(mesh: Mesh, process_index: int | None = None) -> RowGroup:
    """This process's `RowGroup` on `mesh`.

    Each process loads whole clips and places only the frames its devices hold, so a clip's
    time shards may span processes: those processes form one group and read the same records
    (group `index` of `count` shards the dataset). Without time sharding across processes every
    process is its own group."""
    processes = np.vectorize(lambda device: device.process_index)(mesh.devices)
    return row_group_of(processes, mesh.axis_names,
                        jax.process_index() if process_index is None else process_index)


def row_group_of(processes: np.ndarray, axis_names, process_index: int) -> RowGroup:
    """`row_group` for a mesh given as the process index of each of its devices. Refuses
    layouts where two processes hold overlapping but different sets of batch shards, or groups
    of unequal size."""
    axes = [list(axis_names).index(axis) for axis in BATCH_AXES]
    sizes = [processes.shape[axis] for axis in axes]
    # The batch shard (block of rows) each device holds: data-major over data x fsdp.
    shard_of = np.zeros(processes.shape, int)
    for position in np.ndindex(processes.shape):
        shard_of[position] = np.ravel_multi_index([position[a] for a in axes], sizes)
    held = {int(p): tuple(sorted(set(shard_of[processes == p].tolist())))
            for p in np.unique(processes)}
    if process_index not in held:
        raise ValueError(f"Process {process_index} holds no device of the mesh.")
    groups = sorted(set(held.values()))
    total = math.prod(sizes)
    shards = [shard for group in groups for shard in group]
    if sorted(shards) != list(range(total)) or len({len(group) for group in groups}) > 1:
        raise ValueError(
            f"The processes hold batch shards {held} of {total} (data x fsdp): each process "
            f"must hold the same shards as the processes it shares any with, and every "
            f"process as many as the others.")
    mine = held[process_index]
    return RowGroup(index=groups.index(mine), count=len(groups), shards=mine, total=total)


def global_batch(local_batch: dict, shardings: dict, group: RowGroup = RowGroup()) -> dict:
    """One global array per key from every row group's local batch (`row_group`: `count`
    groups of n rows each), each device given its rows, and only its frames where the time
    axis splits a clip."""
    def assemble(value, sharding):
        value = np.asarray(value)
        shape = (value.shape[0] * group.count,) + value.shape[1:]

        def local_slice(global_index):
            start, stop, _ = global_index[0].indices(shape[0])
            return value[(group.local_rows(start, stop, shape[0]),) + tuple(global_index[1:])]

        return jax.make_array_from_callback(shape, sharding, local_slice)

    return {key: assemble(value, shardings[key]) for key, value in local_batch.items()}

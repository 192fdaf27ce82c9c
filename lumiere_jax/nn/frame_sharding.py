"""How a video's frames are laid out over devices, for the layers that mix frames.

`FrameSharding()` is the single-device layout; `FrameSharding(mesh)` splits the time axis of
videos (B, T, H, W, C) over the mesh axis 'time' (context parallelism). Temporal layers run the
same code in both cases: they hand the frame-mixing part to `map_frames`, which calls it on the
whole video, or on each device's block of frames inside `jax.shard_map`; in there `with_halo`
fetches the neighbouring frames a conv needs (`jax.lax.ppermute`; zeros at the clip's ends, as
'SAME' padding), `all_frames` gathers the short time axis for attention, and `first_frame` says
where this block starts in the clip. Everything else (per-frame spatial layers, norms, the
scale-shift) stays outside and is partitioned by the compiler.

The coarse levels of a long clip can hold too few frames to split (an 80-frame clip over 4
shards has 20 / 4 = 5 frames a shard at the third level, which a local halving cannot halve):
`for_frames` gives those levels the gathered layout, in which every time shard holds the whole
(short) clip, and the compiler moves the frames between the two layouts.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lumiere_jax.names import BATCH_AXES, TIME


def batch_axes(mesh: Mesh, batch: int) -> tuple[str, ...] | None:
    """The mesh axes a batch of `batch` rows splits over: data x fsdp if they divide it, else
    none (replicated)."""
    devices = mesh.shape[BATCH_AXES[0]] * mesh.shape[BATCH_AXES[1]]
    return BATCH_AXES if batch % devices == 0 else None


def split_problem(frames: int, shards: int, *, halo: int = 0, halving: bool = False) -> str | None:
    """Why `frames` frames cannot be split into `shards` blocks for a layer that exchanges `halo`
    frames with each neighbour and, if `halving`, keeps every other frame locally; None if they
    can."""
    per_shard = frames / shards
    if frames % shards:
        return f"{frames} / {shards} = {per_shard:g} frames per shard: not a whole number of frames"
    if per_shard < max(halo, 1):
        return (f"{frames} / {shards} = {per_shard:g} frames per shard: fewer than the "
                f"{max(halo, 1)} frame(s) a shard needs for a halo of {halo}")
    if halving and per_shard % 2:
        return f"{frames} / {shards} = {per_shard:g} frames per shard: an odd block cannot halve"
    return None


@dataclasses.dataclass(frozen=True)
class FrameSharding:
    """The mesh that splits frames over its 'time' axis (and batches over data x fsdp), or None.

    `gathered=True` is the same mesh with every frame of a clip on each of its time shards: the
    layout of U-Net levels whose frame count does not split over the shards (`for_frames`).
    """
    mesh: Mesh | None = None
    gathered: bool = False

    @property
    def mesh_shards(self) -> int:
        """Size of the mesh's time axis (1 without a mesh)."""
        return 1 if self.mesh is None else self.mesh.shape[TIME]

    @property
    def shards(self) -> int:
        """Blocks of frames a clip is split into."""
        return 1 if self.gathered else self.mesh_shards

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    def splits(self, frames: int, *, halo: int = 0, halving: bool = False) -> bool:
        """Whether `frames` frames split over the mesh's time shards for a layer that exchanges
        `halo` frames with each neighbour and, if `halving`, keeps every other frame locally."""
        return split_problem(frames, self.mesh_shards, halo=halo, halving=halving) is None

    def for_frames(self, frames: int, *, halo: int = 0, halving: bool = False) -> "FrameSharding":
        """This layout if `frames` frames split over its time shards (`splits`), else the
        gathered one (a short, coarse level runs whole on every time shard)."""
        if self.mesh_shards == 1 or self.splits(frames, halo=halo, halving=halving):
            return self
        return dataclasses.replace(self, gathered=True)

    def video_spec(self, batch: int) -> P:
        """Batch over data x fsdp (when they divide it), frames over time (unless gathered)."""
        return P(None if self.mesh is None else batch_axes(self.mesh, batch),
                 None if self.gathered else TIME)

    def constrain(self, video):
        """Keeps a video (B, T, ...) in this layout (a no-op without a time-sharded mesh)."""
        if self.mesh_shards == 1:
            return video
        return jax.lax.with_sharding_constraint(
            video, NamedSharding(self.mesh, self.video_spec(video.shape[0])))

    def map_frames(self, fn: Callable, video, *modules: nnx.Module):
        """fn(frames, *modules) on this layout's blocks of frames, video (B, T, ...) -> (B, T', ...).

        Unsharded, fn sees the whole video. Sharded, it runs once per block of T / shards frames
        (the modules' weights replicated into it) and its outputs are put back in order.
        """
        if not self.sharded:
            return fn(video, *modules)
        graphdefs, states = zip(*(nnx.split(module) for module in modules)) if modules else ((), ())

        def per_block(frames, module_states):
            return fn(frames, *(nnx.merge(g, s) for g, s in zip(graphdefs, module_states)))

        spec = self.video_spec(video.shape[0])
        return jax.shard_map(per_block, mesh=self.mesh, in_specs=(spec, P()), out_specs=spec)(
            video, tuple(states))

    # The methods below are for use inside `fn` of `map_frames`.

    def with_halo(self, frames, halo: int):
        """frames (B, t, ...) with `halo` frames before and after: the neighbouring blocks' frames,
        zeros beyond the clip's first and last frame."""
        if halo == 0:
            return frames
        if not self.sharded:
            padding = [(0, 0)] * frames.ndim
            padding[1] = (halo, halo)
            return jnp.pad(frames, padding)
        if halo > frames.shape[1]:
            raise ValueError(f"A halo of {halo} frames needs at least {halo} frames per time "
                             f"shard, got {frames.shape[1]}.")
        to_next = [(i, i + 1) for i in range(self.shards - 1)]
        to_previous = [(i + 1, i) for i in range(self.shards - 1)]
        # ppermute gives zeros to the shard that nobody sends to: the clip's ends.
        before = jax.lax.ppermute(frames[:, -halo:], TIME, to_next)
        after = jax.lax.ppermute(frames[:, :halo], TIME, to_previous)
        return jnp.concatenate([before, frames, after], axis=1)

    def all_frames(self, frames):
        """frames (B, t, ...) of this block -> (B, T, ...) of the whole clip."""
        if not self.sharded:
            return frames
        return jax.lax.all_gather(frames, TIME, axis=1, tiled=True)

    def first_frame(self, frames_per_block: int):
        """Index in the clip of this block's first frame."""
        if not self.sharded:
            return 0
        return jax.lax.axis_index(TIME) * frames_per_block


UNSHARDED = FrameSharding()

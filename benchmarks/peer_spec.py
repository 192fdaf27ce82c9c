"""What the peer race (`benchmarks/peer_race.py`) compares: the two matched sizes, and the record
each contestant hands the race (its parameter counts and its timed calls)."""
from __future__ import annotations

import dataclasses
from typing import Callable

# Which weights a contestant's train step updates.
TEMPORAL = "temporal"  # the temporal layers only (the backbone frozen): how the STUNet trains
ALL = "all"            # every weight of the video U-Net (any text encoder stays frozen)


@dataclasses.dataclass(frozen=True)
class RaceSize:
    """One matched video U-Net size: the clip batch and the U-Net's widths and layout.

    Every level but the coarsest halves space (and time); spatial and temporal attention sit at
    the coarsest level (and the middle), temporal convs at every finer level.
    """
    name: str
    batch: int             # clips per step
    frames: int            # frames per clip
    resolution: int        # frame side, pixels
    base_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int = 2
    num_heads: int = 4     # spatial and temporal attention heads, all levels
    text_width: int = 128  # width of the text tokens every model reads (ours: its text encoder's)
    text_length: int = 32  # text tokens per clip

    def __post_init__(self):
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.resolution % factor:
            raise ValueError(f"Size {self.name!r}: resolution {self.resolution} cannot be halved "
                             f"{len(self.channel_mult) - 1} times.")
        if self.frames % factor:
            raise ValueError(f"Size {self.name!r}: {self.frames} frames cannot be halved "
                             f"{len(self.channel_mult) - 1} times: use a multiple of {factor}.")
        if self.widths[-1] % self.num_heads:
            raise ValueError(f"Size {self.name!r}: {self.num_heads} heads do not divide the "
                             f"coarsest width {self.widths[-1]}.")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of each level, finest first."""
        return tuple(self.base_channels * m for m in self.channel_mult)

    @property
    def levels(self) -> int:
        return len(self.channel_mult)

    @property
    def coarsest_resolution(self) -> int:
        """Side of the coarsest level's feature maps (where attention sits)."""
        return self.resolution // 2 ** (self.levels - 1)

    @property
    def head_dim(self) -> int:
        """Width of one attention head at the coarsest level."""
        return self.widths[-1] // self.num_heads

    def with_clips(self, batch: int | None = None, frames: int | None = None) -> "RaceSize":
        """This size with another clip batch or clip length (e.g. a quick check); widths kept."""
        return dataclasses.replace(self, batch=batch or self.batch, frames=frames or self.frames)


SIZES = {
    "tiny": RaceSize("tiny", batch=4, frames=16, resolution=32, base_channels=64,
                     channel_mult=(1, 2, 4)),
    "small": RaceSize("small", batch=2, frames=16, resolution=64, base_channels=96,
                      channel_mult=(1, 2, 4, 4)),
}


@dataclasses.dataclass(frozen=True)
class Contestant:
    """One model in the race. `forward()` and `train_step()` each run one call to completion
    (forward None: timed under another contestant of the same architecture). `params`: weights
    of the video U-Net (no text encoder); `trainable`: those its train step updates;
    `compile_s`: the ahead-of-time compile of its train step, where there is one."""
    name: str
    framework: str
    trains: str
    params: int
    trainable: int
    forward: Callable[[], None] | None
    train_step: Callable[[], None]
    compile_s: float | None = None
    notes: str = ""

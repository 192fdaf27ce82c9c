"""The per-frame text-to-image baseline of video FVD: a clip made by sampling each frame on its
own with a text-to-image model (the same prompt, independent noise per frame), i.e. what a video
model adds over its image backbone is temporal coherence. `PerFrameT2I` samples like a video
pipeline, so `evaluate_video` scores it as it scores a STUNet.
"""
from __future__ import annotations

import numpy as np
from einops import rearrange

DEFAULT_FRAMES = 16   # the shapes world's clip length


class PerFrameT2I:
    """Wraps a text-to-image sampler (`.sample(prompts, seed=..., **settings)` -> uint8 images
    (N, H, W, 3), e.g. a T2I `LumierePipeline`) as a clip sampler: `.sample(prompts, frames=T)`
    -> uint8 clips (N, T, H, W, 3), the T frames of a clip drawn in one batch, so each frame has
    its own noise."""

    is_video = True

    def __init__(self, t2i, frames: int = DEFAULT_FRAMES):
        if getattr(t2i, "is_video", False):
            raise ValueError("PerFrameT2I needs a text-to-image model; this is a video model.")
        if int(frames) != frames or frames < 1:
            raise ValueError(f"frames must be a positive integer, got {frames!r}.")
        self.t2i, self.default_frames = t2i, int(frames)

    @property
    def resolution(self) -> int:
        return self.t2i.resolution

    def sample(self, prompts, *, seed: int = 0, frames: int | None = None,
               **settings) -> np.ndarray:
        """One clip per prompt, each frame an independent T2I sample of that prompt."""
        frames = self.default_frames if frames is None else int(frames)
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}.")
        repeated = [prompt for prompt in prompts for _ in range(frames)]
        images = np.asarray(self.t2i.sample(repeated, seed=seed, **settings))
        return rearrange(images, "(n t) h w c -> n t h w c", t=frames)

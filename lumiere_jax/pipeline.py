"""What users, notebooks and the CLI call: load shipped or trained models and sample from them.

>>> from lumiere_jax.pipeline import LumierePipeline, save_video
>>> pipe = LumierePipeline.from_pretrained("shapes-t2v")
>>> video = pipe("a large red circle moving quickly to the left on a black background",
...              num_inference_steps=4)
>>> video.frames.shape, video.frames.dtype
((1, 16, 32, 32, 3), dtype('uint8'))
>>> save_video(video.frames, os.path.join(tempfile.mkdtemp(), "circle.mp4"), fps=8)

The applications are methods of a pipeline (`image_to_video`, `inpaint`, `cinemagraph` with the
conditional STUNet, "shapes-i2v"; `stylize`, SDEdit, with any text-to-video STUNet, e.g. one
blended with a style by `with_style`), and functions importable from here too.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile  # noqa: F401 (the module docstring's example)
import time

import numpy as np
from flax import nnx

from lumiere_jax.checkpoints.exported import CheckpointError, load_exported
from lumiere_jax.applications.edit import (cinemagraph, image_to_video, inpaint,  # noqa: F401
                                           stylize_video)
from lumiere_jax.applications.style import check_alpha, interpolate_weights
from lumiere_jax.checkpoints.paths import WEIGHTS_DIR
from lumiere_jax.checkpoints.pretrained import describe_mismatch, exported_settings
from lumiere_jax.data import video_io
from lumiere_jax.data.video_io import xt_slice  # noqa: F401 (part of the user API)
from lumiere_jax.diffusion.model_sampling import ModelSampler
from lumiere_jax.train.loop import load_run_ema
from lumiere_jax.text.tokenizer import check_prompts
from lumiere_jax.train.settings import parse_run_config

SHIPPED = {"t2i": os.path.join(WEIGHTS_DIR, "t2i_shapes"),
           "stunet": os.path.join(WEIGHTS_DIR, "stunet_shapes"),
           "sr": os.path.join(WEIGHTS_DIR, "sr_shapes"),
           "ssr": os.path.join(WEIGHTS_DIR, "ssr_shapes"),
           "conditional": os.path.join(WEIGHTS_DIR, "conditional_shapes")}


# The names `from_pretrained` knows -> the shipped model (a key of SHIPPED).
SHIPPED_NAMES = {"shapes-t2v": "stunet", "shapes-t2i": "t2i", "shapes-ssr": "ssr",
                 "shapes-i2v": "conditional", "shapes-sr": "sr"}


def shipped_checkpoint(name: str) -> str:
    """Path of a model shipped inside the package."""
    present = sorted(key for key, path in SHIPPED.items() if os.path.isdir(path))
    if name not in present:
        raise CheckpointError(f"No shipped model {name!r}; shipped: {present}.")
    return SHIPPED[name]


def resolve_checkpoint(path: str) -> str:
    """An export dir as given, or a training workdir's `export/` subfolder."""
    path = os.fspath(path)
    if os.path.isdir(os.path.join(path, "export")) and not os.path.isfile(os.path.join(path, "config.json")):
        return os.path.join(path, "export")
    return path


@dataclasses.dataclass(frozen=True)
class Generation:
    """What calling a pipeline returns: `frames` (N, T, H, W, 3) uint8 clips from a video
    model, or `images` (N, H, W, 3) uint8 from an image model; `base_frames` holds the base
    clips when an SSR stage lifted them; `seconds` the wall time."""
    frames: np.ndarray | None = None
    images: np.ndarray | None = None
    base_frames: np.ndarray | None = None
    seconds: float = 0.0


def save_video(frames, path, fps: float = 16.0) -> None:
    """Writes a clip (T, H, W, 3) or clips (N, T, H, W, 3) (tiled side by side) of uint8
    frames as .mp4 or .gif; a failed write leaves nothing behind."""
    frames = np.asarray(frames)
    if frames.ndim == 5:
        frames = frames[0] if frames.shape[0] == 1 else video_io.image_grid(frames)
    video_io.write_video(path, frames, fps=fps)


class LumierePipeline(ModelSampler):
    """A loaded model of any kind (T2I, STUNet, SSR) with its config: prompts (and, for the SSR
    model, low-resolution clips) -> uint8 images or clips (call it, or `sample`: see
    `ModelSampler`)."""

    def __init__(self, model, config):
        self.config = config
        run = parse_run_config(config)
        graphdef, state = nnx.split(model)
        super().__init__(graphdef, state, model, run.diffusion, run.sample, run.data.num_frames)

    @classmethod
    def from_pretrained(cls, name_or_path: str = "shapes-t2v") -> "LumierePipeline":
        """A shipped model by name (`SHIPPED_NAMES`: "shapes-t2v", "shapes-t2i", "shapes-ssr",
        "shapes-i2v", "shapes-sr"), or an exported checkpoint / training workdir by path.

        >>> LumierePipeline.from_pretrained("shapes-t2i").resolution
        32
        """
        if name_or_path in SHIPPED_NAMES:
            return cls.from_checkpoint(default=SHIPPED_NAMES[name_or_path])
        if not isinstance(name_or_path, (str, os.PathLike)) or not os.path.isdir(name_or_path):
            raise CheckpointError(f"{name_or_path!r} is neither a shipped model "
                                  f"({', '.join(SHIPPED_NAMES)}) nor a checkpoint folder.")
        return cls.from_checkpoint(name_or_path)

    def __call__(self, prompt, *, num_frames: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 seed: int = 0, sampler: str | None = None, ssr=None,
                 progress: bool = False) -> Generation:
        """Samples one image or clip per prompt (a string or a list of them). `ssr`: lift the
        clips with an SSR stage (True = the shipped one, or a path, or an SSR pipeline).
        Defaults come from the model's config (steps, guidance, sampler, clip length)."""
        prompts = check_prompts(prompt)
        start = time.perf_counter()
        settings = dict(seed=seed, steps=num_inference_steps, guidance=guidance_scale,
                        sampler=sampler, progress=progress)
        if not self.is_video:
            if num_frames is not None or ssr:
                raise ValueError("num_frames and ssr are for video models; this is an image "
                                 "model.")
            images = self.sample(prompts, **settings)
            return Generation(images=images, seconds=time.perf_counter() - start)
        if not ssr:
            clips = self.sample(prompts, frames=num_frames, **settings)
            return Generation(frames=clips, seconds=time.perf_counter() - start)
        ssr = ssr if isinstance(ssr, ModelSampler) else type(self).from_pretrained(
            "shapes-ssr" if ssr is True else ssr)
        base, lifted = CascadePipeline(self, ssr).sample(prompts, frames=num_frames, **settings)
        return Generation(frames=lifted, base_frames=base, seconds=time.perf_counter() - start)

    def image_to_video(self, image, prompt: str, **settings) -> np.ndarray:
        """A clip (T, H, W, 3) that starts at `image` (H, W, 3) uint8 (the conditional STUNet,
        "shapes-i2v"; `settings` as `applications.edit.image_to_video`)."""
        return image_to_video(self, image, prompt, **settings)

    def inpaint(self, video, mask, prompt: str, **settings) -> np.ndarray:
        """`video` (T, H, W, 3) with the white region of `mask` regenerated ("shapes-i2v")."""
        return inpaint(self, video, mask, prompt, **settings)

    def cinemagraph(self, image, mask, prompt: str, **settings) -> np.ndarray:
        """A clip of `image` in which only the mask's white region moves ("shapes-i2v")."""
        return cinemagraph(self, image, mask, prompt, **settings)

    def stylize(self, video, prompt: str, strength: float, **settings) -> np.ndarray:
        """SDEdit: `video` noised to `strength` in [0, 1] and denoised by this text-to-video
        model (e.g. one blended with a style by `with_style`)."""
        return stylize_video(self, video, prompt, strength, **settings)

    def with_style(self, style_checkpoint: str, alpha: float) -> "LumierePipeline":
        """A copy whose spatial U-Net weights are alpha * W_style + (1 - alpha) * W (the T2I
        export `style_checkpoint`, fine-tuned on a style; its text encoder and U-Net configs must
        equal this model's); temporal layers, text encoder and input channels are kept.

        >>> styled = LumierePipeline.from_checkpoint(default="stunet").with_style(
        ...     "lumiere_jax/weights/t2i_outlined_shapes", 0.75)  # doctest: +SKIP
        """
        alpha = check_alpha(alpha)
        if not self.model.is_video or self.model.spatial.kind != "t2i":
            raise ValueError("Style weights blend into a video model that inflates a T2I "
                             "model (a STUNet or a conditional STUNet).")
        style = load_style_unet(resolve_checkpoint(style_checkpoint), self.model.spatial)
        model = nnx.clone(self.model)
        unet = nnx.state(model.spatial.unet, nnx.Param)
        nnx.update(model.spatial.unet, interpolate_weights(unet, style, alpha))
        return type(self)(model, self.config)

    @classmethod
    def from_checkpoint(cls, path: str | None = None, default: str = "t2i") -> "LumierePipeline":
        """Loads an exported checkpoint (default: the shipped model named `default`), or the EMA
        weights of a training workdir's latest checkpoint when it has no export yet."""
        path = resolve_checkpoint(path) if path else shipped_checkpoint(default)
        if os.path.isdir(os.path.join(path, "checkpoints")):
            return cls(*load_run_ema(path))
        model, config = load_exported(path)
        return cls(model, config)


def load_style_unet(style_dir: str, spatial) -> nnx.State:
    """The U-Net weights of a T2I export fine-tuned on a style, refused unless its text encoder
    and U-Net configs equal `spatial`'s (the T2I model a video model inflates)."""
    found = exported_settings(style_dir, "t2i", "a style checkpoint is an exported T2I model "
                              "fine-tuned on a style (configs/t2i_style_shapes.py)")
    mismatch = [line for name in ("text_encoder", "unet")
                for line in describe_mismatch(getattr(spatial, name).config,
                                              getattr(found, name), name)]
    if mismatch:
        raise CheckpointError(f"Style checkpoint {style_dir!r} does not fit this model: "
                              + "; ".join(mismatch) + ".")
    style, _ = load_exported(style_dir)
    return nnx.state(style.unet, nnx.Param)


def low_res_side(pipeline: ModelSampler) -> int | None:
    """Side of the low-res clips a super-resolution video model lifts; None for other models."""
    shape = pipeline.model.conditioning_shapes(1, 1 if pipeline.is_video else None)
    return shape["low_res"][-2] if pipeline.is_video and "low_res" in shape else None


class CascadePipeline:
    """Text -> base clip (a video model) -> full-resolution clip (an SSR model over temporal
    windows of the base clip, averaged at every step: MultiDiffusion). One call, two stages,
    a progress bar each."""

    def __init__(self, base: ModelSampler, ssr: ModelSampler):
        if not base.is_video or low_res_side(base) is not None:
            raise ValueError("The cascade's base stage must be a text-to-video model (a STUNet).")
        side = low_res_side(ssr)
        if side is None:
            raise ValueError("The cascade's second stage must be a video super-resolution (SSR) "
                             "model.")
        if side != base.resolution:
            raise ValueError(f"The SSR lifts {side} px clips, the base model makes "
                             f"{base.resolution} px ones.")
        self.base, self.ssr = base, ssr

    @property
    def resolution(self) -> int:
        return self.ssr.resolution

    def upscale(self, prompts, low_res: np.ndarray, *, seed: int = 0, steps: int | None = None,
                window: int | None = None, stride: int | None = None,
                noise_aug: float | None = None, window_chunk: int = 0,
                progress: bool = False, enlarged_start: float | None = None) -> np.ndarray:
        """The SSR stage alone: uint8 clips (N, T, h, w, 3) -> (N, T, H, W, 3). The window
        defaults to the SSR's training length (the whole clip when shorter), the stride to half
        of it; `window_chunk` windows are denoised at a time (0 = all)."""
        return upscale(self.ssr, prompts, low_res, seed=seed, steps=steps, window=window,
                       stride=stride, noise_aug=noise_aug, window_chunk=window_chunk,
                       progress=progress, enlarged_start=enlarged_start)

    def sample(self, prompts, *, seed: int = 0, frames: int | None = None,
               ssr_steps: int | None = None, window: int | None = None,
               stride: int | None = None, noise_aug: float | None = None,
               window_chunk: int = 0, progress: bool = False,
               enlarged_start: float | None = None,
               **base_settings) -> tuple[np.ndarray, np.ndarray]:
        """(base clips, SSR clips) for the prompts; `base_settings` (steps, guidance, sampler)
        go to the base stage."""
        base = self.base.sample(prompts, seed=seed, frames=frames, progress=progress,
                                **base_settings)
        return base, self.upscale(prompts, base, seed=seed, steps=ssr_steps, window=window,
                                  stride=stride, noise_aug=noise_aug,
                                  window_chunk=window_chunk, progress=progress,
                                  enlarged_start=enlarged_start)


def upscale(ssr: ModelSampler, prompts, low_res: np.ndarray, *, seed: int = 0,
            steps: int | None = None, window: int | None = None, stride: int | None = None,
            noise_aug: float | None = None, window_chunk: int = 0,
            progress: bool = False, enlarged_start: float | None = None) -> np.ndarray:
    """An SSR model on uint8 low-res clips (N, T, h, w, 3) -> (N, T, H, W, 3), over temporal
    windows (default: the SSR's training length, stride half of it; the whole clip when it is
    no longer), `window_chunk` of them denoised at a time (0 = all in one vmap). Prompts may be
    "" (the null prompt)."""
    side = low_res_side(ssr)
    if side is None:
        raise ValueError("This checkpoint is not a video super-resolution (SSR) model.")
    low_res = np.asarray(low_res)
    if low_res.ndim != 5 or low_res.shape[2:] != (side, side, 3):
        raise ValueError(f"The SSR lifts clips of {side}x{side} RGB frames, (N, T, {side}, "
                         f"{side}, 3); got shape {low_res.shape}.")
    frames = low_res.shape[1]
    if window is None and frames > ssr.default_frames:
        window = ssr.default_frames
    return ssr.sample(prompts, seed=seed, steps=steps, frames=frames, progress=progress,
                      conditions={"low_res": low_res}, noise_aug=noise_aug, window=window,
                      stride=stride, window_chunk=window_chunk, allow_empty=True,
                      enlarged_start=enlarged_start)

"""The applications as functions of a loaded model (a `diffusion.model_sampling.ModelSampler`, e.g. a `LumierePipeline`):
image-to-video, inpainting and cinemagraphs with the conditional STUNet, and SDEdit video
stylization with any text-to-video model. Inputs and outputs are uint8 arrays."""
from __future__ import annotations

import numpy as np

from lumiere_jax.applications import inputs
from lumiere_jax.models.conditional import KNOWN_MASK, KNOWN_VIDEO


def check_conditional(pipeline) -> None:
    """Refuses a model that does not read <C, M> (a plain STUNet, an SSR, a T2I model)."""
    shapes = pipeline.model.conditioning_shapes(1, 1) if pipeline.is_video else {}
    if KNOWN_VIDEO not in shapes:
        raise ValueError("This needs the conditional STUNet (kind 'conditional_stunet', trained "
                         "with configs/conditional_shapes.py); the checkpoint holds another kind.")


def check_text_to_video(pipeline) -> None:
    """Refuses a model that is not a plain text-to-video STUNet."""
    if not pipeline.is_video or pipeline.model.conditioning_shapes(1, 1):
        raise ValueError("SDEdit stylization needs a text-to-video STUNet; the checkpoint holds "
                         "another kind.")


def generate_conditioned(pipeline, prompts, conditions: dict, *, keep_known: bool = True,
                         seed: int = 0, **sample_settings) -> np.ndarray:
    """Clips (N, T, H, W, 3) uint8 for prompts and uint8 <C, M> `conditions` (`known_video`
    (N, T, H, W, 3), `known_mask` (N, T, H, W, 1), 255 = known). With `keep_known` the known
    pixels are copied into the result (the model only conditions on them); else the model's own
    pixels are returned everywhere."""
    check_conditional(pipeline)
    frames = conditions[KNOWN_VIDEO].shape[1]
    clips = pipeline.sample(prompts, seed=seed, frames=frames, conditions=conditions,
                           **sample_settings)
    if keep_known:
        clips = np.where(conditions[KNOWN_MASK] > 0, conditions[KNOWN_VIDEO], clips)
    return clips


def image_to_video(pipeline, image, prompt: str, *, frames: int | None = None,
                   **settings) -> np.ndarray:
    """A clip (T, H, W, 3) that starts at `image` (H, W, 3) and follows the prompt.

    >>> clip = image_to_video(pipeline, video_io.read_image("red.png"),
    ...                       "a red circle moving to the left")  # doctest: +SKIP
    """
    check_conditional(pipeline)
    frames = int(frames or pipeline.default_frames)
    pipeline.model.check_frame_count(frames)
    conditions = inputs.image_to_video_conditions(image, frames, pipeline.resolution)
    return generate_conditioned(pipeline, [prompt], conditions, **settings)[0]


def inpaint(pipeline, video, mask, prompt: str, **settings) -> np.ndarray:
    """`video` (T, H, W, 3) with the white region of `mask` (an image, or a video of T frames)
    regenerated to follow the prompt.

    >>> clip = inpaint(pipeline, video_io.read_video("in.mp4"), video_io.read_image("box.png"),
    ...                "a blue square moving up")  # doctest: +SKIP
    """
    check_conditional(pipeline)
    video = np.asarray(video)
    if video.ndim == 4:
        pipeline.model.check_frame_count(video.shape[0])
    conditions = inputs.inpainting_conditions(video, mask, pipeline.resolution)
    return generate_conditioned(pipeline, [prompt], conditions, **settings)[0]


def cinemagraph(pipeline, image, mask, prompt: str, *, frames: int | None = None,
                **settings) -> np.ndarray:
    """A clip of `image` (H, W, 3) in which only the mask's white region moves, as the prompt says.

    >>> clip = cinemagraph(pipeline, video_io.read_image("still.png"),
    ...                    video_io.read_image("region.png"), "a green star rotating")  # doctest: +SKIP
    """
    check_conditional(pipeline)
    frames = int(frames or pipeline.default_frames)
    pipeline.model.check_frame_count(frames)
    conditions = inputs.cinemagraph_conditions(image, mask, frames, pipeline.resolution)
    return generate_conditioned(pipeline, [prompt], conditions, **settings)[0]


def stylize_video(pipeline, video, prompt: str, strength: float, **settings) -> np.ndarray:
    """SDEdit: `video` (T, H, W, 3) noised to time `strength` in [0, 1] and denoised by the
    (possibly stylized) text-to-video model; 0 returns the video, 1 ignores it.

    >>> out = stylize_video(pipeline.with_style("style_export", 0.75),
    ...                     video_io.read_video("in.mp4"), "a red circle", 0.6)  # doctest: +SKIP
    """
    check_text_to_video(pipeline)
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"The SDEdit strength must be in [0, 1], got {strength}.")
    video = inputs.fit_video(video, pipeline.resolution)
    pipeline.model.check_frame_count(video.shape[0])
    return pipeline.sample([prompt], frames=video.shape[0], start=video[None],
                          strength=float(strength), **settings)[0]

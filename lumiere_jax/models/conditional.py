"""Lumiere's conditional STUNet: the text-to-video STUNet reading <J, C, M> (paper section 4.2).

Its input is the channel concatenation of the noisy clip J (3), a conditioning clip C (3: known
pixels, 0 elsewhere) and a mask M (1: +1 known, -1 generated), so its first conv is widened from
3 to 7 input channels. The widened conv is kept as the T2I's own `unet.conv_in` (the 3 channels
of J) plus `spatial.condition_in`, a conv over the 4 new channels with a zero-initialised kernel
and no bias: conv([J, C, M]) = conv_in(J) + CONDITION_GAIN * condition_in([C, M]) (a gain that
speeds up the new weights' training), so the widened model starts
equal to the text-to-video model and loads the STUNet's checkpoint unchanged.

As in the paper, the whole model fine-tunes (everything but the frozen, pretrained text
encoder): copying known pixels into a result is a new job for the spatial layers, not only for
the temporal ones. `layout_probs` sets the training mix of `models.masks.LAYOUTS`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lumiere_jax.models import masks
from lumiere_jax.models.sr import SSRConfig
from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.t2i import ALL_BUT_TEXT, TextToImage
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig, to_patches
from lumiere_jax.nn.sharding import conv_axes, named_axes
from lumiere_jax.nn.variables import retype_params

KNOWN_VIDEO = "known_video"  # C: (B, T, H, W, 3), model range, 0 where not known
KNOWN_MASK = "known_mask"    # M: (B, T, H, W, 1), +1 known, -1 generated
CONDITION_CHANNELS = 4       # C and M
# The new channels' kernel is stored divided by this gain: an optimizer step then moves their
# contribution CONDITION_GAIN times further, a higher learning rate for the zero-initialised
# weights (which must grow from nothing) than for the trained ones, within one optimizer.
CONDITION_GAIN = 10.0


class ConditionInputParam(nnx.Param):
    """The widened first conv's weights for the new C and M channels (absent from a STUNet
    checkpoint, so the backbone restore skips them)."""


@dataclasses.dataclass(frozen=True)
class ConditioningConfig:
    """layout_probs: training draw over `models.masks.LAYOUTS` (image_to_video, inpainting,
    cinemagraph, none); 'none' keeps plain text-to-video in the mix."""
    layout_probs: tuple[float, ...] = (0.35, 0.3, 0.25, 0.1)

    def __post_init__(self):
        probs = tuple(float(p) for p in self.layout_probs)
        if len(probs) != len(masks.LAYOUTS) or min(probs) < 0 or abs(sum(probs) - 1) > 1e-6:
            raise ValueError(f"conditioning.layout_probs must be {len(masks.LAYOUTS)} "
                             f"non-negative numbers summing to 1 (for {masks.LAYOUTS}), got "
                             f"{self.layout_probs}.")
        object.__setattr__(self, "layout_probs", probs)


def mask_to_model(known: jax.Array, dtype=jnp.float32) -> jax.Array:
    """known (..., H, W) bool -> M (..., H, W, 1): +1 known, -1 generated."""
    return jnp.where(known, 1.0, -1.0).astype(dtype)[..., None]


class MaskConditionedT2I(TextToImage):
    """The T2I model with its first conv widened by C and M (per frame; see the module doc)."""

    kind = "t2i"  # its weights, `condition_in` aside, are a T2I model's
    per_frame_inputs = (KNOWN_VIDEO, KNOWN_MASK)

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig, *,
                 rngs: nnx.Rngs):
        if unet_config.self_condition:
            raise ValueError("The conditional STUNet does not support a self-conditioned "
                             "backbone (unet.self_condition=True) yet; use one without it.")
        super().__init__(text_config, unet_config, rngs=rngs)
        patch_area = unet_config.patch_size ** 2
        conv = nnx.Conv(CONDITION_CHANNELS * patch_area, unet_config.base_channels, (3, 3),
                        use_bias=False, kernel_init=nnx.initializers.zeros_init(), rngs=rngs)
        self.condition_in = retype_params(named_axes(conv, *conv_axes(2)), ConditionInputParam)

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict:
        """C and M, one per frame of each clip."""
        side = self.resolution
        leading = (batch,) if frames is None else (batch, frames)
        channels = self.unet.config.out_channels
        return {KNOWN_VIDEO: leading + (side, side, channels),
                KNOWN_MASK: leading + (side, side, 1)}

    def prepare_conditions(self, conditions: dict, rng, noise_aug: float | None = None) -> dict:
        """Sampling: M binarised (> 0 is known) and C zeroed where not known."""
        del rng, noise_aug
        known = conditions[KNOWN_MASK][..., 0] > 0
        video = masks.masked_video(conditions[KNOWN_VIDEO], known)
        return dict(conditions, **{KNOWN_VIDEO: video,
                                   KNOWN_MASK: mask_to_model(known, video.dtype)})

    def extra_input(self, cond: dict):
        """CONDITION_GAIN * condition_in([C, M]) for frames folded into the batch (N, H, W, ...)."""
        for name in (KNOWN_VIDEO, KNOWN_MASK):
            if name not in cond:
                raise ValueError(f"The conditional STUNet needs cond[{name!r}]; see "
                                 f"condition_on / prepare_conditions.")
        inputs = jnp.concatenate([cond[KNOWN_VIDEO], cond[KNOWN_MASK]], axis=-1)
        return CONDITION_GAIN * self.condition_in(to_patches(inputs, self.unet.config.patch_size))


class ConditionalSTUNet(STUNet):
    """A STUNet whose frames also read C and M (image-to-video, inpainting, cinemagraphs)."""

    trainable = ALL_BUT_TEXT

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig,
                 config: STUNetConfig, conditioning: ConditioningConfig, *, rngs: nnx.Rngs):
        super().__init__(text_config, unet_config, config, rngs=rngs)
        self.conditioning = conditioning

    @staticmethod
    def build_spatial(text_config: TextEncoderConfig, unet_config: UNetConfig,
                      ssr: SSRConfig | None, rngs: nnx.Rngs) -> TextToImage:
        """The T2I model with the widened first conv."""
        if ssr is not None:
            raise ValueError("The conditional STUNet inflates a T2I model, not an SR model.")
        return MaskConditionedT2I(text_config, unet_config, rngs=rngs)

    def backbone(self):
        """A text-to-video STUNet export: every weight but the new input channels."""
        backbone = super().backbone()
        return dataclasses.replace(
            backbone, kind="stunet", module=self,
            configs=dict(backbone.configs, temporal=self.config),
            params=nnx.All(nnx.Param, nnx.Not(ConditionInputParam)))

    def condition_on(self, cond, clean, keys):
        """Training: C and M for each clip (B, T, H, W, C), a layout drawn per clip from
        `conditioning.layout_probs` (`models.masks.training_layout`)."""
        draw = lambda key, clip: masks.training_layout(jax.random.wrap_key_data(key), clip,
                                                       self.conditioning.layout_probs)
        video, known = jax.vmap(draw)(keys, clean)
        return dict(cond, **{KNOWN_VIDEO: video, KNOWN_MASK: mask_to_model(known, clean.dtype)})

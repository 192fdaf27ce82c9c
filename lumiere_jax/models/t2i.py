"""The text-to-image model: text encoder + U-Net, trained together, frozen for video."""
from __future__ import annotations

from flax import nnx

from lumiere_jax.models.text_encoder import TextEncoder, TextEncoderConfig, TextParam
from lumiere_jax.models.unet2d import UNet2D, UNetConfig, identity_hook

# The condition a self-conditioned model reads its x0 estimate from (one per image or frame).
X0_ESTIMATE = "x0_estimate"

# Everything but the frozen, pretrained text encoder.
ALL_BUT_TEXT = nnx.All(nnx.Param, nnx.Not(TextParam))


def check_text_width(text_config: TextEncoderConfig, unet_config: UNetConfig) -> None:
    """The U-Net cross-attends to the text encoder's features: their widths must agree."""
    if unet_config.context_features != text_config.width:
        raise ValueError(f"unet.context_features ({unet_config.context_features}) must equal "
                         f"text_encoder.width ({text_config.width}).")


def image_shape(batch: int, resolution: int, channels: int = 3) -> tuple[int, ...]:
    """(batch, resolution, resolution, channels)."""
    return (batch, resolution, resolution, channels)


class TextToImage(nnx.Module):
    """Holds `text_encoder` and `unet`; these parameter paths are what checkpoints store.

    Trains the U-Net; the text encoder is pretrained (`models.t5`) and frozen."""

    kind = "t2i"
    trainable = ALL_BUT_TEXT
    is_video = False

    def __init__(self, text_config: TextEncoderConfig, unet_config: UNetConfig, *, rngs: nnx.Rngs):
        check_text_width(text_config, unet_config)
        self.text_encoder = TextEncoder(text_config, rngs=rngs)
        self.unet = UNet2D(unet_config, rngs=rngs)

    def part_configs(self) -> dict:
        """The configs (by `config.model` section) an export of this model must match."""
        return {"text_encoder": self.text_encoder.config, "unet": self.unet.config}

    @property
    def self_conditioned(self) -> bool:
        """Whether `denoise` reads an x0 estimate from cond[X0_ESTIMATE] (self-conditioning)."""
        return self.unet.config.self_condition

    @property
    def per_frame_inputs(self) -> tuple[str, ...]:
        """The conditions with one entry per image (a video model folds its frames into them)."""
        return (X0_ESTIMATE,) if self.self_conditioned else ()

    @property
    def resolution(self) -> int:
        """Side of the images it denoises."""
        return self.unet.config.resolution

    def input_shape(self, batch: int, frames: int | None = None) -> tuple[int, ...]:
        """(B, H, W, 3); an image model takes no `frames`."""
        if frames is not None:
            raise ValueError("frames is only for video models; this is an image model.")
        return image_shape(batch, self.resolution, self.unet.config.out_channels)

    def conditioning_shapes(self, batch: int, frames: int | None = None) -> dict:
        """No inputs besides the text."""
        del batch, frames
        return {}

    def encode_text(self, tokens):
        """tokens (B, L) int32 -> condition dict with `context` (B, L, C) and `mask` (B, L)."""
        context, mask = self.text_encoder(tokens)
        return {"context": context, "mask": mask}

    def condition_on(self, cond, clean, keys):
        """Nothing is derived from the clean images."""
        del clean, keys
        return cond

    def prepare_conditions(self, conditions: dict, rng, noise_aug: float | None = None) -> dict:
        """No inputs besides the text to prepare."""
        del rng, noise_aug
        return conditions

    def enlarged_input(self, conditions: dict, resolution: int):
        """No input to enlarge: sampling starts from noise (None)."""
        del conditions, resolution
        return None

    def embed(self, t, cond: dict):
        """The U-Net's conditioning embedding: diffusion time and pooled text."""
        return self.unet.embed(t, cond["context"], cond["mask"])

    def unet_input(self, x_t, cond: dict):
        """The U-Net reads the noisy images alone."""
        del cond
        return x_t

    def extra_input(self, cond: dict):
        """What is added to the U-Net's first conv output besides x's: the self-conditioning
        branch's reading of cond[X0_ESTIMATE]; None for a model without self-conditioning."""
        if not self.self_conditioned:
            return None
        if X0_ESTIMATE not in cond:
            raise ValueError(f"A self-conditioned model needs cond[{X0_ESTIMATE!r}] (zeros for "
                             "no estimate); the train step and the samplers supply it.")
        return self.unet.estimate_input(cond[X0_ESTIMATE])

    def denoise(self, x_t, t, cond, hook=identity_hook, emb=None):
        """Model output (v or eps) for noisy images x_t (B, H, W, C) at times t (B,). `emb`: the
        conditioning embedding when computed already (`embed`; the STUNet embeds per video)."""
        emb = self.embed(t, cond) if emb is None else emb
        return self.unet(self.unet_input(x_t, cond), t, cond["context"], cond["mask"], hook=hook,
                         emb=emb, extra_input=self.extra_input(cond))

    def __call__(self, x_t, t, tokens):
        return self.denoise(x_t, t, self.encode_text(tokens))

"""The shapes SSR: the frozen 2D SR model (configs/sr_shapes.py) inflated with temporal conv
blocks at every site (no temporal resampling, no temporal attention), trained on 8-frame windows
of 64 px clips; sampling runs it over overlapping windows of a whole clip (MultiDiffusion).

`--config configs/ssr_shapes.py:backbone=DIR` inflates the SR export DIR (its U-Net, SR section
and schedule are read from it; default the shipped `sr_shapes`); `:variant=tiny` inflates a
random tiny SR (4-frame 16 px clips; used by tests).
"""
from configs import sr_shapes
from configs.common import inflate, shipped

VARIANTS = ("base", "tiny")
SHIPPED_SR = shipped("sr_shapes")


def get_config(arg=None):
    variant, backbone_dir, config = inflate(
        arg, VARIANTS, SHIPPED_SR, lambda v: sr_shapes.get_config(f"variant={v}"))
    spatial = config.model
    config.model = dict(
        kind="ssr",
        text_encoder=spatial.text_encoder.to_dict(),
        unet=spatial.unet.to_dict(),
        # Sampling trusts the low-res input less than the SR alone does (level 0.3, not 0.1): on
        # the base model's clips the SSR then follows the text more and the blob less
        # (docs/ssr.md).
        ssr=dict(spatial.ssr.to_dict(), noise_aug=0.3),
        temporal=dict(temporal_down_levels=(), temporal_attention_layers=0,
                      temporal_conv_kernel=3, num_heads=4, text_pool=False,
                      temporal_conv_spatial_kernel=1),
        backbone=backbone_dir,
    )
    config.data.update(mode="clips", num_frames=8, batch_size=4)
    # The temporal layers start at zero (the SSR starts as the SR per frame); the SR's higher
    # learning rate, and a short run that fits the 2-core CPU budget.
    config.optim.update(learning_rate=1e-3, warmup_steps=50, total_steps=600)
    # Sampling starts from the low-res clip enlarged bilinearly, noised to t = 0.5 (SDEdit): on
    # the shipped STUNet's clips it keeps their shapes and sizes better than starting from
    # pure noise (docs/ssr.md).
    config.sample.enlarged_start = 0.5
    if variant == "tiny":
        config.sample.enlarged_start = 1.0
        config.model.temporal.update(num_heads=2)
        config.data.update(num_frames=4, batch_size=2)
        config.optim.update(warmup_steps=2, total_steps=20)
    return config

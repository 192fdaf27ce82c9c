"""STUNet on shapes clips: the shipped T2I backbone inflated in time; only temporal layers train.

Variants: `--config configs/stunet_shapes.py` (16-frame 32x32 clips, backbone = the shipped
T2I) or `:variant=tiny` (random tiny backbone, 4-frame 16x16 clips; used by tests). Another T2I
export may be inflated with `:backbone=DIR` (its spatial model and schedule are read from it).
"""
from configs import t2i_shapes
from configs.common import parse_arg, parse_variant, shipped
from lumiere_jax.checkpoints.exported import read_exported_config

VARIANTS = ("base", "tiny")
SHIPPED_T2I = shipped("t2i_shapes")


def get_config(arg=None):
    variant = parse_variant(arg, VARIANTS)
    backbone_dir = parse_arg(arg).get("backbone", SHIPPED_T2I)
    if variant == "tiny" and backbone_dir != SHIPPED_T2I:
        raise ValueError("variant=tiny inflates a random tiny backbone; backbone=... needs the "
                         "base variant.")
    config = t2i_shapes.get_config(f"variant={variant}")
    spatial = config.model
    if variant == "base":
        # The frozen backbone fixes the spatial model and the noise schedule its time embedding
        # was trained on, so both are read from the backbone's own config.
        backbone = read_exported_config(backbone_dir)
        spatial = backbone.model
        for key in ("schedule", "schedule_shift", "prediction"):
            config.diffusion[key] = backbone.diffusion[key]
    config.model = dict(
        kind="stunet",
        text_encoder=spatial.text_encoder.to_dict(),
        unet=spatial.unet.to_dict(),
        # Every level that downsamples in space also downsamples in time (the paper's STUNet),
        # spelt out so that a flag can change it: --config.model.temporal.temporal_down_levels=().
        temporal=dict(temporal_down_levels=tuple(range(len(spatial.unet.channel_mult) - 1)),
                      temporal_attention_layers=2,
                      temporal_conv_kernel=3, num_heads=4, text_pool=True,
                      temporal_conv_spatial_kernel=1),
        backbone=backbone_dir if variant == "base" else "",
    )
    # Noise correlated across a clip's frames (diffusion.noise); 0 = independent per frame.
    config.diffusion.frame_noise_correlation = 0.0
    config.data.update(mode="clips", batch_size=4)
    config.optim.update(learning_rate=5e-4, warmup_steps=100, total_steps=1500)
    if variant == "tiny":
        config.model.temporal.update(num_heads=2, temporal_attention_layers=1)
        config.data.update(batch_size=2)
        config.optim.update(warmup_steps=2, total_steps=20)
    return config

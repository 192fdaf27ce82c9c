"""STUNet on shapes clips: the shipped T2I backbone inflated in time; only temporal layers train.

Variants: `--config configs/stunet_shapes.py` (16-frame 32x32 clips, backbone = the shipped
T2I) or `:variant=tiny` (random tiny backbone, 4-frame 16x16 clips; used by tests). Another T2I
export may be inflated with `:backbone=DIR` (its spatial model and schedule are read from it).
"""
from configs import t2i_shapes
from configs.common import inflate, shipped

VARIANTS = ("base", "tiny")
SHIPPED_T2I = shipped("t2i_shapes")


def get_config(arg=None):
    variant, backbone_dir, config = inflate(
        arg, VARIANTS, SHIPPED_T2I, lambda v: t2i_shapes.get_config(f"variant={v}"))
    spatial = config.model
    config.model = dict(
        kind="stunet",
        text_encoder=spatial.text_encoder.to_dict(),
        unet=spatial.unet.to_dict(),
        # Every level that downsamples in space also downsamples in time (the paper's STUNet),
        # spelt out so that a flag can change it: --config.model.temporal.temporal_down_levels=().
        temporal=dict(temporal_down_levels=tuple(range(len(spatial.unet.channel_mult) - 1)),
                      temporal_attention_layers=2,
                      temporal_conv_kernel=3, num_heads=4, text_pool=True,
                      temporal_conv_spatial_kernel=1,
                      # "space_time": the coarsest level's attention spans pixels and frames.
                      temporal_attention_span="time",
                      # Every temporal layer also reads its (frame, pixel)'s place in the clip.
                      space_time_position=False,
                      # Levels whose temporal conv blocks also attend to the text tokens.
                      text_attention_levels=(),
                      # Gated (GLU) temporal conv blocks.
                      temporal_conv_gate=False),
        backbone=backbone_dir,
    )
    # Noise correlated across a clip's frames (diffusion.noise); 0 = independent per frame.
    config.diffusion.frame_noise_correlation = 0.0
    # The noise levels training draws (diffusion.settings): a shift of the training schedule,
    # and a focus window that a fraction of each batch draws t from.
    config.diffusion.update(train_log_snr_shift=0.0, focus_fraction=0.0, focus_t_min=0.0,
                            focus_t_max=0.15)
    config.data.update(mode="clips", batch_size=4)
    config.optim.update(learning_rate=5e-4, warmup_steps=100, total_steps=1500)
    # Sampling: the steps at t < 0.7 skip the temporal layers and the frozen T2I draws each
    # frame (diffusion.noise_bands): shape 0.461 -> 0.539 on 128 validation prompts, motion
    # 0.406 -> 0.398 (docs/training.md section 13).
    config.sample.per_frame_below = 0.7
    if variant == "tiny":
        config.sample.per_frame_below = 0.0
        config.model.temporal.update(num_heads=2, temporal_attention_layers=1)
        config.data.update(batch_size=2)
        config.optim.update(warmup_steps=2, total_steps=20)
    return config

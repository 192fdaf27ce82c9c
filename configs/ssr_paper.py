"""Paper-scale spatial super-resolution (SSR): 128 px clips lifted to 1024 px, as in Lumiere.

As in the paper, the SSR is a 2D super-resolution model (Imagen's SR stages: the U-Net reads the
noisy 1024 px frame and the 128 px frame enlarged to it, noise-augmented, and is told the
augmentation level), trained on frames, frozen, and inflated with temporal (2+1)D conv blocks at
every site (no temporal resampling, no temporal attention), which train. It runs on 16-frame
temporal windows of the 80-frame clip (temporal MultiDiffusion averages the overlapping
windows; the paper overlaps them by 2 frames). The U-Net follows Imagen's 256 -> 1024 stage: 128
base channels, widths 128/256/512/1024 at 1024/512/256/128 px, 2 res blocks per level and no
spatial attention (the middle level keeps its attention and cross-attention to the text). The
text encoder is the base model's (T5-XL sized, pretrained and frozen). The 2D SR backbone is
named with --config.model.backbone=DIR (a "sr" export); "" starts from random weights.

Parameters: 1,323,129,603 in all (counted with nnx.eval_shape over build_model; checked by
tests/test_launch.py): the frozen 2D SR U-Net 267,103,747 and text encoder 1,007,787,008; the
temporal conv blocks 48,238,848, trained.

Plan it on a TPU topology with launch/aot_compile.py, e.g.
  python -m launch.aot_compile --config configs/ssr_paper.py --topology v5p:2x2x4 \
      --mesh data=1,fsdp=16,time=1 --batch 16
"""
from configs import stunet_paper
from configs.common import parse_variant

VARIANTS = ("base",)


def get_config(arg=None):
    parse_variant(arg, VARIANTS)  # refuses any other variant
    config = stunet_paper.get_config()
    config.model = dict(
        kind="ssr",
        text_encoder=config.model.text_encoder.to_dict(),
        unet=dict(resolution=1024, in_channels=6, out_channels=3, base_channels=128,
                  channel_mult=(1, 2, 4, 8), num_res_blocks=2, attention_resolutions=(),
                  num_heads=16, context_features=config.model.text_encoder.width,
                  aug_conditioning=True),
        temporal=dict(temporal_down_levels=(), temporal_attention_layers=0,
                      temporal_conv_kernel=3, num_heads=16),
        ssr=dict(low_resolution=128, noise_aug_max=0.5, noise_aug=0.1),
        backbone="",
    )
    # Simple Diffusion's log-SNR shift for 1024 px relative to 64 px would be 2 ln(64/1024) = -5.5;
    # an SR stage sees the low-res clip, so it keeps the plain schedule, as Imagen's SR stages do.
    config.diffusion.update(schedule_shift=0.0, focus_fraction=0.0)
    config.data.update(resolution=1024, num_frames=16, mode="clips", batch_size=64)
    config.optim.update(learning_rate=1e-4, warmup_steps=5000, total_steps=300_000)
    return config

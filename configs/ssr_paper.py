"""Paper-scale spatial super-resolution (SSR): 128 px clips lifted to 1024 px, as in Lumiere.

The SSR is a STUNet over 6 input channels (the noisy 1024 px clip and the 128 px clip upsampled
to it, Imagen's SR conditioning) that runs on 16-frame temporal windows of the 80-frame clip
(MultiDiffusion stitches the windows; the paper overlaps them by 2 frames), so its temporal
layers keep the frame count. The U-Net follows Imagen's 256 -> 1024 stage: 128 base channels,
widths 128/256/512/1024 at 1024/512/256/128 px, 2 res blocks per level and no spatial attention
(the middle level keeps its attention and cross-attention to the text); temporal (2+1)D convs at
the three finer levels, temporal attention at 128 px. The text encoder is the base model's
(T5-XL sized, frozen in Lumiere; here trained with the rest: no pretrained image SR exists).

Parameters: 1,359,508,339 in all (counted with nnx.eval_shape over build_model; checked by
tests/test_launch.py): U-Net 266,775,043 with temporal layers 84,946,288 inside it, text encoder
1,007,787,008.

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
                  num_heads=16, context_features=config.model.text_encoder.width),
        temporal=dict(temporal_down_levels=(), temporal_attention_layers=1,
                      temporal_conv_kernel=3, num_heads=16),
        ssr=dict(low_resolution=128),
    )
    # Simple Diffusion's log-SNR shift for 1024 px relative to 64 px would be 2 ln(64/1024) = -5.5;
    # an SR stage sees the low-res clip, so it keeps the plain schedule, as Imagen's SR stages do.
    config.diffusion.update(schedule_shift=0.0, focus_fraction=0.0)
    config.data.update(resolution=1024, num_frames=16, mode="clips", batch_size=64)
    config.optim.update(learning_rate=1e-4, warmup_steps=5000, total_steps=300_000)
    return config

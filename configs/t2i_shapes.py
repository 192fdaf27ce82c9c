"""Text-to-image U-Net on the shapes world (the frozen backbone that the STUNet inflates).

Variants: `--config configs/t2i_shapes.py` (the shipped 32x32 model) or
`--config configs/t2i_shapes.py:variant=tiny` (16x16, seconds per step on CPU; used by tests).
"""
import ml_collections

from configs.common import parse_variant, shipped, unset_mesh_rules
from lumiere_jax.diffusion.schedules import resolution_shift

SHIPPED_TEXT_ENCODER = shipped("t5_shapes")

VARIANTS = ("base", "tiny")


def get_config(arg=None):
    variant = parse_variant(arg, VARIANTS)
    config = ml_collections.ConfigDict()
    config.seed = 0

    # The text encoder is pretrained (configs/t5_shapes.py) and frozen: `text_checkpoint`.
    config.model = dict(
        kind="t2i",
        text_encoder=dict(width=128, num_layers=3, num_heads=4, mlp_ratio=2, max_length=32),
        text_checkpoint=SHIPPED_TEXT_ENCODER if variant == "base" else "",
        # docs/training.md section 11 (the shipped T2I): recipe S's U-Net (base 32, (1, 2, 4))
        # with a 2x2 space-to-depth stem, so the levels run at 16, 8 and 4 px (attention and
        # cross-attention at 8 and 4, i.e. 16 and 8 image px), and a one-block full-resolution
        # head after the stem that draws the outlines at pixel scale (refine_blocks=1).
        unet=dict(resolution=32, base_channels=32, channel_mult=(1, 2, 4), num_res_blocks=1,
                  attention_resolutions=(8, 4), num_heads=4, context_features=128,
                  patch_size=2, refine_blocks=1, self_condition=False),
    )
    # Log-SNR shifted by resolution (simple diffusion's rule): +1.386 at 32 px; Min-SNR-5 loss
    # weighting (better one-step denoising at every log-SNR >= -4 than the plain v loss).
    config.diffusion = dict(schedule="cosine", schedule_shift=resolution_shift(32), prediction="v",
                            loss_weighting="min_snr", min_snr_gamma=5.0, cond_drop_prob=0.1)
    config.data = dict(resolution=32, num_frames=16, num_train=20000, num_validation=512,
                       num_heldout=512, mode="frames", batch_size=32, data_dir="",
                       worker_count=0, seed=0, style="plain",
                       # source="video_folder" trains on a folder of captioned videos instead
                       # (docs/data.md): --config.data.source=video_folder
                       # --config.data.video_dir=DIR --config.data.captions=FILE.
                       source="shapes", video_dir="", captions="", fps=8.0, clip_stride=0,
                       validation_fraction=0.0,
                       # Train on some motions only (shapes), e.g. "('still','growing')".
                       motions=())
    config.optim = dict(learning_rate=1e-3, warmup_steps=200, total_steps=14000,
                        end_lr_fraction=0.05, weight_decay=0.0, b1=0.9, b2=0.99, clip_norm=1.0,
                        ema_decay=0.999)
    # Memory switches (lumiere_jax.settings.ComputeSettings), all off: remat of the U-Net walk
    # ("block" or "level"), bf16 compute ("bfloat16"), bf16 storage of the frozen weights
    # (frozen_dtype="bfloat16"), micro-batches per step, and the pixel sequences temporal
    # attention handles at a time (0 = all). Speed: the attention kernel ("auto": jax picks,
    # cuDNN's fused kernel on a GPU where it applies; "xla"; "cudnn").
    config.compute = dict(remat="none", dtype="float32", frozen_dtype="float32",
                          grad_accum_steps=1, temporal_attention_chunk=0, attention="auto")
    # Device mesh: sizes of ('data', 'fsdp', 'time'), -1 = the remaining devices. `rules` maps
    # the logical axes of the weights to a mesh axis (e.g. --config.mesh.rules.mlp=fsdp), unset
    # = replicated; fsdp > 1 also splits every weight along its largest divisible dimension.
    config.mesh = dict(
        data=-1, fsdp=1, time=1,
        rules=unset_mesh_rules(),
    )
    config.checkpoint = dict(every_steps=500, max_to_keep=2, init_from="",
                             init_from_partial=False)
    config.log = dict(every_steps=50, eval_every_steps=500, eval_num=32, eval_steps=25,
                      eval_batch=32)
    # No dynamic thresholding: the shapes world's colours and backgrounds sit at 0 and 1, so
    # dividing x0 by its 99.5th |x0| percentile whenever a pixel overshoots greys every black or
    # white background and leaves noise in it (docs/training.md, section 5).
    config.sample = dict(steps=50, guidance=3.0, sampler="ddim", dynamic_threshold=0.0,
                         per_frame_below=0.0, enlarged_start=1.0)

    if variant == "tiny":
        config.model.text_encoder.update(width=32, num_layers=1, num_heads=2, max_length=32)
        config.model.unet.update(resolution=16, base_channels=16, channel_mult=(1, 2),
                                 attention_resolutions=(8,), num_heads=2, context_features=32,
                                 patch_size=1, refine_blocks=0)
        config.data.update(resolution=16, num_frames=4, num_train=64, num_validation=16,
                           num_heldout=16, batch_size=8)
        config.optim.update(warmup_steps=2, total_steps=20)
        config.checkpoint.update(every_steps=5)
        config.log.update(every_steps=5, eval_every_steps=0)
        config.diffusion.update(schedule_shift=resolution_shift(16), loss_weighting="none")
        config.sample.update(steps=8)
    return config

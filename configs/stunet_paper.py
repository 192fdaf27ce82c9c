"""Paper-scale STUNet: 80-frame 128x128 clips (5 s at 16 fps) in one pass, as in Lumiere.

The backbone is Imagen-base-sized (512 base channels, widths 512/1024/1536/2048 at
128/64/32/16 px, 3 res blocks per level, attention at 32 and 16 px) under a text encoder as wide
as T5-XL (2048 wide, 24 layers). Temporal layers as in configs/stunet_shapes.py: (2+1)D conv
blocks at levels 0-2, 2 stacked temporal attention blocks at the coarsest level, temporal
down/upsampling after every spatial one (80 -> 40 -> 20 -> 10 frames at 16x16).

Parameters: 4,058,819,875 in all (counted with nnx.eval_shape over build_model; checked by
tests/test_launch.py): U-Net 2,201,041,411 and text encoder 1,007,787,008, frozen (the T2I
backbone); temporal layers 849,991,456, trained (20,977,664 of them the temporal layers' own
text pool; docs/scaling.md's plans were compiled before it was added).

The backbone is trained separately (a t2i run at this width) and named with
--config.model.backbone=DIR; "" starts from random weights. Shard with the mesh section, e.g.
--config.mesh.fsdp=8 --config.mesh.time=2 (time must divide the frames at every level).
The shapes data at this size is ~4 MB a clip: point LUMIERE_DATA_DIR at a disk with room.
"""
from configs import stunet_shapes
from configs.common import parse_variant

VARIANTS = ("base",)


def get_config(arg=None):
    parse_variant(arg, VARIANTS)  # refuses any other variant
    config = stunet_shapes.get_config("variant=base")
    config.model.text_encoder.update(width=2048, num_layers=24, num_heads=32, mlp_ratio=2,
                                     max_length=128, num_buckets=32, max_distance=128)
    config.model.unet.update(resolution=128, base_channels=512, channel_mult=(1, 2, 3, 4),
                             num_res_blocks=3, attention_resolutions=(32, 16), num_heads=16,
                             context_features=2048, patch_size=1, refine_blocks=0)
    config.model.temporal.update(temporal_down_levels=None, temporal_attention_layers=2,
                                 temporal_conv_kernel=3, num_heads=16)
    config.model.backbone = ""
    # Simple Diffusion's log-SNR shift for 128 px relative to 64 px: 2 * ln(64 / 128).
    config.diffusion.update(schedule_shift=-1.386)
    config.data.update(resolution=128, num_frames=80, mode="clips", batch_size=64)
    config.optim.update(learning_rate=1e-4, warmup_steps=5000, total_steps=300_000,
                        ema_decay=0.9999)
    # What the ahead-of-time plans show a 16 GiB v5e chip needs (docs/scaling.md): block remat,
    # bf16 compute, and bf16 storage of the frozen backbone and text encoder.
    config.compute.update(remat="block", dtype="bfloat16", frozen_dtype="bfloat16")
    config.mesh.update(data=-1, fsdp=1, time=1)
    # Imagen's dynamic thresholding for natural images (the shapes configs turn it off: their
    # saturated flat colours are what it dims).
    config.sample.update(dynamic_threshold=0.995, per_frame_below=0.0)
    config.checkpoint.update(every_steps=2000, max_to_keep=3)
    config.log.update(every_steps=100)
    return config

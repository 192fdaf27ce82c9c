"""2D super-resolution on shapes frames (32 -> 64 px): the frozen backbone the SSR inflates.

Imagen's SR stage at shapes scale: the U-Net reads the noisy 64 px frame and the 32 px frame
enlarged to it (noise-augmented to a level drawn from U(0, 0.5) in training and told that level),
reads the text through the frozen pretrained T5-style encoder, and trains on single frames.
`--config configs/sr_shapes.py` (64 px) or `:variant=tiny` (8 -> 16 px, used by tests).
"""
from configs import t2i_shapes
from configs.common import parse_variant

VARIANTS = ("base", "tiny")


def get_config(arg=None):
    variant = parse_variant(arg, VARIANTS)
    config = t2i_shapes.get_config(f"variant={variant}")
    model = config.model.to_dict()
    model.update(kind="sr", ssr=dict(low_resolution=32, noise_aug_max=0.5, noise_aug=0.1))
    # The 2x2 stem runs the levels at 32, 16 and 8 px; no attention but the middle level's.
    model["unet"].update(resolution=64, in_channels=6, base_channels=32, channel_mult=(1, 2, 2),
                         attention_resolutions=(), patch_size=2, refine_blocks=0,
                         aug_conditioning=True)
    config.model = model
    # 64 px is the rule's base resolution: no shift (diffusion.schedules.resolution_shift(64)).
    config.diffusion.update(schedule_shift=0.0)
    # Fewer clips than the T2I (a 64 px clip is 4x the bytes); SR needs the pixels, not the
    # combinations.
    config.data.update(resolution=64, num_train=2000, num_validation=256, num_heldout=16,
                       batch_size=16)
    # The plain v loss (Min-SNR-5 and plain v were close at lr 5e-4) and lr 1.5e-3: 300 steps
    # reach 14.7 dB against 11.1 at 5e-4 (docs/ssr.md, the recipes).
    config.diffusion.update(loss_weighting="none")
    config.optim.update(learning_rate=1.5e-3, warmup_steps=100, total_steps=1500)
    # No guidance, and no dynamic thresholding: dividing x0 by its 99.5th |x0| percentile when
    # that exceeds 1 dims every frame with a white background (measured on the step-600 SR:
    # 11.4 dB with it, 17.5 dB without).
    config.sample.update(steps=25, guidance=1.0, dynamic_threshold=0.0)
    if variant == "tiny":
        config.model.unet.update(resolution=16, base_channels=16, channel_mult=(1, 2),
                                 attention_resolutions=(8,), patch_size=1)
        config.model.ssr.update(low_resolution=8)
        config.data.update(resolution=16, num_train=64, num_validation=16, num_heldout=16,
                           batch_size=8)
        config.diffusion.update(schedule_shift=t2i_shapes.get_config("variant=tiny")
                                .diffusion.schedule_shift)
        config.optim.update(warmup_steps=2, total_steps=20)
        config.sample.update(steps=8)
    return config

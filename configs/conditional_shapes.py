"""The conditional STUNet on shapes clips (image-to-video, inpainting, cinemagraphs): the shipped
text-to-video STUNet with its first conv widened from 3 to 7 input channels (<J, C, M>) and
fine-tuned whole (text encoder aside) on a mix of masks (`models.masks.training_layout`).

`--config configs/conditional_shapes.py` starts from the shipped `stunet_shapes` (its export's
model and schedule are read from it); `:backbone=DIR` from another STUNet export; `:variant=tiny`
from a random tiny STUNet (4-frame 16x16 clips; used by tests).
"""
from configs import stunet_shapes
from configs.common import inflate, shipped

VARIANTS = ("base", "tiny")
SHIPPED_STUNET = shipped("stunet_shapes")


def get_config(arg=None):
    variant, backbone_dir, config = inflate(
        arg, VARIANTS, SHIPPED_STUNET, lambda v: stunet_shapes.get_config(f"variant={v}"))
    video = config.model
    config.model = dict(
        kind="conditional_stunet",
        text_encoder=video.text_encoder.to_dict(),
        unet=video.unet.to_dict(),
        temporal=video.temporal.to_dict(),
        # image-to-video, inpainting, cinemagraph, plain text-to-video
        conditioning=dict(layout_probs=(0.35, 0.3, 0.25, 0.1)),
        backbone=backbone_dir,
    )
    # The plain v loss over t ~ U(0, 1), as the STUNet trained: the noisy steps, where the known
    # pixels tell the most, keep their weight (Min-SNR and a low-t focus would shrink it).
    config.diffusion.update(loss_weighting="none", focus_fraction=0.0)
    # Every weight but the text encoder trains (as in the paper), from a trained model: a lower
    # learning rate than the temporal layers' first run.
    config.optim.update(learning_rate=3e-4, warmup_steps=50, total_steps=400)
    # The temporal layers at every step (the per-frame low band was measured on the STUNet only).
    config.sample.per_frame_below = 0.0
    if variant == "tiny":
        config.optim.update(warmup_steps=2, total_steps=20)
    return config

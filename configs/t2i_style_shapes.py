"""A style copy of a T2I model for stylized generation (paper section 4.1): the T2I fine-tuned on
the "outlined" shapes world (`data.shapes.STYLES`: each shape drawn as a band inside its
outline, the background showing within), with the same captions.

`--config configs/t2i_style_shapes.py:base=DIR` fine-tunes the T2I export DIR (its model and
noise schedule are read from it; default the shipped `t2i_shapes`). To blend the style into a
STUNet, DIR must hold the very weights that STUNet inflates: `python -m launch.export_spatial
--video lumiere_jax/weights/stunet_shapes --out DIR`. `lumiere-jax sample --style-checkpoint
STYLE --style-alpha A` then blends the result. `:variant=tiny` fine-tunes a random tiny T2I.
"""
from configs import t2i_shapes
from configs.common import inflate, parse_arg, shipped

VARIANTS = ("base", "tiny")


def get_config(arg=None):
    args = parse_arg(arg)
    if "base" in args:  # inflate() names the export it reads `backbone`
        args["backbone"] = args.pop("base")
    variant, base_dir, config = inflate(
        ",".join(f"{key}={value}" for key, value in args.items()), VARIANTS,
        shipped("t2i_shapes"), lambda v: t2i_shapes.get_config(f"variant={v}"))
    config.data.style = "outlined"
    if variant == "base":
        config.model.text_checkpoint = ""  # the base export holds the text encoder already
        config.checkpoint.init_from = base_dir
    # A short fine-tune from a trained model: a lower learning rate and a short warm-up.
    config.optim.update(learning_rate=3e-4, warmup_steps=50, total_steps=400)
    if variant == "tiny":
        config.optim.update(warmup_steps=2, total_steps=20)
    return config

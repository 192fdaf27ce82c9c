"""Text stage: the T5-style encoder pretrained on shapes-world captions with span corruption.

`python -m lumiere_jax.main --config configs/t5_shapes.py --workdir runs/t5` trains it and writes
`runs/t5/export` (encoder weights + probe.json); every image and video model then reads text
through it, frozen (`config.model.text_checkpoint`). `:variant=tiny` is the test-sized encoder.
"""
import ml_collections

from configs import t2i_shapes
from configs.common import parse_variant

VARIANTS = ("base", "tiny")


def get_config(arg=None):
    variant = parse_variant(arg, VARIANTS)
    config = ml_collections.ConfigDict()
    config.seed = 0
    # The encoder's sizes are the image models' `model.text_encoder`.
    config.model = dict(
        kind="t5",
        text_encoder=t2i_shapes.get_config(f"variant={variant}").model.text_encoder.to_dict(),
        decoder=dict(num_layers=2, num_sentinels=8, max_target_length=24),
    )
    config.data = dict(num_captions=200_000, batch_size=128, noise_density=0.25,
                       mean_span_length=2.0, seed=0)
    config.objective = dict(span_weight=1.0, paraphrase_weight=1.0, temperature=0.1)
    config.optim = dict(learning_rate=1e-3, warmup_steps=60, total_steps=600,
                        end_lr_fraction=0.05, weight_decay=0.0, b1=0.9, b2=0.99, clip_norm=1.0,
                        ema_decay=0.99)
    config.checkpoint = dict(every_steps=500, max_to_keep=2, init_from="",
                             init_from_partial=False)
    config.log = dict(every_steps=100)
    config.probe = dict(num_train=4096, num_validation=1024, steps=500)
    if variant == "tiny":
        config.model.decoder.update(num_layers=1)
        config.data.update(num_captions=512, batch_size=16)
        config.optim.update(warmup_steps=2, total_steps=10)
        config.checkpoint.update(every_steps=5)
        config.log.update(every_steps=5)
        config.probe.update(num_train=256, num_validation=128, steps=50)
    return config

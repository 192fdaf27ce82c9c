"""Our STUNet in the peer race, at a `RaceSize`: built and stepped by the trainer's own code.

The config is `configs/stunet_shapes.py:variant=tiny` (a random backbone, no checkpoint read)
with the U-Net resized to the race's widths (patch_size 1; spatial attention at the coarsest
level and the middle; one temporal attention block at each coarsest-level site, as the peers'
depth 1) and the race's clips. The train step is `lumiere_jax.train.setup`'s jitted step (AdamW
with clipping, EMA, Min-SNR v-loss, frozen text encoder run in the step), on a fixed batch.

`trains=TEMPORAL` trains as the STUNet does (`STUNet.trainable`: the temporal layers);
`trains=ALL` swaps that filter, while the setup is built, for the T2I model's (every weight but
the frozen text encoder), as the peers train.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.compiled_step import compile_train_step, random_batch
from benchmarks.peer_spec import ALL, TEMPORAL, Contestant, RaceSize
from configs import stunet_shapes
from lumiere_jax.models.stunet import STUNet
from lumiere_jax.models.t2i import ALL_BUT_TEXT

TRAINABLE = {TEMPORAL: STUNet.trainable, ALL: ALL_BUT_TEXT}
# The text encoder of the shapes T2I model (frozen; ours reads tokens, the peers embeddings).
TEXT_ENCODER = dict(num_layers=3, num_heads=4, mlp_ratio=2)


def race_config(size: RaceSize, seed: int = 0):
    """The STUNet training config of the race at `size`."""
    config = stunet_shapes.get_config("variant=tiny")
    config.seed = seed
    config.model.text_encoder.update(width=size.text_width, max_length=size.text_length,
                                     **TEXT_ENCODER)
    config.model.unet.update(
        resolution=size.resolution, base_channels=size.base_channels,
        channel_mult=size.channel_mult, num_res_blocks=size.num_res_blocks,
        attention_resolutions=(size.coarsest_resolution,), num_heads=size.num_heads,
        context_features=size.text_width, patch_size=1)
    config.model.temporal.update(num_heads=size.num_heads, temporal_attention_layers=1,
                                 temporal_down_levels=tuple(range(size.levels - 1)))
    config.data.update(resolution=size.resolution, num_frames=size.frames,
                       batch_size=size.batch)
    return config


@contextlib.contextmanager
def stunet_trains(trains: str):
    """Within: the STUNet's trainable filter is `TRAINABLE[trains]` (restored on exit)."""
    if trains not in TRAINABLE:
        raise ValueError(f"trains must be one of {tuple(TRAINABLE)}, got {trains!r}.")
    default = STUNet.trainable
    STUNet.trainable = TRAINABLE[trains]
    try:
        yield
    finally:
        STUNet.trainable = default


def count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def ours_contestant(size: RaceSize, trains: str = TEMPORAL, seed: int = 0,
                    forward: bool = True) -> Contestant:
    """Our STUNet at `size`: the trainer's compiled step (`benchmarks.compiled_step`), and a
    jitted forward (text encoding and denoising of noisy clips) on the step's current weights."""
    with stunet_trains(trains):
        step = compile_train_step(race_config(size, seed))
    train_setup = step.train_setup
    holder = {"state": train_setup.state}  # the step donates the state it is given
    graphdef = train_setup.graphdef

    def train_call():
        holder["state"], metrics = step.compiled(holder["state"], step.batch)
        jax.block_until_ready((holder["state"], metrics))

    @jax.jit
    def denoise(params, frozen, x_t, t, tokens):
        return nnx.merge(graphdef, params, frozen)(x_t, t, tokens)

    keys = jax.random.split(jax.random.key(seed), 2)
    x_t = jax.random.normal(keys[0], (size.batch, size.frames, size.resolution,
                                      size.resolution, 3))
    t = jax.random.uniform(keys[1], (size.batch,))
    tokens = jnp.asarray(random_batch(train_setup, seed)["tokens"])

    def forward_call():
        state = holder["state"]
        jax.block_until_ready(denoise(state.params, state.frozen, x_t, t, tokens))

    model = nnx.merge(graphdef, train_setup.state.params, train_setup.state.frozen)
    name = "ours" if trains == TEMPORAL else "ours-all"
    return Contestant(name=name, framework=f"jax {jax.__version__}", trains=trains,
                      params=count(nnx.state(model, ALL_BUT_TEXT)),
                      trainable=count(train_setup.state.params),
                      forward=forward_call if forward else None, train_step=train_call,
                      compile_s=step.compile_s,
                      notes="lumiere-jax STUNet, text-conditioned (frozen text encoder in step)")

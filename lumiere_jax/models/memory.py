"""The memory switches a model carries at run time (not part of its config or checkpoints)."""
from __future__ import annotations

from flax import nnx

from lumiere_jax.models.unet2d import UNet2D
from lumiere_jax.nn.temporal import TemporalAttentionBlock


def set_memory_switches(model: nnx.Module, *, remat: str = "none",
                        temporal_attention_chunk: int = 0) -> None:
    """Sets the U-Net walk's rematerialisation (`UNet2D.set_remat`) and the temporal attention's
    chunking (`TemporalAttentionBlock.set_chunk`) everywhere inside `model`, any kind."""
    for _, node in nnx.iter_graph(model):
        if isinstance(node, UNet2D):
            node.set_remat(remat)
        elif isinstance(node, TemporalAttentionBlock):
            node.set_chunk(temporal_attention_chunk)

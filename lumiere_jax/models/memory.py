"""The memory switches a model carries at run time (not part of its config or checkpoints)."""
from __future__ import annotations

import jax
from flax import nnx

from lumiere_jax.models.unet2d import UNet2D
from lumiere_jax.nn.attention import MultiHeadAttention
from lumiere_jax.nn.temporal import TemporalAttentionBlock

# Flax layers that cast their inputs and weights to their `dtype` attribute when they run.
_CASTING_LAYERS = (nnx.Linear, nnx.LinearGeneral, nnx.Einsum, nnx.Conv, nnx.ConvTranspose,
                   nnx.Embed, nnx.GroupNorm, nnx.LayerNorm, nnx.RMSNorm, nnx.BatchNorm)


def set_memory_switches(model: nnx.Module, *, remat: str = "none",
                        temporal_attention_chunk: int = 0, attention: str = "auto") -> None:
    """Sets the U-Net walk's rematerialisation (`UNet2D.set_remat`), the temporal attention's
    chunking (`TemporalAttentionBlock.set_chunk`) and every attention's kernel
    (`MultiHeadAttention.set_kernel`; "cudnn" only on a GPU) everywhere inside `model`, any
    kind."""
    if attention == "cudnn" and jax.default_backend() != "gpu":
        raise ValueError(f"attention='cudnn' needs an NVIDIA GPU; this run's backend is "
                         f"{jax.default_backend()!r}. Use 'auto' or 'xla'.")
    for _, node in nnx.iter_graph(model):
        if isinstance(node, UNet2D):
            node.set_remat(remat)
        elif isinstance(node, TemporalAttentionBlock):
            node.set_chunk(temporal_attention_chunk)
        if isinstance(node, MultiHeadAttention):
            node.set_kernel(attention)


def set_compute_dtype(model: nnx.Module, dtype) -> None:
    """Every layer of `model` computes in `dtype` (None: the dtype of its inputs and weights).

    Weights keep their stored dtype: each layer casts them, and its inputs, where it runs (inside
    a rematerialised block too, so no cast copy of the model is held for the whole step). The
    normalisation layers still reduce their statistics in float32.
    """
    for _, node in nnx.iter_graph(model):
        if isinstance(node, _CASTING_LAYERS):
            node.dtype = dtype

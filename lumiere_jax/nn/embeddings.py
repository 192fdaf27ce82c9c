"""Embeddings of the diffusion time."""
import jax.numpy as jnp


def sinusoidal_embedding(t, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
    """Sinusoidal features of a continuous time `t` (B,) in [0, 1] -> (B, dim)."""
    if dim % 2:
        raise ValueError(f"Embedding dimension must be even, got {dim}.")
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = (scale * t.astype(jnp.float32))[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)

"""Spatial super-resolution over temporal windows (MultiDiffusion across time)."""
from lumiere_jax.ssr.multidiffusion import temporal_multidiffusion, window_starts

__all__ = ["temporal_multidiffusion", "window_starts"]

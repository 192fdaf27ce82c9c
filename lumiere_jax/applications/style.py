"""Stylized generation (paper section 4.1): the video model's spatial weights blended with those
of a style fine-tuned copy of its T2I, W = alpha * W_style + (1 - alpha) * W_orig; the temporal
layers are kept as trained."""
from __future__ import annotations

import chex
import jax


def check_alpha(alpha: float) -> float:
    """alpha as a float, refused outside [0, 1]."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"The style weight alpha must be in [0, 1], got {alpha}.")
    return alpha


def interpolate_weights(original, style, alpha: float):
    """alpha * style + (1 - alpha) * original, leaf by leaf (two pytrees of the same structure
    and shapes); exactly `original` at alpha = 0 and `style` at alpha = 1."""
    alpha = check_alpha(alpha)
    chex.assert_trees_all_equal_shapes_and_dtypes(original, style)
    if alpha == 0.0:
        return original
    if alpha == 1.0:
        return style
    return jax.tree.map(lambda o, s: alpha * s + (1.0 - alpha) * o, original, style)

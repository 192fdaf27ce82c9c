"""Comparing train states and pytrees computed in different ways (sharded, multi-process)."""
import chex
import jax
import numpy as np


def assert_trees_close(actual, expected, rtol=1e-5):
    """Equal up to float32 reduction order: within rtol, or rtol of the tree's largest magnitude
    (a value that is zero in exact arithmetic comes out as rounding noise of that scale)."""
    actual, expected = jax.device_get(actual), jax.device_get(expected)
    chex.assert_trees_all_equal_structs(actual, expected)
    scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(expected) if np.size(x))
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale),
                 actual, expected)


def adam_moments(state):
    """Adam's state in the trainer's optimizer chain(clip, adamw(...))."""
    return state.opt_state[1][0]


def assert_train_states_close(actual, expected, learning_rates, rtol=1e-5):
    """Train states after the same steps agree to rounding, except where Adam magnifies it.

    Adam moves a weight by about lr * g / (|g| + eps). Some gradients are zero in exact
    arithmetic (e.g. a bias adding a per-channel constant that the next per-channel GroupNorm
    removes): theirs is rounding noise near eps, which that division scales up to ~lr a step.
    Those weights (and their EMA) are held to within 2 * sum(learning_rates); the rest, and the
    optimizer state, to rtol.
    """
    actual, expected = jax.device_get(actual), jax.device_get(expected)
    for field in ("step", "frozen", "opt_state", "rng"):
        assert_trees_close(getattr(actual, field), getattr(expected, field), rtol)
    gradient_scale = jax.tree.map(lambda nu: float(np.sqrt(nu.max())), adam_moments(expected).nu)
    largest = max(jax.tree.leaves(gradient_scale))
    noise_only = jax.tree.map(lambda g: g <= 1e-5 * largest, gradient_scale)
    assert sum(jax.tree.leaves(noise_only)) < 0.1 * len(jax.tree.leaves(noise_only))
    noise_atol = 2 * float(sum(learning_rates))
    for field in ("params", "ema_params"):
        values = getattr(expected, field)
        scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(values))
        jax.tree.map(
            lambda a, e, noise: np.testing.assert_allclose(
                a, e, rtol=rtol, atol=noise_atol if noise else rtol * scale),
            getattr(actual, field), values, noise_only)

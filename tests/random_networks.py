"""Feature-extractor networks (I3D, C3D) with random weights, built without JAX's initialisers
(fast): kernels ~ N(0, 1 / fan-in), biases and batch-norm means small, variances near 1."""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lumiere_jax.eval.video_extractors import abstract_network


def random_value(name: str, shape, rng: np.random.Generator) -> np.ndarray:
    if name == "kernel":
        return rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
    if name in ("var", "scale"):
        return 1.0 + 0.2 * rng.random(shape)
    if name == "input_mean":
        return 100.0 + 20.0 * rng.random(shape)
    return 0.1 * rng.normal(size=shape)


def random_network(network_class, config, seed: int = 0) -> nnx.Module:
    """`network_class(config)` with random weights from numpy's generator `seed`."""
    graphdef, state = nnx.split(abstract_network(network_class, config))
    rng = np.random.default_rng(seed)
    flat = nnx.to_flat_state(state)
    for path, variable in flat:
        variable.set_value(jnp.asarray(random_value(str(path[-1]), variable.shape, rng),
                                       jnp.float32))
    state = nnx.from_flat_state(flat)
    return nnx.merge(graphdef, state)

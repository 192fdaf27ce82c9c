"""Weights of feature-extractor networks (I3D, C3D) as one `.npz` file: one array per variable
of the NNX module (parameters, batch-norm statistics, input normalisation), keyed by its path in
the module joined with '/', e.g. `Conv3d_1a_7x7/conv/kernel`. `write_npz` writes a module's
variables in exactly that layout (the round trip, and the template to convert other weights to);
`load_npz` checks the file against the module (every key present, none unexpected, every shape
equal) before writing anything into it.
"""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx


class WeightsError(ValueError):
    """A weight file that does not fit the network: missing, unexpected or mis-shaped keys."""


def _flat_variables(module: nnx.Module) -> dict[str, nnx.Variable]:
    """Every variable of `module` but random-number state, by its '/'-joined path."""
    state = nnx.state(module, nnx.Not(nnx.RngState))
    return {"/".join(str(part) for part in path): variable
            for path, variable in nnx.to_flat_state(state)}


def variable_shapes(module: nnx.Module) -> dict[str, tuple[int, ...]]:
    """The npz layout `module` reads: key -> array shape."""
    return {key: tuple(variable.shape) for key, variable in _flat_variables(module).items()}


def write_npz(module: nnx.Module, path: str) -> None:
    """Writes every variable of `module` (float32 arrays) to the npz file `path`."""
    arrays = {key: np.asarray(variable.get_value(), np.float32)
              for key, variable in _flat_variables(module).items()}
    np.savez(path, **arrays)


def _describe(keys, limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_npz(module: nnx.Module, path: str, what: str = "network") -> nnx.Module:
    """Loads the npz file `path` into `module` (in place; also returned). Raises WeightsError
    naming the missing, unexpected or wrong-shaped keys, FileNotFoundError for no file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {what} weight file at {path!r} (an .npz file; see "
                                f"docs/metrics.md for its layout).")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path!r} is not a readable .npz file: {error}") from error
    if not hasattr(archive, "files"):
        raise WeightsError(f"{path!r} holds a single array; the weights are an .npz file of "
                           f"named arrays (docs/metrics.md).")
    variables = _flat_variables(module)
    with archive:
        missing = set(variables) - set(archive.files)
        unexpected = set(archive.files) - set(variables)
        if missing or unexpected:
            problems = [f"missing key(s) {_describe(missing)}" if missing else "",
                        f"unexpected key(s) {_describe(unexpected)}" if unexpected else ""]
            raise WeightsError(f"{path!r} does not fit the {what}: "
                               f"{'; '.join(p for p in problems if p)}.")
        arrays = {key: archive[key] for key in variables}
    for key, variable in variables.items():
        if tuple(arrays[key].shape) != tuple(variable.shape):
            raise WeightsError(f"{path!r}: key {key!r} has shape {tuple(arrays[key].shape)}, the "
                               f"{what} needs {tuple(variable.shape)}.")
    for key, variable in variables.items():
        variable.set_value(jnp.asarray(arrays[key], variable.get_value().dtype))
    return module

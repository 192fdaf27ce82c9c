"""Weight types: which weights a training stage updates is a Variable type, not a list of names."""
from __future__ import annotations

from typing import TypeVar

from flax import nnx

ModuleT = TypeVar("ModuleT", bound=nnx.Module)


def retype_params(module: ModuleT, param_type: type[nnx.Param]) -> ModuleT:
    """Retypes every plain `nnx.Param` inside `module` as `param_type` (metadata kept)."""
    for _, node in list(nnx.iter_modules(module)):
        for name, value in list(vars(node).items()):
            if type(value) is nnx.Param:
                setattr(node, name, param_type.from_metadata(value.get_raw_value(),
                                                             value.get_metadata()))
    return module

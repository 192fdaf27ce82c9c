"""Paths in exported configs: nothing machine-specific is stored.

A path inside the package's weights dir is stored relative to it (`"t2i_shapes"`); any other path
(a training machine's folder) is dropped. Loading an export never reads these paths: the export
holds every weight itself.
"""
from __future__ import annotations

import copy
import os

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")

# (section, key) of every config value that names a file or folder.
PATH_KEYS = (("model", "backbone"), ("model", "text_checkpoint"), ("checkpoint", "init_from"),
             ("data", "data_dir"))


def portable_path(path: str) -> str:
    """`path` relative to the package weights dir if inside it, else "" (dropped)."""
    if not path:
        return ""
    absolute = os.path.realpath(os.path.abspath(path))
    relative = os.path.relpath(absolute, os.path.realpath(WEIGHTS_DIR))
    if relative.startswith(os.pardir) or os.path.isabs(relative):
        return ""
    return relative


def portable_config(config: dict) -> dict:
    """A copy of a config dict whose path values are portable (see `portable_path`)."""
    config = copy.deepcopy(config)
    for section, key in PATH_KEYS:
        values = config.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str):
            values[key] = portable_path(values[key])
    return config

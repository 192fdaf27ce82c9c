"""Exported configs keep no machine-specific path, and loading an export never needs one."""
import json
import os

import chex
import pytest
from flax import nnx

from configs import t2i_shapes
from lumiere_jax.checkpoints.exported import load_exported, read_exported_config, save_exported
from lumiere_jax.checkpoints.paths import PATH_KEYS, WEIGHTS_DIR, portable_config, portable_path
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config

SHIPPED = ("t2i_shapes", "stunet_shapes", "t5_shapes", "sr_shapes", "ssr_shapes",
           "conditional_shapes", "t2i_outlined_shapes")


def test_paths_inside_the_weights_dir_become_relative_and_others_are_dropped(tmp_path):
    assert portable_path(os.path.join(WEIGHTS_DIR, "t2i_shapes")) == "t2i_shapes"
    assert portable_path(os.path.join(WEIGHTS_DIR, "t2i_shapes", "")) == "t2i_shapes"
    assert portable_path(str(tmp_path / "runs" / "export")) == ""
    assert portable_path("") == ""
    config = {"model": {"backbone": str(tmp_path), "unet": {"resolution": 32}},
              "checkpoint": {"init_from": os.path.join(WEIGHTS_DIR, "t5_shapes")}, "seed": 1}
    portable = portable_config(config)
    assert portable == {"model": {"backbone": "", "unet": {"resolution": 32}},
                        "checkpoint": {"init_from": "t5_shapes"}, "seed": 1}
    assert config["model"]["backbone"] == str(tmp_path)  # the argument is not changed


def test_an_export_stores_portable_paths_and_loads_without_them(tmp_path):
    config = t2i_shapes.get_config("variant=tiny")
    config.model.text_checkpoint = str(tmp_path / "machine" / "t5")  # never read below
    config.data.data_dir = str(tmp_path / "data")
    model = build_model(parse_model_config(config.model), seed=3)
    directory = str(tmp_path / "export")
    save_exported(directory, nnx.state(model, nnx.Param), config.to_dict())
    stored = json.load(open(os.path.join(directory, "config.json")))
    assert stored["model"]["text_checkpoint"] == "" and stored["data"]["data_dir"] == ""
    loaded, _ = load_exported(directory)
    chex.assert_trees_all_equal(nnx.state(loaded, nnx.Param).to_pure_dict(),
                                nnx.state(model, nnx.Param).to_pure_dict())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_name_no_machine_path(name):
    config = read_exported_config(os.path.join(WEIGHTS_DIR, name)).to_dict()
    sections = [config, config.get("pretraining", {})]
    for section in sections:
        for part, key in PATH_KEYS:
            value = section.get(part, {}).get(key, "")
            assert value == "" or (not os.path.isabs(value)
                                   and os.path.isdir(os.path.join(WEIGHTS_DIR, value))), (part, key, value)

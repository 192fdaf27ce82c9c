"""Loads the PyTorch peers' model modules alone, without their packages' `__init__` (which
import trainers, data loaders, torchvision and Hugging Face hubs): imagen-pytorch's `Unet3D`,
denoising-diffusion-pytorch's `KarrasUnet` and lumiere-pytorch's `Lumiere`. Only the side venv
of `benchmarks/peer_venv.sh` has them.

imagen-pytorch's model module reads the width of its default T5 from the Hugging Face hub when
it is imported (a default argument of `Unet3D`); the race feeds text embeddings of its own width,
so a stand-in for its `t5` module answers that width locally and nothing reaches for a network.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

PEER_VENV_HINT = "install the peers with benchmarks/peer_venv.sh and run the race from that venv"

# d_model of google/t5-v1_1-base, the T5 imagen-pytorch names by default: only the default of
# Unet3D's `text_embed_dim`, which the race always sets.
T5_BASE_WIDTH = 768


def stand_in_package(package: str) -> None:
    """Registers an empty module with `package`'s path as `package` (unless it is imported
    already), so its submodules import without its `__init__.py` running."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"The package {package!r} is not installed: {PEER_VENV_HINT}.")
    stand_in = types.ModuleType(package)
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules[package] = stand_in


def load_model_module(package: str, module: str) -> types.ModuleType:
    """`package.module`, imported without running `package/__init__.py`."""
    stand_in_package(package)
    return importlib.import_module(f"{package}.{module}")


def offline_t5_module() -> types.ModuleType:
    """What imagen-pytorch's model module imports from its `t5` module, without transformers:
    the default T5's name and width; encoding text is refused (the race gives embeddings)."""
    module = types.ModuleType("imagen_pytorch.t5")
    module.DEFAULT_T5_NAME = "google/t5-v1_1-base"

    def get_encoded_dim(name):
        if name != module.DEFAULT_T5_NAME:
            raise ValueError(f"Only the default T5's width is known offline, not {name!r}.")
        return T5_BASE_WIDTH

    def t5_encode_text(*args, **kwargs):
        raise RuntimeError("No T5 in the peer race: pass text_embeds to the Unet3D.")

    module.get_encoded_dim = get_encoded_dim
    module.t5_encode_text = t5_encode_text
    return module


def unet3d_class():
    """imagen-pytorch's `Unet3D` (imagen_pytorch.imagen_video)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here needs the hub
    if "imagen_pytorch.imagen_video" not in sys.modules:
        stand_in_package("imagen_pytorch")
        sys.modules.setdefault("imagen_pytorch.t5", offline_t5_module())
    return load_model_module("imagen_pytorch", "imagen_video").Unet3D


def karras_unet_class():
    """denoising-diffusion-pytorch's 2D `KarrasUnet` (denoising_diffusion_pytorch.karras_unet)."""
    return load_model_module("denoising_diffusion_pytorch", "karras_unet").KarrasUnet


def lumiere_class():
    """lumiere-pytorch's `Lumiere` (lumiere_pytorch.lumiere): inflates a 2D U-Net in time."""
    return load_model_module("lumiere_pytorch", "lumiere").Lumiere

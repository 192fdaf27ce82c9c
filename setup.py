"""Installs lumiere-jax: a JAX/Flax reimplementation of Lumiere (space-time video diffusion)."""
import os

import setuptools


def shipped_weight_files():
    """Every file under lumiere_jax/weights (Orbax checkpoints nest several folders deep)."""
    root = os.path.join("lumiere_jax", "weights")
    return [os.path.relpath(os.path.join(folder, name), "lumiere_jax")
            for folder, _, names in os.walk(root) for name in names]


setuptools.setup(
    name="lumiere-jax",
    version="0.1.0",
    description="Lumiere space-time video diffusion in JAX/Flax NNX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["lumiere_jax", "lumiere_jax.*", "configs", "configs.*"]),
    include_package_data=True,
    package_data={"lumiere_jax": shipped_weight_files()},
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "tensorflow-datasets>=4.9.10",
        "array-record>=0.8.6",
        "grain>=0.2.18",
        "einops>=0.8",
        "ml-collections>=1.1.0",
        "chex>=0.1.92",
        "absl-py",
        "numpy",
        "scipy",
        "pillow",
        "imageio>=2.38",
        "imageio-ffmpeg>=0.8",
        "tqdm",
        "importlib_resources",
    ],
    extras_require={
        # xdist: the suite runs on every core (tests/conftest.py); nbclient, nbformat and
        # ipykernel run launch/colab_sampling.ipynb headless (tests/test_notebook.py);
        # matplotlib draws launch/plot_curves.py's learning curves (a README command).
        "dev": ["pytest>=9", "pytest-xdist>=3.6", "nbclient>=0.10", "nbformat>=5.10",
                "ipykernel>=6.29", "matplotlib"],
        "plots": ["matplotlib"],
        "tpu": ["jax[tpu]"],  # the libtpu this jax was released with (TPU runtime and AOT compiler)
    },
    entry_points={"console_scripts": ["lumiere-jax=lumiere_jax.cli:main"]},
)

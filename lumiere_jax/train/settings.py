"""A training config parsed once, at the edge, into typed settings (`RunSettings`)."""
from __future__ import annotations

import dataclasses

import ml_collections

from lumiere_jax import settings as S
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.settings import ModelSettings, parse_model_config

SECTIONS = ("model", "diffusion", "data", "optim", "compute", "mesh", "checkpoint", "log", "sample",
            "seed")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Every section of a training config (of an image or video model), typed."""
    model: ModelSettings
    diffusion: DiffusionSettings
    data: S.DataSettings
    optim: S.OptimSettings
    compute: S.ComputeSettings
    mesh: S.MeshSettings
    checkpoint: S.CheckpointSettings
    log: S.LogSettings
    sample: S.SampleSettings
    seed: int


def parse_run_config(config: ml_collections.ConfigDict) -> RunSettings:
    """Validates every section of a training config; errors name the bad key."""
    S.check_sections(config, SECTIONS)
    section = lambda cls, name: S.from_config(cls, config.get(name, {}), name)
    return RunSettings(
        model=parse_model_config(config.get("model", {})),
        diffusion=section(DiffusionSettings, "diffusion"),
        data=section(S.DataSettings, "data"),
        optim=section(S.OptimSettings, "optim"),
        compute=section(S.ComputeSettings, "compute"),
        mesh=section(S.MeshSettings, "mesh"),
        checkpoint=section(S.CheckpointSettings, "checkpoint"),
        log=section(S.LogSettings, "log"),
        sample=section(S.SampleSettings, "sample"),
        seed=int(config.get("seed", 0)),
    )

"""Joining a multi-process JAX run (several hosts, or several processes on one machine)."""
from __future__ import annotations

import jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """`jax.distributed.initialize`, before any other JAX call. Without arguments the cluster
    (TPU pod, SLURM, ...) is detected; give all three to start processes by hand (e.g. on CPU).
    CPU processes talk through gloo collectives."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)

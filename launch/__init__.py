"""Launching lumiere-jax runs: TPU pod scripts (bash, see launch/README.md) and the sweep runner."""

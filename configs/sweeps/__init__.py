"""Sweep files for `python -m launch.sweep`: BASE_CONFIG and get_sweep() (a list of overrides)."""

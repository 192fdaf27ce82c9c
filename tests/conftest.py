"""Test set-up: 8 virtual CPU devices so sharded code is checked against unsharded code, and
XLA's fast-compiling CPU code (`limits.FAST_COMPILE`)."""
import os

from limits import FAST_COMPILE  # noqa: E402

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if FAST_COMPILE not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + FAST_COMPILE
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Each worker holds 8 virtual devices and compiles its own models (up to ~3 GB each).
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pytest.ini): one worker a core, at most MAX_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))

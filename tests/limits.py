"""Shared settings of the test processes.

SAFETY_LIMIT_S: how long a test's subprocess may run before it counts as hung: a generous safety
limit that fails with a clear message, never a speed assertion (the suite must pass on a busy
machine).

FAST_COMPILE: the XLA flag every test process (and the subprocesses the tests start) runs with:
no LLVM optimisation of CPU code. The suite's tiny models spend far longer compiling than
running, and this cuts a STUNet train-step test by a third; results stay within every test's
tolerance (the numerics are XLA's, only the generated code's speed differs).
"""
SAFETY_LIMIT_S = 900
FAST_COMPILE = "--xla_backend_optimization_level=0"

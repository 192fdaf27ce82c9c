"""How long a test's subprocess may run before it counts as hung: a generous safety limit that
fails with a clear message, never a speed assertion (the suite must pass on a busy machine)."""
SAFETY_LIMIT_S = 900

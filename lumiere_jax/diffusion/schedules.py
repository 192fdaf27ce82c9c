"""Variance-preserving noise schedules and conversions between v, eps and x0.

Continuous time t in [0, 1]: t=0 is clean data, t=1 is (almost) pure noise, and

    x_t = alpha(t) * x0 + sigma(t) * eps,    alpha^2 + sigma^2 = 1.

A schedule is defined by its log signal-to-noise ratio log(alpha^2 / sigma^2); alpha and sigma
follow from it through the sigmoid, which keeps alpha^2 + sigma^2 = 1 to float precision.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

# log-SNR is clipped to this range so that it stays finite at t=0 and t=1
# (alpha(1) = sigma(0) = sqrt(sigmoid(-20)) ~ 4.5e-5).
LOG_SNR_MIN = -20.0
LOG_SNR_MAX = 20.0

PREDICTION_KINDS = ("v", "eps", "x0")

_COSINE_OFFSET = 0.008
_LINEAR_BETA_MIN = 0.1
_LINEAR_BETA_MAX = 20.0


def _cosine_log_snr(t: jax.Array) -> jax.Array:
    """Nichol & Dhariwal: alpha^2(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s)).

    Written as log(f(t) / (f(0) - f(t))) with cos^2 a - cos^2 b = sin(b - a) sin(b + a), which
    is exact at both ends (+inf at t=0, -inf at t=1) before clipping.
    """
    s = _COSINE_OFFSET
    half_pi = 0.5 * math.pi
    log_f = 2.0 * jnp.log(jnp.sin(half_pi * (1.0 - t) / (1.0 + s)))
    log_f0_minus_f = jnp.log(jnp.sin(half_pi * t / (1.0 + s))) + jnp.log(
        jnp.sin(half_pi * (t + 2.0 * s) / (1.0 + s))
    )
    return log_f - log_f0_minus_f


def _linear_log_snr(t: jax.Array) -> jax.Array:
    """Continuous DDPM linear betas: alpha^2 = exp(-int_0^t beta), beta(t) linear in t."""
    integral = _LINEAR_BETA_MIN * t + 0.5 * t**2 * (_LINEAR_BETA_MAX - _LINEAR_BETA_MIN)
    # log(alpha^2 / sigma^2) = log(e^-I / (1 - e^-I)) = -log(e^I - 1)
    return -jnp.log(jnp.expm1(integral))


_LOG_SNR_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "cosine": _cosine_log_snr,
    "linear": _linear_log_snr,
}
SCHEDULE_NAMES = tuple(_LOG_SNR_FNS)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A named variance-preserving schedule; hashable, so it can be a static jit argument.

    `shift` adds a constant to the log-SNR: negative values spend more of the time axis at high
    noise, where the global layout (background, colour) of large flat images is decided.
    """

    name: str
    shift: float = 0.0

    def __post_init__(self):
        if self.name not in _LOG_SNR_FNS:
            raise ValueError(
                f"Unknown noise schedule {self.name!r}; allowed names: {', '.join(SCHEDULE_NAMES)}."
            )

    def log_snr(self, t) -> jax.Array:
        """log(alpha^2 / sigma^2) at time t, decreasing in t and clipped to stay finite."""
        t = jnp.asarray(t, jnp.float32)
        return jnp.clip(_LOG_SNR_FNS[self.name](t) + self.shift, LOG_SNR_MIN, LOG_SNR_MAX)

    def alpha_sigma(self, t) -> tuple[jax.Array, jax.Array]:
        """(alpha(t), sigma(t)) with the shape of t."""
        log_snr = self.log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(log_snr)), jnp.sqrt(jax.nn.sigmoid(-log_snr))


# Simple diffusion (Hoogeboom et al. 2023): a schedule that suits `BASE_RESOLUTION` px images is
# shifted by 2 ln(base / resolution) for other sizes (toward noise above the base, toward signal
# below), because average pooling by a factor k raises the SNR by k^2.
BASE_RESOLUTION = 64


def resolution_shift(resolution: int, base: int = BASE_RESOLUTION) -> float:
    """The log-SNR shift for images of `resolution` px: 2 ln(base / resolution), e.g. +1.386 at
    32 px, 0 at 64 px, -1.386 at 128 px."""
    if resolution < 1 or base < 1:
        raise ValueError(f"resolution and base must be positive, got {resolution} and {base}.")
    return 2.0 * math.log(base / resolution)


def video_log_snr_shift(num_frames: int) -> float:
    """The extra log-SNR shift of a video stage's training noise levels for clips of
    `num_frames` frames: -ln T (0 for one frame). T frames share one trajectory, as a k x k
    pooling shares a layout, so the noise that hides it is T times (in SNR) the noise that hides
    one frame's."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    return -math.log(num_frames)


def times_for_log_snr(schedule: "Schedule", log_snr, iterations: int = 60) -> jax.Array:
    """t with schedule.log_snr(t) = log_snr (bisection; log-SNR decreases in t), within the clip."""
    target = jnp.clip(jnp.asarray(log_snr, jnp.float32), LOG_SNR_MIN, LOG_SNR_MAX)
    low, high = jnp.zeros_like(target), jnp.ones_like(target)
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        above = schedule.log_snr(middle) > target  # still too little noise: move right
        low, high = jnp.where(above, middle, low), jnp.where(above, high, middle)
    return 0.5 * (low + high)


def get_schedule(schedule: str | Schedule) -> Schedule:
    """The Schedule called `schedule` (a Schedule passes through); ValueError on unknown names."""
    if isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, str):
        raise ValueError(
            f"A schedule is given by name; got {schedule!r}. Allowed names: {', '.join(SCHEDULE_NAMES)}."
        )
    return Schedule(schedule)


def check_prediction_kind(kind: str) -> None:
    """Raise a ValueError naming the allowed kinds unless `kind` is one of them."""
    if kind not in PREDICTION_KINDS:
        raise ValueError(
            f"Unknown prediction kind {kind!r}; allowed: {', '.join(map(repr, PREDICTION_KINDS))}."
        )


def per_example(a, x: jax.Array) -> jax.Array:
    """Reshape a scalar or per-example array `a` of shape (B,) to broadcast against x (B, ...)."""
    a = jnp.asarray(a)
    if a.ndim == 0:
        return a
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


# ---------------------------------------------------------------------------------------------
# Conversions. alpha and sigma are scalars or per-example arrays of shape (B,); x has any rank.
# The v-parameterisation (Salimans & Ho): v = alpha * eps - sigma * x0.


def x0_from_eps(x_t, eps, alpha, sigma) -> jax.Array:
    """x0 = (x_t - sigma eps) / alpha."""
    return (x_t - per_example(sigma, x_t) * eps) / per_example(alpha, x_t)


def eps_from_x0(x_t, x0, alpha, sigma) -> jax.Array:
    """eps = (x_t - alpha x0) / sigma."""
    return (x_t - per_example(alpha, x_t) * x0) / per_example(sigma, x_t)


def v_from_x0_eps(x0, eps, alpha, sigma) -> jax.Array:
    """v = alpha eps - sigma x0."""
    return per_example(alpha, x0) * eps - per_example(sigma, x0) * x0


def x0_from_v(x_t, v, alpha, sigma) -> jax.Array:
    """x0 = alpha x_t - sigma v."""
    return per_example(alpha, x_t) * x_t - per_example(sigma, x_t) * v


def eps_from_v(x_t, v, alpha, sigma) -> jax.Array:
    """eps = sigma x_t + alpha v."""
    return per_example(sigma, x_t) * x_t + per_example(alpha, x_t) * v


def to_x0_eps(prediction, x_t, alpha, sigma, kind: str) -> tuple[jax.Array, jax.Array]:
    """(x0, eps) implied by a model output of the given kind ("v", "eps" or "x0") at x_t."""
    check_prediction_kind(kind)
    if kind == "v":
        return x0_from_v(x_t, prediction, alpha, sigma), eps_from_v(x_t, prediction, alpha, sigma)
    if kind == "eps":
        return x0_from_eps(x_t, prediction, alpha, sigma), prediction
    return prediction, eps_from_x0(x_t, prediction, alpha, sigma)


def from_x0_eps(x0, eps, alpha, sigma, kind: str) -> jax.Array:
    """The model output of the given kind ("v", "eps" or "x0") for a pair (x0, eps)."""
    check_prediction_kind(kind)
    if kind == "v":
        return v_from_x0_eps(x0, eps, alpha, sigma)
    if kind == "eps":
        return eps
    return x0

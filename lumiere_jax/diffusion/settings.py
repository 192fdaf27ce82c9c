"""The typed `diffusion` section of a config."""
from __future__ import annotations

import dataclasses
import math

from lumiere_jax.diffusion.losses import LOSS_WEIGHTINGS
from lumiere_jax.diffusion.schedules import SCHEDULE_NAMES, Schedule


@dataclasses.dataclass(frozen=True)
class DiffusionSettings:
    """Noise schedule, model output parameterisation, loss weighting and condition dropout for CFG.

    `loss_weighting` "min_snr" weights each example's loss by Min-SNR-gamma (`min_snr_gamma`),
    "clamped_snr" by its x0-space weight clip(SNR, 1, gamma); "none" is the plain MSE of the
    prediction (see `diffusion.loss_weight`).

    A `focus_fraction` of each batch draws t from U(focus_t_min, focus_t_max) instead of U(0, 1):
    more training on the noise levels where the samples go wrong (e.g. low noise, where edges are
    refined, or mid noise, where a shifted schedule decides an object's outline).

    `train_log_snr_shift` moves the noise levels training draws, not what t means to the model:
    t is drawn as if the schedule were shifted by this much more (negative: more high-noise
    draws). A clip's T frames carry one trajectory, so the noise that hides it is about ln T
    (in log-SNR) higher than the noise that hides one frame's layout; the video stage draws
    its levels shifted by -ln T (`diffusion.video_log_snr_shift`), while its frozen backbone keeps the
    schedule it was trained on.

    `frame_noise_correlation` (video models): the correlation of the noise between any two
    frames of a clip, in training and sampling alike (`diffusion.noise`); 0 = independent.
    """
    schedule: str = "cosine"
    schedule_shift: float = 0.0
    prediction: str = "v"
    cond_drop_prob: float = 0.1
    loss_weighting: str = "none"
    min_snr_gamma: float = 5.0
    focus_fraction: float = 0.0
    focus_t_min: float = 0.0
    focus_t_max: float = 0.15
    frame_noise_correlation: float = 0.0
    train_log_snr_shift: float = 0.0

    def noise_schedule(self) -> Schedule:
        """The noise schedule these settings describe."""
        return Schedule(self.schedule, float(self.schedule_shift))

    def training_schedule(self) -> Schedule:
        """The schedule whose uniform-in-t draws give training's noise levels."""
        return Schedule(self.schedule, float(self.schedule_shift) + float(self.train_log_snr_shift))

    def __post_init__(self):
        if self.schedule not in SCHEDULE_NAMES:
            raise ValueError(f"schedule {self.schedule!r} is not one of {SCHEDULE_NAMES}")
        if self.prediction not in ("v", "eps"):
            raise ValueError(f"prediction {self.prediction!r} is not one of ('v', 'eps')")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting {self.loss_weighting!r} is not one of {LOSS_WEIGHTINGS}")
        if not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be positive, got {self.min_snr_gamma}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        if not 0.0 <= self.frame_noise_correlation < 1.0:
            raise ValueError(f"frame_noise_correlation must be in [0, 1), got "
                             f"{self.frame_noise_correlation}")
        if not math.isfinite(self.train_log_snr_shift):
            raise ValueError(f"train_log_snr_shift must be finite, got {self.train_log_snr_shift}")
        if not 0.0 <= self.focus_fraction <= 1.0:
            raise ValueError(f"focus_fraction must be in [0, 1], got {self.focus_fraction}")
        if not 0.0 <= self.focus_t_min < self.focus_t_max <= 1.0:
            raise ValueError("need 0 <= focus_t_min < focus_t_max <= 1, got "
                             f"{self.focus_t_min} and {self.focus_t_max}")


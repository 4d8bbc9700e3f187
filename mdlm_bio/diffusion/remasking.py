"""ReMDM's remasking schedules (Wang et al. 2025, arXiv 2503.00307): how often a revealed token is masked again.

ReMDM replaces MDLM's reverse step t -> s by a family with the same marginals q(z_t | x), indexed by sigma_t: a
revealed token is masked again with probability sigma_t, and a masked one is revealed with probability
(alpha_s - (1 - sigma_t) alpha_t) / (1 - alpha_t). sigma_t = 0 is MDLM; sigma_t may not exceed
sigma_max = min(1, (1 - alpha_s) / alpha_t), where the reveal probability reaches 1.

- "cap": sigma_t = min(eta, sigma_max).
- "rescale": sigma_t = eta * sigma_max.
- "loop": three phases of the grid time. Above t_on, MDLM brings alpha from 0 to alpha_on; between t_on and
  t_off, alpha stays at alpha_on and sigma_t = eta, so tokens are masked and revealed at the same rate (a
  corrector loop at a fixed noise level); below t_off, MDLM brings alpha from alpha_on to 1.

The defaults are the ones the ReMDM code uses on OpenWebText at 1024 steps (cap 0.008, rescale 0.015, loop
0.02 with t_on 0.55, t_off 0.05, alpha_on 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch-free at import: the sampler declarations validate their options with this class
    from torch import Tensor

    from .schedules import NoiseSchedule

RemaskStrategy = Literal["cap", "rescale", "loop"]
STRATEGIES: tuple[RemaskStrategy, ...] = ("cap", "rescale", "loop")
DEFAULT_ETA: dict[str, float] = {"cap": 0.008, "rescale": 0.015, "loop": 0.02}


@dataclass(frozen=True)
class StepLevels:
    """One reverse step: the time the network is told, alpha before and after, and the remasking rate."""

    t: Tensor  # 0-d float64
    alpha_t: float
    alpha_s: float
    sigma: float


@dataclass(frozen=True)
class Remasking:
    strategy: RemaskStrategy = "loop"
    eta: float | None = None  # None: the strategy's default
    t_on: float = 0.55
    t_off: float = 0.05
    alpha_on: float = 0.9

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"remasking strategy must be one of {list(STRATEGIES)}, not {self.strategy!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"eta must lie in [0, 1]; got {self.rate}")
        if self.strategy == "loop":
            if not 0.0 < self.t_off < self.t_on < 1.0:
                raise ValueError(f"the loop needs 0 < t_off < t_on < 1; got t_off={self.t_off}, t_on={self.t_on}")
            if not 0.0 < self.alpha_on < 1.0:
                raise ValueError(f"alpha_on must lie in (0, 1); got {self.alpha_on}")
            if self.rate > (1.0 - self.alpha_on) / self.alpha_on:
                raise ValueError(f"eta={self.rate} exceeds (1 - alpha_on) / alpha_on = "
                                 f"{(1.0 - self.alpha_on) / self.alpha_on:.4g}, beyond which a step would reveal "
                                 f"more than every masked token")

    @property
    def rate(self) -> float:
        """eta as given, or the strategy's default."""
        return DEFAULT_ETA[self.strategy] if self.eta is None else self.eta

    def levels(self, schedule: NoiseSchedule, times: Tensor, step: int) -> StepLevels:
        """The levels of step `step` on the decreasing grid `times` (times[0] = 1, times[-1] = 0)."""
        t, s = times[step], times[step + 1]
        if self.strategy == "loop":
            alpha_t, alpha_s = self._loop_alpha(float(t)), self._loop_alpha(float(s))
            looping = float(t) <= self.t_on and float(s) >= self.t_off
            # the network is told the noise level its input really has
            level = schedule.t_of_alpha(times.new_tensor(alpha_t)).clamp(0.0, 1.0)
            return StepLevels(level, alpha_t, alpha_s, self.rate if looping else 0.0)
        alpha_t, alpha_s = float(schedule.alpha(t)), float(schedule.alpha(s))
        sigma_max = 1.0 if alpha_t <= 0.0 else min(1.0, (1.0 - alpha_s) / alpha_t)
        sigma = min(self.rate, sigma_max) if self.strategy == "cap" else self.rate * sigma_max
        return StepLevels(t, alpha_t, alpha_s, sigma)

    def _loop_alpha(self, t: float) -> float:
        if t >= self.t_on:
            return self.alpha_on * (1.0 - t) / (1.0 - self.t_on)
        if t >= self.t_off:
            return self.alpha_on
        return 1.0 - t * (1.0 - self.alpha_on) / self.t_off

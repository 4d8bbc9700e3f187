"""Noise schedules: the signal level alpha(t) of masked diffusion.

A schedule maps diffusion time t in [0, 1] to the probability alpha(t) that a
token is still unmasked, falling from ~1 at t=0 to ~0 at t=1. Each schedule
also supplies alpha'(t), because the continuous-time NELBO weight is
-alpha'(t) / (1 - alpha(t)), and the inverse t(alpha), because the
first-hitting sampler draws the next event in alpha-space and must map it back
to a time the denoiser understands.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import Tensor


def check_unit_interval(value: Tensor, name: str) -> None:
    """Raise a clear error unless every entry lies in [0, 1]."""
    if not torch.is_floating_point(value):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.numel() and not bool(((value >= 0) & (value <= 1)).all()):
        raise ValueError(
            f"{name} must lie in [0, 1]; got values in "
            f"[{value.min().item():.6g}, {value.max().item():.6g}]"
        )


class NoiseSchedule(ABC):
    """alpha(t), its time derivative and its inverse, for t in [0, 1]."""

    # `check=False` skips the [0, 1] check, for times the engine or a sampler drew itself: checking reads the
    # tensor back, which would block a GPU several times per training step.

    def alpha(self, t: Tensor, *, check: bool = True) -> Tensor:
        if check:
            check_unit_interval(t, "t")
        return self._alpha(t)

    def alpha_prime(self, t: Tensor, *, check: bool = True) -> Tensor:
        """d alpha / dt (negative: the signal only decays)."""
        if check:
            check_unit_interval(t, "t")
        return self._alpha_prime(t)

    def t_of_alpha(self, alpha: Tensor, *, check: bool = True) -> Tensor:
        """The time at which the schedule reaches `alpha`, clamped into [0, 1]."""
        if check:
            check_unit_interval(alpha, "alpha")
        return self._t_of_alpha(alpha).clamp(0.0, 1.0)

    def total_noise(self, t: Tensor, *, check: bool = True) -> Tensor:
        """sigma(t) = -log alpha(t), the time embedding MDLM's DiT is conditioned on."""
        return -torch.log(self.alpha(t, check=check))

    def loss_weight(self, t: Tensor, *, check: bool = True) -> Tensor:
        """The continuous-time NELBO weight -alpha'(t) / (1 - alpha(t)) (>= 0)."""
        one_minus_alpha = (1.0 - self.alpha(t, check=check)).clamp_min(torch.finfo(t.dtype).tiny)
        return -self._alpha_prime(t) / one_minus_alpha

    # What each schedule defines: alpha, its derivative and its inverse, unchecked.

    @abstractmethod
    def _alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _alpha_prime(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _t_of_alpha(self, alpha: Tensor) -> Tensor: ...


class LogLinearSchedule(NoiseSchedule):
    """MDLM's default: alpha(t) = 1 - (1 - eps) t, i.e. sigma(t) = -log(1 - (1 - eps) t).

    eps keeps alpha(1) = eps > 0 so that sigma(1) is finite for the time embedding.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps must lie in [0, 1); got {eps}")
        self.eps = eps

    def _alpha(self, t: Tensor) -> Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def _alpha_prime(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def _t_of_alpha(self, alpha: Tensor) -> Tensor:
        return (1.0 - alpha) / (1.0 - self.eps)


class _TotalNoiseSchedule(NoiseSchedule):
    """Schedules defined through sigma(t), with alpha(t) = exp(-sigma(t))."""

    @abstractmethod
    def _sigma(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _sigma_prime(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _t_of_sigma(self, sigma: Tensor) -> Tensor: ...

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-self._sigma(t))

    def _alpha_prime(self, t: Tensor) -> Tensor:
        return -self._sigma_prime(t) * self._alpha(t)

    def _t_of_alpha(self, alpha: Tensor) -> Tensor:
        return self._t_of_sigma(-torch.log(alpha))


def _check_sigma_range(sigma_min: float, sigma_max: float, minimum: float) -> None:
    if not minimum <= sigma_min < sigma_max:
        raise ValueError(
            f"need {minimum} <= sigma_min < sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )


class LinearSigmaSchedule(_TotalNoiseSchedule):
    """sigma(t) = sigma_min + t (sigma_max - sigma_min): total noise linear in time."""

    def __init__(self, sigma_min: float = 0.0, sigma_max: float = 10.0) -> None:
        _check_sigma_range(sigma_min, sigma_max, 0.0)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def _sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min + t * (self.sigma_max - self.sigma_min)

    def _sigma_prime(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.sigma_max - self.sigma_min)

    def _t_of_sigma(self, sigma: Tensor) -> Tensor:
        return (sigma - self.sigma_min) / (self.sigma_max - self.sigma_min)


class GeometricSchedule(_TotalNoiseSchedule):
    """sigma(t) = sigma_min^(1-t) sigma_max^t: total noise geometric in time.

    sigma_max defaults to 20 (alpha(1) ~ 2e-9) so that t=1 is essentially all-mask,
    as absorbing diffusion needs.
    """

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0) -> None:
        _check_sigma_range(sigma_min, sigma_max, torch.finfo(torch.float64).tiny)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self._log_ratio = math.log(sigma_max / sigma_min)

    def _sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def _sigma_prime(self, t: Tensor) -> Tensor:
        return self._sigma(t) * self._log_ratio

    def _t_of_sigma(self, sigma: Tensor) -> Tensor:
        return torch.log(sigma / self.sigma_min) / self._log_ratio


class CosineSchedule(NoiseSchedule):
    """MD4's cosine schedule: alpha(t) = 1 - cos(pi/2 (1 - t))."""

    def _alpha(self, t: Tensor) -> Tensor:
        return 1.0 - torch.cos(0.5 * math.pi * (1.0 - t))

    def _alpha_prime(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * (1.0 - t))

    def _t_of_alpha(self, alpha: Tensor) -> Tensor:
        return 1.0 - torch.arccos(1.0 - alpha) * (2.0 / math.pi)


class PolynomialSchedule(NoiseSchedule):
    """alpha(t) = 1 - t^k; k = 1 is the linear schedule."""

    def __init__(self, k: float = 2.0) -> None:
        if k <= 0:
            raise ValueError(f"polynomial power k must be positive; got {k}")
        self.k = k

    def _alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t.pow(self.k)

    def _alpha_prime(self, t: Tensor) -> Tensor:
        return -self.k * t.pow(self.k - 1.0)

    def _t_of_alpha(self, alpha: Tensor) -> Tensor:
        return (1.0 - alpha).pow(1.0 / self.k)


SCHEDULES: dict[str, Callable[..., NoiseSchedule]] = {
    "loglinear": LogLinearSchedule,
    "linear_sigma": LinearSigmaSchedule,
    "geometric": GeometricSchedule,
    "cosine": CosineSchedule,
    "polynomial": PolynomialSchedule,
}


def make_schedule(name: str, **kwargs: Any) -> NoiseSchedule:
    """Build a schedule from its config name, e.g. make_schedule("polynomial", k=3)."""
    try:
        factory = SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown noise schedule {name!r}; choose from {sorted(SCHEDULES)}") from None
    return factory(**kwargs)

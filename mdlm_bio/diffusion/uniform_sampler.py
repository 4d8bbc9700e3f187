"""UDLM's ancestral sampler as a settings object, for uniform-state (udlm) models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .sampler import Sampler, check_steps, option


@dataclass(frozen=True)
class UniformAncestralSampler(Sampler):
    """Uniform-state diffusion's ancestral sampler: from uniform noise, every position redrawn at every step from
    q(z_s | z_t, x_theta), so a token can change more than once (udlm models only)."""

    name: ClassVar[str] = "udlm"
    process: ClassVar[str] = "uniform"
    steps: int = option(128, "time steps from t = 1 to 0")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_steps(self.steps)

"""The exact first-hitting sampler (Zheng et al. 2024) as a settings object: one unmasking event per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .sampler import Sampler, check_top_p, option

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .denoiser import Denoiser, SampleOutput
    from .schedules import NoiseSchedule


@dataclass(frozen=True)
class FirstHittingSampler(Sampler):
    """Exact, one call per generated token. It draws the time of the next unmasking event and reveals one position
    there: no time discretisation."""

    name: ClassVar[str] = "first-hitting"
    top_p: float | None = option(None, "nucleus sampling threshold (default: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_top_p(self.top_p)

    def sample(self, denoiser: Denoiser, z_init: Tensor, schedule: NoiseSchedule, mask_id: int,
               generator: int | torch.Generator | None = None) -> SampleOutput:
        from .samplers import first_hitting_sample

        return first_hitting_sample(denoiser, z_init, schedule, mask_id, top_p=self.top_p, generator=generator)

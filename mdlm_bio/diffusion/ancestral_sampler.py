"""MDLM's ancestral sampler as a settings object: plain (`ancestral`), with the per-row cache (`cached`), and with
ReMDM's remasking (`remdm`), one family since the last two are options of the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from .remasking import Remasking, RemaskStrategy
from .sampler import Sampler, check_steps, check_top_p, option

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .denoiser import Denoiser, SampleOutput
    from .schedules import NoiseSchedule

LOOP_OPTIONS = ("t_on", "t_off", "alpha_on")


@dataclass(frozen=True)
class AncestralSampler(Sampler):
    """MDLM's sampler, exact as steps grow. On a grid of `steps` steps from t = 1 to 0, each masked position is
    revealed with probability (alpha_s - alpha_t) / (1 - alpha_t). With `remask`, revealed tokens may be masked
    again (ReMDM, remasking.py)."""

    name: ClassVar[str] = "ancestral"
    steps: int = option(128, "time steps from t = 1 to 0")
    grid: Literal["uniform", "cosine"] = option("uniform", "ancestral time grid: even in t, or alpha following "
                                                "MD4's cosine schedule")
    cache: bool = option(False, "reuse a row's logits until the row changes: the same samples for fewer calls, "
                         "exact for models without time conditioning (the 'cached' sampler)")
    remask: RemaskStrategy | None = option(None, "ReMDM remasking schedule sigma_t (the 'remdm' sampler; its "
                                           "default: loop)")
    eta: float | None = option(None, "remasking rate (default: cap 0.008, rescale 0.015, loop 0.02)")
    t_on: float | None = option(None, "remask loop: where the loop starts (default: 0.55)")
    t_off: float | None = option(None, "remask loop: where it ends (default: 0.05)")
    alpha_on: float | None = option(None, "remask loop: alpha held during the loop (default: 0.9)")
    top_p: float | None = option(None, "nucleus sampling threshold (default: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_steps(self.steps)
        check_top_p(self.top_p)
        given = [name for name in ("eta", *LOOP_OPTIONS) if getattr(self, name) is not None]
        if self.remask is None and given:
            raise ValueError(f"{', '.join(given)}: remasking settings, for --sampler remdm (or with --remask)")
        loop_only = [name for name in LOOP_OPTIONS if getattr(self, name) is not None]
        if self.remask not in (None, "loop") and loop_only:
            raise ValueError(f"{', '.join(loop_only)}: settings of --remask loop, not {self.remask}")
        if self.remask is not None:
            Remasking(self.remask, self.eta, **self._loop_levels())  # its own checks: eta and the loop's levels

    @property
    def remasking(self) -> Remasking | None:
        """ReMDM's schedule, its defaults where an option is not set (None without `remask`)."""
        return None if self.remask is None else Remasking(self.remask, self.eta, **self._loop_levels())

    def _loop_levels(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in LOOP_OPTIONS if getattr(self, name) is not None}

    def sample(self, denoiser: Denoiser, z_init: Tensor, schedule: NoiseSchedule, mask_id: int,
               generator: int | torch.Generator | None = None) -> SampleOutput:
        from .samplers import ancestral_sample

        return ancestral_sample(denoiser, z_init, schedule, mask_id, steps=self.steps, grid=self.grid,
                                cache=self.cache, top_p=self.top_p, remasking=self.remasking, generator=generator)

    def describe(self) -> str:
        label = "remdm" if self.remask else "cached" if self.cache else "ancestral"
        words = [f"sampler={label}", f"steps={self.steps}"] + (["cache"] if self.remask and self.cache else [])
        remasking = self.remasking
        if remasking is not None:
            words.append(f"remask={remasking.strategy} eta={remasking.rate:g}")
            if remasking.strategy == "loop":
                words.append(f"t_on={remasking.t_on:g} t_off={remasking.t_off:g} alpha_on={remasking.alpha_on:g}")
        words += [] if self.grid == "uniform" else [f"grid={self.grid}"]
        return " ".join(words + ([] if self.top_p is None else [f"top_p={self.top_p:g}"]))

"""Confidence-based parallel decoding as a settings object (the algorithm and its caveats: confidence.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from .sampler import Sampler, check_steps, check_top_p, option

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .denoiser import Denoiser, SampleOutput
    from .schedules import NoiseSchedule


@dataclass(frozen=True)
class ConfidenceSampler(Sampler):
    """Reveals the surest positions first, in few calls, not exact. Each call proposes a token at every masked
    position and reveals the surest ones; it favours the model's modes, so judge it at equal entropy."""

    name: ClassVar[str] = "confidence"
    steps: int = option(128, "network calls allowed")
    confidence: Literal["margin", "entropy", "probability"] = option(
        "margin", "how sure a position is: top-1 minus top-2 probability, entropy, or the drawn token's probability")
    reveal: Literal["cosine", "linear"] = option("cosine", "how many positions each of the --steps calls reveals")
    threshold: float | None = option(None, "instead: reveal every position whose top token has at least this "
                                     "probability, at least one per call")
    top_p: float | None = option(None, "nucleus sampling threshold (default: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_steps(self.steps)
        check_top_p(self.top_p)
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"confidence threshold must lie in (0, 1]; got {self.threshold}")

    def sample(self, denoiser: Denoiser, z_init: Tensor, schedule: NoiseSchedule, mask_id: int,
               generator: int | torch.Generator | None = None) -> SampleOutput:
        from .confidence import confidence_sample

        return confidence_sample(denoiser, z_init, schedule, mask_id, steps=self.steps, score=self.confidence,
                                 reveal=self.reveal, threshold=self.threshold, top_p=self.top_p, generator=generator)

    def describe(self) -> str:
        reveal = f"threshold={self.threshold:g}" if self.threshold is not None else f"reveal={self.reveal}"
        words = [f"sampler={self.name}", f"steps={self.steps}", f"confidence={self.confidence}", reveal]
        return " ".join(words + ([] if self.top_p is None else [f"top_p={self.top_p:g}"]))

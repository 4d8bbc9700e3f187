"""Batched generation of any length from a denoiser: a sampler choice plus semi-autoregressive windows.

Both tracks draw samples through here (DNA FASTA, text for generative perplexity); only the mask id and
the context length differ between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import Tensor

from .confidence import ConfidenceRule, confidence_sample
from .remasking import Remasking
from .samplers import (
    Denoiser,
    SampleOutput,
    ancestral_sample,
    first_hitting_sample,
    remdm_sample,
    semi_autoregressive_sample,
)
from .schedules import NoiseSchedule

SamplerName = Literal["ancestral", "cached", "first-hitting", "remdm", "confidence"]
SAMPLERS: tuple[SamplerName, ...] = ("ancestral", "cached", "first-hitting", "remdm", "confidence")


@dataclass(frozen=True)
class SamplingPlan:
    """How to draw: the sampler, its steps (ignored by first-hitting; for confidence decoding the calls allowed),
    the model's context and mask id, and the settings of ReMDM (`remasking`) and confidence decoding
    (`confidence`; each takes its defaults when that sampler is chosen without them)."""

    sampler: SamplerName
    steps: int
    context: int
    mask_id: int
    top_p: float | None = None
    remasking: Remasking | None = None
    confidence: ConfidenceRule | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, not {self.sampler!r}")
        if self.steps < 1 or self.context < 2:
            raise ValueError(f"steps must be >= 1 and context >= 2; got steps={self.steps}, context={self.context}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1]; got {self.top_p}")
        if self.remasking is not None and self.sampler != "remdm":
            raise ValueError(f"remasking settings apply to the remdm sampler, not to {self.sampler}")
        if self.confidence is not None and self.sampler != "confidence":
            raise ValueError(f"confidence-decoding settings apply to the confidence sampler, not to {self.sampler}")
        # the chosen sampler's settings, its defaults when none were given (frozen, hence object.__setattr__)
        if self.sampler == "remdm" and self.remasking is None:
            object.__setattr__(self, "remasking", Remasking())
        if self.sampler == "confidence" and self.confidence is None:
            object.__setattr__(self, "confidence", ConfidenceRule())

    def block_sampler(self, denoiser: Denoiser, schedule: NoiseSchedule, generator: torch.Generator):
        """z_init -> SampleOutput, for one window of at most `context` tokens."""
        common = dict(schedule=schedule, mask_id=self.mask_id, top_p=self.top_p, generator=generator)
        if self.sampler == "first-hitting":
            return partial(first_hitting_sample, denoiser, **common)
        if self.sampler == "confidence":
            return partial(confidence_sample, denoiser, steps=self.steps, rule=self.confidence, **common)
        if self.sampler == "remdm":
            return partial(remdm_sample, denoiser, steps=self.steps, remasking=self.remasking, **common)
        return partial(ancestral_sample, denoiser, steps=self.steps, cache=self.sampler == "cached", **common)

    @property
    def options(self) -> str:
        """The settings of ReMDM or confidence decoding, as key=value words ('' for the other samplers)."""
        if self.remasking is not None:
            remasking = self.remasking
            text = f"remask={remasking.strategy} eta={remasking.rate:g}"
            if remasking.strategy == "loop":
                text += f" t_on={remasking.t_on:g} t_off={remasking.t_off:g} alpha_on={remasking.alpha_on:g}"
            return text
        if self.confidence is not None:
            rule = self.confidence
            reveal = f"threshold={rule.threshold:g}" if rule.threshold is not None else f"reveal={rule.schedule}"
            return f"confidence={rule.score} {reveal}"
        return ""

    @property
    def description(self) -> str:
        """What a FASTA header says about how its samples were drawn."""
        words = [f"sampler={self.sampler}"] + ([] if self.sampler == "first-hitting" else [f"steps={self.steps}"])
        words += [self.options] if self.options else []
        return " ".join(words + ([] if self.top_p is None else [f"top_p={self.top_p:g}"]))


def generate(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    plan: SamplingPlan,
    *,
    num: int,
    length: int,
    seed: int,
    batch_size: int = 16,
    prompt: Tensor | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """`num` sequences of `length` tokens (continuing the 1-D `prompt`, if given), as one CPU tensor
    [num, length], and the network calls used.

    Lengths beyond the context are generated semi-autoregressively with a half-context stride. `progress(n)`
    is told the number of new tokens after each window, so long sequences show progress as they grow.
    """
    if num < 1 or length < 1:
        raise ValueError(f"num and length must be positive; got num={num}, length={length}")
    generator = torch.Generator(device=device).manual_seed(seed)
    sample_block = plan.block_sampler(denoiser, schedule, generator)

    def draw(batch: int) -> SampleOutput:
        prefix = None if prompt is None else prompt.to(device=device, dtype=torch.long).expand(batch, -1)
        return semi_autoregressive_sample(
            sample_block, batch_size=batch, length=length, block_length=plan.context,
            stride=max(1, plan.context // 2), mask_id=plan.mask_id, prompt=prefix, device=device, progress=progress,
        )

    return in_batches(draw, num, batch_size)


def in_batches(draw: Callable[[int], SampleOutput], num: int, batch_size: int,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
    """`draw(batch)` for batches of at most `batch_size` until `num` rows, concatenated on the CPU, with
    the network calls summed: how every sampler is run over many samples."""
    batches, calls, rows = [], 0, 0
    for start in range(0, num, batch_size):
        batch = min(batch_size, num - start)
        out = draw(batch)
        batches.append(out.tokens.cpu())
        calls, rows = calls + out.num_calls, rows + out.row_calls
        if progress is not None:
            progress(batch)
    return SampleOutput(tokens=torch.cat(batches), num_calls=calls, row_calls=rows)

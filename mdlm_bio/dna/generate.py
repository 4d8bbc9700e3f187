"""Infilling and scoring DNA with any denoiser, through the engine's samplers and NELBO
(sampling new sequences is the engine's `generate`).

These take a denoiser and its context length, not a checkpoint, so they work
for any trained model; the CLI loads the checkpoint and passes them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion import MaskedDiffusion, NoiseSchedule, SampleOutput
from ..diffusion.generation import SamplingPlan
from ..diffusion.samplers import Denoiser
from .tokenizer import N


def fill_regions(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    plan: SamplingPlan,
    tokens: np.ndarray,
    fill: np.ndarray,
    seed: int,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, int]:
    """Resample the positions where `fill` is True, keeping every other base fixed.

    Works window by window (each `context` long, with a quarter of it as
    already-known left flank where possible), so records and regions of any
    length are handled.
    """
    if fill.shape != tokens.shape:
        raise ValueError(f"fill mask shape {fill.shape} differs from the sequence's {tokens.shape}")
    generator = torch.Generator(device=device).manual_seed(seed)
    sample_block = plan.block_sampler(denoiser, schedule, generator)
    current = torch.as_tensor(np.where(fill, plan.mask_id, tokens), dtype=torch.long, device=device)
    length, calls = current.numel(), 0
    while True:
        masked = torch.nonzero(current == plan.mask_id)
        if masked.numel() == 0:
            return current.cpu().numpy().astype(np.uint8), calls
        window = min(plan.context, length)
        begin = max(0, min(int(masked[0]) - window // 4, length - window))
        out: SampleOutput = sample_block(current[begin : begin + window][None])
        current[begin : begin + window] = out.tokens[0]
        calls += out.num_calls


def n_runs(tokens: np.ndarray, min_length: int = 1) -> np.ndarray:
    """Boolean mask of runs of N at least `min_length` long: the default infilling target."""
    is_n = np.concatenate([[False], tokens == N, [False]])
    edges = np.flatnonzero(np.diff(is_n.astype(np.int8)))
    mask = np.zeros(tokens.shape, dtype=bool)
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start >= min_length:
            mask[start:end] = True
    return mask


@dataclass(frozen=True)
class Score:
    """A record's -log p in nats over its scored bases: a diffusion model's NELBO (an upper bound on it) or an
    autoregressive model's exact NLL."""

    nats: float
    num_bases: int

    @property
    def bits_per_base(self) -> float:
        return self.nats / (self.num_bases * math.log(2)) if self.num_bases else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / self.num_bases) if self.num_bases else float("nan")


@torch.no_grad()
def score_sequence(
    denoiser: Denoiser,
    engine: MaskedDiffusion,
    tokens: np.ndarray,
    context: int,
    mc: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> Score:
    """Monte-Carlo NELBO of a record: non-overlapping context windows, `mc` antithetic time draws each.

    Windows are scored independently, so the sum bounds the NLL of the record
    under the model's window-wise factorisation. N positions are context, not scored.
    """
    if mc < 1:
        raise ValueError(f"mc must be a positive number of Monte-Carlo samples; got {mc}")
    generator = torch.Generator(device=device).manual_seed(seed)
    all_tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
    total = 0.0
    for begin in range(0, all_tokens.numel(), context):
        window = all_tokens[begin : begin + context].expand(mc, -1)
        out = engine.loss(denoiser, window, attention_mask=window != N, generator=generator)
        total += float(out.per_sequence.mean())
    if not math.isfinite(total):
        raise ValueError(f"the model gave a non-finite NELBO ({total}); its weights may have diverged")
    return Score(nats=total, num_bases=int((all_tokens != N).sum()))

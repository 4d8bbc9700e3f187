"""Confidence-based parallel decoding (MaskGIT, Chang et al. 2022; LLaDA's low-confidence remasking; Fast-dLLM's
threshold rule): each network call proposes a token at every masked position and keeps the ones the model is
surest of.

It is not an exact sampler. Choosing positions by confidence favours the model's modes, so samples are less
diverse than the model's distribution (lower entropy) and their likelihood under another model looks better
than the model's own samples' would; compare it at equal entropy. What it buys is a fixed, small number of calls.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

from .denoiser import CountingDenoiser, Denoiser, SampleOutput, start_state
from .objectives import subs_at_masked
from .process import make_generator
from .samplers import sample_categorical
from .schedules import NoiseSchedule

ConfidenceScore = Literal["margin", "entropy", "probability"]
RevealSchedule = Literal["cosine", "linear"]


def still_masked(initial: Tensor, call: int, calls: int, reveal: RevealSchedule) -> Tensor:
    """How many positions per row may stay masked after call `call` (1-based) of `calls`: the fraction follows
    cos(pi/2 i/n) (MaskGIT's, few tokens first) or 1 - i/n."""
    if call >= calls:
        return torch.zeros_like(initial)
    if reveal == "linear":  # in integers, so that k = L / calls per call exactly when it divides
        return initial * (calls - call) // calls
    return torch.floor(initial.double() * math.cos(math.pi / 2 * call / calls)).long()


def _confidence(log_probs: Tensor, drawn: Tensor, score: ConfidenceScore) -> Tensor:
    probs = log_probs.exp()
    if score == "margin":
        top = probs.topk(2, dim=-1).values
        return top[:, 0] - top[:, 1]
    if score == "entropy":
        return (probs * log_probs.clamp_min(-1e30)).sum(-1)  # minus the entropy; 0 * -inf counts as 0
    return probs.gather(-1, drawn[:, None])[:, 0]


@torch.no_grad()
def confidence_sample(
    denoiser: Denoiser,
    z_init: Tensor,
    schedule: NoiseSchedule,
    mask_id: int,
    *,
    steps: int,
    score: ConfidenceScore = "margin",
    reveal: RevealSchedule = "cosine",
    threshold: float | None = None,
    top_p: float | None = None,
    generator: int | torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> SampleOutput:
    """Fill every masked position of `z_init` in at most `steps` calls (as many as needed under a threshold).

    Each call draws a token at every masked position (float64 Gumbel-max, `top_p` if given), scores the
    positions by `score` ("margin": top-1 minus top-2 probability; "entropy", lower is surer; "probability" of
    the drawn token, MaskGIT's) and reveals the surest ones: as many as the `reveal` schedule allows, or, with
    `threshold`, every position whose most likely token has at least that probability and at least the surest
    one per call (Fast-dLLM's rule). The network is told the noise level its input has (the time whose alpha is
    the unmasked fraction).
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    for name, value, kind in (("score", score, ConfidenceScore), ("reveal", reveal, RevealSchedule)):
        if value not in get_args(kind):
            raise ValueError(f"confidence {name} must be one of {list(get_args(kind))}, not {value!r}")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ValueError(f"confidence threshold must lie in (0, 1]; got {threshold}")
    z = start_state(z_init, mask_id)
    net = CountingDenoiser(denoiser, mask_id)
    generator = make_generator(generator, z.device)
    initial = (z == mask_id).sum(dim=-1)
    call = 0
    while True:
        masked = z == mask_id
        remaining = masked.sum(dim=-1)
        if not bool(remaining.any()):
            break
        call += 1
        alpha = 1.0 - remaining.double() / z.shape[1]
        t = schedule.t_of_alpha(alpha).clamp(0.0, 1.0)
        log_probs = subs_at_masked(net.at(z, t.to(torch.float32), masked.nonzero(as_tuple=True)), mask_id).to(dtype)
        drawn = sample_categorical(log_probs, generator, dtype=dtype, top_p=top_p)
        confidence = torch.full(z.shape, -math.inf, dtype=dtype, device=z.device)
        confidence[masked] = _confidence(log_probs, drawn, score)
        rank = confidence.argsort(dim=-1, descending=True).argsort(dim=-1)  # 0 = the surest position of its row
        if threshold is None:
            allowed = (remaining - still_masked(initial, call, steps, reveal)).clamp_min(1)
            selected = masked & (rank < allowed[:, None])
        else:
            selected = masked & (rank == 0)
            selected[masked] |= log_probs.max(dim=-1).values >= math.log(threshold)
        proposal = torch.full_like(z, mask_id)
        proposal[masked] = drawn
        z = torch.where(selected, proposal, z)
    return SampleOutput(tokens=z, num_calls=net.calls, row_calls=net.rows)

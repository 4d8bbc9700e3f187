"""Scoring DNA records with any denoiser through the engine's NELBO.

It takes a denoiser and its context length, not a checkpoint, so it works for any trained model; the model
handle passes its own in (sampling and infilling are the engine's `generate` and `infill`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..diffusion.denoiser import Denoiser
from ..diffusion.engine import MaskedDiffusion
from ..diffusion.process import make_generator
from ..likelihood import Nll
from .tokenizer import N


@torch.no_grad()
def score_sequence(
    denoiser: Denoiser,
    engine: MaskedDiffusion,
    tokens: np.ndarray,
    context: int,
    mc: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> Nll:
    """Monte-Carlo NELBO of a record: non-overlapping context windows, `mc` antithetic time draws each.

    Windows are scored independently, so the sum bounds the NLL of the record
    under the model's window-wise factorisation. N positions are context, not scored.
    """
    if mc < 1:
        raise ValueError(f"mc must be a positive number of Monte-Carlo samples; got {mc}")
    generator = make_generator(seed, device)
    all_tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
    total = 0.0
    for begin in range(0, all_tokens.numel(), context):
        window = all_tokens[begin : begin + context].expand(mc, -1)
        out = engine.loss(denoiser, window, attention_mask=window != N, generator=generator)
        total += float(out.per_sequence.mean())
    if not math.isfinite(total):
        raise ValueError(f"the model gave a non-finite NELBO ({total}); its weights may have diverged")
    return Nll(nats=total, tokens=int((all_tokens != N).sum()))

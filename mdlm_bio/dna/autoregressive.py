"""The autoregressive DNA baseline: left-to-right sampling and exact scoring.

A causal model's logits at position l predict token l + 1, and training windows carry no BOS, so no window's
first base is ever predicted. Sampling therefore draws an unprompted first base uniformly from A, C, G and T,
and scoring charges log 4 for the first base of each window: both describe the same distribution over whole
windows, p(x) = 1/4 * prod_l p(x_l | x_<l), and its NLL is exact (no bound), comparable per base with an
MDLM's NELBO over the same windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..diffusion.denoiser import CausalNetwork, SampleOutput
from ..diffusion.generation import in_batches
from ..diffusion.process import make_generator
from ..diffusion.samplers import autoregressive_sample
from ..likelihood import Nll
from .tokenizer import BASE_IDS, N


def windowed(network: CausalNetwork, context: int) -> CausalNetwork:
    """The network on the last `context` tokens only: a model trained on windows continues past its context by
    sliding them."""
    return lambda tokens: network(tokens[:, -context:])


@torch.no_grad()
def sample_autoregressive(network: CausalNetwork, *, num: int, length: int, context: int, prompt: Tensor | None = None,
                          top_p: float | None = None, seed: int | torch.Generator = 0, batch_size: int = 16,
                          device: torch.device | str = "cpu",
                          progress: Callable[[int], None] | None = None) -> SampleOutput:
    """`num` sequences of `length` tokens, left to right with float64 draws, continuing `prompt` (1-D, kept as
    the start of every sequence) or a uniformly drawn first base."""
    generator = make_generator(seed, device)
    bases = torch.tensor(BASE_IDS, device=device)
    slide = windowed(network, context)

    def draw(batch: int) -> SampleOutput:
        if prompt is None:
            start = bases[torch.randint(len(bases), (batch, 1), generator=generator, device=device)]
        else:
            start = prompt.to(device).long().expand(batch, -1)
        return autoregressive_sample(slide, start, length, top_p=top_p, generator=generator, progress=progress)

    return in_batches(draw, num, batch_size)


@torch.no_grad()
def score_autoregressive(network: CausalNetwork, tokens: np.ndarray, context: int,
                         device: torch.device | str = "cpu") -> Nll:
    """Exact NLL (nats) of a record under the model, as independent windows of `context` bases (as MDLM
    scores them); N positions are context, not scored."""
    all_tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
    total = 0.0
    for begin in range(0, all_tokens.numel(), context):
        window = all_tokens[begin : begin + context]
        log_probs = network(window[None])[0, :-1].double().log_softmax(-1)
        targets = window[1:]
        scored = targets != N
        total -= float(log_probs.gather(-1, targets[:, None])[:, 0][scored].sum())
        if window[0] != N:
            total += math.log(len(BASE_IDS))
    if not math.isfinite(total):
        raise ValueError(f"the model gave a non-finite NLL ({total}); its weights may have diverged")
    return Nll(nats=total, tokens=int((all_tokens != N).sum()))

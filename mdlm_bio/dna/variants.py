"""Zero-shot variant effects: how much more likely a model finds an alternative allele than the reference one.

For a single-nucleotide variant the score is the masked-marginal log-likelihood ratio (Meier et al. 2021, as
used for DNA language models): mask the site in a window of reference sequence around it and compare the
model's log-probabilities of the two alleles there, log p(alt | context) - log p(ref | context). One network
call scores a whole batch of variants. A model that is not reverse-complement equivariant can score the other
strand too (the complemented alleles at the mirrored site) and average; for Caduceus-PS both strands give the
same number.

Multi-base changes (MNVs, indels) change more than one position, so they are scored by whole windows: the
difference of the two windows' NELBOs (diffusion, a Monte-Carlo estimate with its standard error; each NELBO
bounds its window's NLL, so the difference is an estimate, not a bound) or of their exact NLLs (autoregressive).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..diffusion.denoiser import CausalNetwork, Denoiser
from ..diffusion.engine import MaskedDiffusion
from ..diffusion.process import make_generator, position_draws
from ..likelihood import Estimate
from .autoregressive import score_autoregressive
from .strands import other_strand
from .tokenizer import N, reverse_complement


@torch.no_grad()
def snv_log_ratios(denoiser: Denoiser, mask_id: int, windows: Tensor, sites: Tensor, alt: Tensor,
                   both_strands: bool = False) -> Tensor:
    """log p(alt) - log p(ref) at `sites` of reference `windows` [B, L] (ref: the window's base there), the site
    masked, in float64 [B]; with `both_strands`, averaged with the same ratio on the reverse-complement strand."""
    rows = torch.arange(windows.shape[0], device=windows.device)
    forward = _masked_marginal(denoiser, mask_id, windows, sites, windows[rows, sites], alt)
    if not both_strands:
        return forward
    complement = other_strand(alt[:, None])[:, 0]
    flipped = other_strand(windows)
    mirrored = windows.shape[1] - 1 - sites
    return (forward + _masked_marginal(denoiser, mask_id, flipped, mirrored, flipped[rows, mirrored], complement)) / 2


def _masked_marginal(denoiser: Denoiser, mask_id: int, windows: Tensor, sites: Tensor, ref: Tensor,
                     alt: Tensor) -> Tensor:
    rows = torch.arange(windows.shape[0], device=windows.device)
    masked = windows.clone()
    masked[rows, sites] = mask_id
    # one masked position in L: the noise level at which that is the expected masked fraction
    t = torch.full((windows.shape[0],), 1 / windows.shape[1], device=windows.device)
    log_probs = denoiser(masked, t)[rows, sites].double().log_softmax(-1)
    return log_probs[rows, alt] - log_probs[rows, ref]


@torch.no_grad()
def nelbo_difference(engine: MaskedDiffusion, denoiser: Denoiser, ref: Tensor, alt: Tensor, flanks: tuple[int, int],
                     mc: int, seed: int, both_strands: bool = False) -> Estimate:
    """NELBO(ref window) - NELBO(alt window) from `mc` paired draws: an estimate of log p(alt) - log p(ref) for MNVs
    and indels. The windows share their first and last bases (`flanks`: how many on each side), and each pair of
    draws gives both the same time and, position by position, the same mask noise over those bases, so the
    flanks' contributions, most of each NELBO's variance, largely cancel; the standard error is over the pairs."""
    differences = paired_nelbo_draws(engine, denoiser, ref, alt, flanks[1], mc, seed)
    if both_strands:
        flipped = paired_nelbo_draws(engine, denoiser, other_strand(ref), other_strand(alt), flanks[0], mc, seed)
        differences = (differences + flipped) / 2
    error = float(differences.std() / math.sqrt(mc)) if mc > 1 else math.nan
    return Estimate(float(differences.mean()), error)


def paired_nelbo_draws(engine: MaskedDiffusion, denoiser: Denoiser, ref: Tensor, alt: Tensor, right: int, mc: int,
                        seed: int) -> Tensor:
    """Per-draw NELBO differences [mc]; the windows share a prefix (aligned from the start) and `right` bases at
    the end (aligned from the end), which get the same uniforms."""
    generator = make_generator(seed, ref.device)
    t = engine.draw_times(mc, generator, ref.device)
    longest = max(ref.numel(), alt.numel())
    draws = position_draws((mc, longest), generator, ref.device)

    def nelbo(window: Tensor) -> Tensor:
        aligned = torch.cat([draws[:, : window.numel() - right], draws[:, longest - right :]], dim=1)
        batch = window.expand(mc, -1)
        return engine.loss_given_noise(denoiser, batch, t, aligned, batch != N).per_sequence.double()

    return nelbo(ref) - nelbo(alt)


def nll_difference(network: CausalNetwork, ref: np.ndarray, alt: np.ndarray, context: int,
                   device: torch.device | str = "cpu", both_strands: bool = True) -> Estimate:
    """NLL(ref window) - NLL(alt window) under an autoregressive model: log p(alt) - log p(ref), exact."""
    def difference(ref: np.ndarray, alt: np.ndarray) -> float:
        return (score_autoregressive(network, ref, context, device).nats
                - score_autoregressive(network, alt, context, device).nats)

    value = difference(ref, alt)
    if both_strands:
        value = (value + difference(reverse_complement(ref), reverse_complement(alt))) / 2
    return Estimate(value, None)

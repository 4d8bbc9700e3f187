"""Zero-shot variant effects: how much more likely a model finds an alternative allele than the reference one.

For a single-nucleotide variant the score is the masked-marginal log-likelihood ratio (Meier et al. 2021, as
used for DNA language models): mask the site in a window of reference sequence around it and compare the
model's log-probabilities of the two alleles there, log p(alt | context) - log p(ref | context). One network
call scores a whole batch of variants. A model that is not reverse-complement equivariant can score the other
strand too (the complemented alleles at the mirrored site) and average; for Caduceus-PS both strands give the
same number.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..diffusion.samplers import Denoiser
from .tokenizer import reverse_complement_tokens


@torch.no_grad()
def snv_log_ratios(denoiser: Denoiser, mask_id: int, windows: Tensor, sites: Tensor, alt: Tensor,
                   both_strands: bool = False) -> Tensor:
    """log p(alt) - log p(ref) at `sites` of reference `windows` [B, L] (ref: the window's base there), the site
    masked, in float64 [B]; with `both_strands`, averaged with the same ratio on the reverse-complement strand."""
    rows = torch.arange(windows.shape[0], device=windows.device)
    forward = _masked_marginal(denoiser, mask_id, windows, sites, windows[rows, sites], alt)
    if not both_strands:
        return forward
    complement = reverse_complement_tokens(alt[:, None])[:, 0]
    flipped = reverse_complement_tokens(windows)
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

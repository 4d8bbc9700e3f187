"""Zero-shot SNV scores: the masked-marginal log ratio is exact for an oracle, and strand-symmetric for
Caduceus-PS."""

from __future__ import annotations

import math

import pytest
import torch
from base_tables import base_table_logits
from presets import dna_module

from mdlm_bio.dna.tokenizer import BASE_IDS, MASK, reverse_complement_tokens
from mdlm_bio.dna.variants import snv_log_ratios

A, C, G, T = BASE_IDS
# The oracle's belief at a masked site, given the base to its left: row = left base, column = A C G T
BELIEF = torch.tensor([[0.1, 0.2, 0.3, 0.4],
                       [0.4, 0.3, 0.2, 0.1],
                       [0.25, 0.25, 0.25, 0.25],
                       [0.7, 0.1, 0.1, 0.1]], dtype=torch.float64)


def oracle(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Logits at every position: BELIEF given the token to the left (uniform at the first position)."""
    left = torch.cat([torch.full_like(z[:, :1], -1), z[:, :-1]], dim=1)
    return base_table_logits(left, BELIEF)


def test_the_oracle_ratio_is_log_p_alt_over_p_ref_given_the_context():
    windows = torch.tensor([[A, C, G, T, A], [T, T, G, C, A], [G, A, A, C, C]])
    sites, alt = torch.tensor([2, 1, 4]), torch.tensor([A, C, T])
    # site 2 of row 0: left base C, ref G, alt A; row 1: left T, ref T, alt C; row 2: left C, ref C, alt T
    expected = torch.tensor([math.log(0.4 / 0.2), math.log(0.1 / 0.1), math.log(0.1 / 0.3)], dtype=torch.float64)
    torch.testing.assert_close(snv_log_ratios(oracle, MASK, windows, sites, alt), expected, rtol=0, atol=1e-12)


def test_the_site_is_masked_before_the_call():
    seen = []

    def spy(z, t):
        seen.append(z.clone())
        return oracle(z, t)

    snv_log_ratios(spy, MASK, torch.tensor([[A, C, G]]), torch.tensor([1]), torch.tensor([T]))
    assert seen[0].tolist() == [[A, MASK, G]]


def test_a_ref_to_ref_variant_scores_zero():
    windows = torch.randint(A, T + 1, (4, 32), generator=torch.Generator().manual_seed(0))
    sites = torch.tensor([0, 5, 17, 31])
    ref = windows[torch.arange(4), sites]
    assert (snv_log_ratios(oracle, MASK, windows, sites, ref) == 0).all()


def test_caduceus_ps_scores_both_strands_the_same():
    module = dna_module("demo").double().eval()  # caduceus-tiny, a Caduceus-PS
    windows = torch.randint(A, T + 1, (3, 40), generator=torch.Generator().manual_seed(1))
    sites, alt = torch.tensor([3, 20, 39]), torch.tensor([A, G, C])
    forward = snv_log_ratios(module.denoiser, module.mask_id, windows, sites, alt)
    both = snv_log_ratios(module.denoiser, module.mask_id, windows, sites, alt, both_strands=True)
    torch.testing.assert_close(both, forward, rtol=1e-9, atol=1e-12)
    assert forward.abs().max() > 0  # an untrained model still has opinions, so the check is not vacuous


def test_both_strands_average_the_two_ratios_of_a_one_sided_model():
    windows = torch.tensor([[A, T, G, T, T, A]])
    sites, alt = torch.tensor([2]), torch.tensor([T])
    forward = snv_log_ratios(oracle, MASK, windows, sites, alt)
    flipped = reverse_complement_tokens(windows)
    reverse = snv_log_ratios(oracle, MASK, flipped, torch.tensor([3]), reverse_complement_tokens(alt[:, None])[:, 0])
    assert forward.item() != pytest.approx(reverse.item())
    torch.testing.assert_close(snv_log_ratios(oracle, MASK, windows, sites, alt, both_strands=True),
                               (forward + reverse) / 2)

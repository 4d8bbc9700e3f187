"""Zero-shot variant scores: the SNV masked-marginal log ratio is exact for an oracle and strand-symmetric for
Caduceus-PS; the paired window-NELBO difference estimates an oracle's known ratio; the AR difference is exact."""

from __future__ import annotations

import math

import pytest
import torch
from base_tables import base_table_logits
from presets import dna_module
from test_autoregressive_dna import chain_network, chain_nll

from mdlm_bio.diffusion import MaskedDiffusion, make_schedule
from mdlm_bio.dna.strands import other_strand
from mdlm_bio.dna.tokenizer import BASE_IDS, MASK, encode, reverse_complement
from mdlm_bio.dna.variants import nelbo_difference, nll_difference, paired_nelbo_draws, snv_log_ratios

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
    flipped = other_strand(windows)
    reverse = snv_log_ratios(oracle, MASK, flipped, torch.tensor([3]), other_strand(alt[:, None])[:, 0])
    assert forward.item() != pytest.approx(reverse.item())
    torch.testing.assert_close(snv_log_ratios(oracle, MASK, windows, sites, alt, both_strands=True),
                               (forward + reverse) / 2)


# An oracle for window scores: every base independent, P(A, C, G, T) = BASES_P, whatever the context
BASES_P = torch.tensor([[0.5, 0.1, 0.1, 0.3]] * 4, dtype=torch.float64)


def independent(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return base_table_logits(torch.full_like(z, A), BASES_P)


def log_p(bases: str) -> float:
    return sum(math.log(BASES_P[0, "ACGT".index(base)]) for base in bases)


@pytest.mark.parametrize("ref, alt, flanks", [("GG" + "A" + "TTC", "GG" + "TTC", (2, 3)),  # deletion
                                              ("CA" + "T" + "GA", "CA" + "TCC" + "GA", (2, 2)),  # insertion
                                              ("AC" + "GT" + "A", "AC" + "AA" + "A", (2, 1))])  # MNV
def test_paired_nelbo_difference_estimates_the_oracles_log_ratio(ref, alt, flanks):
    engine = MaskedDiffusion(make_schedule("loglinear"), mask_id=MASK)
    tokens = [torch.as_tensor(encode(bases), dtype=torch.long) for bases in (ref, alt)]
    estimate = nelbo_difference(engine, independent, *tokens, flanks, mc=4096, seed=0)
    expected = log_p(alt) - log_p(ref)
    assert 0 < estimate.standard_error < 0.1 * abs(expected)
    assert estimate.value == pytest.approx(expected, abs=4 * estimate.standard_error)


def test_paired_draws_cancel_the_shared_flanks_exactly():
    """A context-free oracle's flank terms are equal draw by draw, so a change that is never masked scores 0 at
    every draw, however long the flanks: only the changed bases' noise is left."""
    engine = MaskedDiffusion(make_schedule("loglinear"), mask_id=MASK)
    ref = torch.as_tensor(encode("ACGTTGCA" * 8 + "A" + "TTGACCA" * 8), dtype=torch.long)
    alt = torch.as_tensor(encode("ACGTTGCA" * 8 + "TTGACCA" * 8), dtype=torch.long)
    draws = paired_nelbo_draws(engine, independent, ref, alt, 56, mc=64, seed=3)
    times = engine.draw_times(64, torch.Generator().manual_seed(3), "cpu").double()
    ratio = -math.log(0.5)  # the deleted A
    masked = draws.abs() > 1e-9
    assert 0 < masked.sum() < 64
    torch.testing.assert_close(draws[masked], ratio / times[masked], rtol=1e-6, atol=0)
    assert draws[~masked].abs().max() < 1e-9
    paired = nelbo_difference(engine, independent, ref, alt, (64, 56), mc=64, seed=3)
    unpaired = engine.loss(independent, ref.expand(64, -1), generator=torch.Generator().manual_seed(3))
    assert paired.standard_error < float(unpaired.per_sequence.std()) / math.sqrt(64) / 10


def test_the_ar_difference_is_the_exact_nll_difference_on_one_or_both_strands():
    ref, alt = encode("ACGTTGCAAG"), encode("ACGTGCAAG")
    network = chain_network(16)
    one = nll_difference(network, ref, alt, 16, both_strands=False)
    assert one.standard_error is None
    assert one.value == pytest.approx(chain_nll(ref.tolist(), 16) - chain_nll(alt.tolist(), 16), rel=1e-12)
    rc = [reverse_complement(x).tolist() for x in (ref, alt)]
    both = nll_difference(network, ref, alt, 16, both_strands=True)
    assert both.value == pytest.approx((one.value + chain_nll(rc[0], 16) - chain_nll(rc[1], 16)) / 2, rel=1e-12)

"""Guidance of reverse chains (issue 31) against exact answers: D-CFG's tempering at its end points; D-CBG at weight 1
with the exact denoiser and the exact noisy-input classifier reproducing p(x | class), for uniform and for masked
noise; D-CBG's first-order version agreeing with the exact one to first order; the masked chain reproducing the
distribution unguided."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from toy_distribution import ToyDistribution, chi_square_pvalue, exact_schedule

from mdlm_bio.diffusion.chain_guidance import (
    change_scores,
    classifier_based_step,
    classifier_free_step,
    first_order_change_scores,
)
from mdlm_bio.diffusion.reverse_chain import MaskedChain, run_chain
from mdlm_bio.diffusion.uniform import UniformDiffusion

CLASSES = [ToyDistribution.random(num_symbols=3, length=3, seed=11), ToyDistribution.random(num_symbols=3, length=3,
                                                                                            seed=12)]
PRIOR = torch.tensor([0.4, 0.6], dtype=torch.float64)
MIXTURE = ToyDistribution.from_probs(PRIOR[0] * CLASSES[0].probs + PRIOR[1] * CLASSES[1].probs, 3, 3)
ENGINE = UniformDiffusion(exact_schedule(), states=range(3))
MASKED = MaskedChain(exact_schedule(), mask_id=3, outputs=range(3))


class ExactClassifier:
    """p(y | z_t) of the two-class toy under uniform noise, on token ids or (differentiably) one-hot rows."""

    vocab_size, dtype = 3, torch.float64

    def soft(self, one_hot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = ENGINE.schedule.alpha(t.double())[:, None, None, None]
        at_x = F.one_hot(MIXTURE.sequences, 3).double()  # [S, L, K]
        per_position = torch.einsum("blk,bslk->bsl", one_hot, alpha * at_x + (1 - alpha) / 3)  # q(z_l | x_l)
        likelihood = per_position.prod(-1)  # [B, S]
        joint = likelihood @ torch.stack([p.probs for p in CLASSES], dim=1) * PRIOR  # [B, 2]
        return (joint / joint.sum(-1, keepdim=True)).log()

    def __call__(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.soft(F.one_hot(tokens, 3).double(), t)


class LogLinearClassifier:
    """log softmax of scale x a fixed random linear function of the one-hot input: smooth, not linear."""

    vocab_size, dtype = 3, torch.float64
    weights = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def soft(self, one_hot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (self.scale * torch.einsum("blk,ylk->by", one_hot, self.weights)).log_softmax(-1)

    def __call__(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.soft(F.one_hot(tokens, 3).double(), t)


def test_classifier_free_guidance_tempers_the_reverse_steps_log_probabilities():
    conditional, unconditional = CLASSES[1].uniform_oracle(ENGINE.schedule), MIXTURE.uniform_oracle(ENGINE.schedule)
    z = MIXTURE.sequences[:9]
    s, t = torch.full((9,), 0.3, dtype=torch.float64), torch.full((9,), 0.5, dtype=torch.float64)
    with_class, without = ENGINE.model_step(conditional)(z, s, t), ENGINE.model_step(unconditional)(z, s, t)
    for weight, expected in ((0.0, without), (1.0, with_class),
                             (2.5, (2.5 * with_class.log() - 1.5 * without.log()).softmax(-1))):
        actual = classifier_free_step(ENGINE, conditional, unconditional, weight)(z, s, t)
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_classifier_based_guidance_at_weight_1_with_exact_parts_reproduces_the_class():
    step = classifier_based_step(ENGINE, MIXTURE.uniform_oracle(ENGINE.schedule), ExactClassifier(), label=1,
                                 weight=1.0)
    samples = run_chain(ENGINE, step, (3000, 3), steps=150, seed=0)
    assert chi_square_pvalue(samples, CLASSES[1]) > 1e-3
    assert chi_square_pvalue(samples, MIXTURE) < 1e-6  # and not the unguided distribution


def test_the_first_order_change_scores_agree_with_the_exact_ones_to_first_order():
    """Relative to the change itself, the error of the first-order estimate shrinks linearly with the classifier's
    scale: its error is second order."""
    z, t = MIXTURE.sequences[::3], torch.full((9,), 0.5, dtype=torch.float64)
    ratios = []
    for scale in (0.2, 0.1, 0.05):
        classifier = LogLinearClassifier(scale)
        exact = change_scores(ENGINE, classifier, z, t, label=0)
        exact = exact - exact.gather(-1, z[..., None])  # relative to keeping each position's token
        estimate = first_order_change_scores(ENGINE, classifier, z, t, label=0)
        ratios.append(float((estimate - exact).abs().max() / exact.abs().max()))
    assert ratios[0] > ratios[1] > ratios[2] > 0
    assert 1.6 < ratios[0] / ratios[1] < 2.4 and 1.6 < ratios[1] / ratios[2] < 2.4


class ExactMaskedClassifier:
    """p(y | z_t) of the two-class toy under masking (the same at every t): the classes' mass on the sequences that
    agree with z's revealed tokens, on token ids or (differentiably) one-hot rows over the 3 symbols and the mask."""

    vocab_size, dtype = 4, torch.float64

    def soft(self, one_hot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        agrees_with = F.one_hot(MIXTURE.sequences, 4).double()
        agrees_with[..., MASKED.mask_id] = 1.0  # a masked position agrees with every symbol
        likelihood = torch.einsum("blk,slk->bsl", one_hot, agrees_with).prod(-1)  # [B, S]
        joint = likelihood @ torch.stack([p.probs for p in CLASSES], dim=1) * PRIOR
        return (joint / joint.sum(-1, keepdim=True)).log()

    def __call__(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.soft(F.one_hot(tokens, 4).double(), t)


def test_the_masked_chain_with_the_exact_denoiser_reproduces_the_distribution():
    samples = run_chain(MASKED, MASKED.model_step(MIXTURE.oracle()), (4000, 3), steps=50, seed=0)
    assert chi_square_pvalue(samples, MIXTURE) > 1e-3


def test_classifier_based_guidance_of_masked_noise_with_exact_parts_reproduces_the_class():
    step = classifier_based_step(MASKED, MIXTURE.oracle(), ExactMaskedClassifier(), label=0, weight=1.0)
    samples = run_chain(MASKED, step, (3000, 3), steps=150, seed=1)
    assert chi_square_pvalue(samples, CLASSES[0]) > 1e-3
    assert chi_square_pvalue(samples, MIXTURE) < 1e-6


def test_change_scores_are_the_classifier_on_each_change_at_masked_positions_and_zero_at_revealed_ones():
    z = torch.tensor([[3, 1, 3], [0, 2, 1]])  # state indices; 3 is the mask
    t = torch.tensor([0.4, 0.7], dtype=torch.float64)
    classifier = ExactMaskedClassifier()
    for scores in (change_scores(MASKED, classifier, z, t, label=1),
                   first_order_change_scores(MASKED, classifier, z, t, label=1)):
        assert scores.shape == (2, 3, 4) and not scores[0, 1].any() and not scores[1].any()
    exact = change_scores(MASKED, classifier, z, t, label=1)
    for column in (0, 2):
        for state in range(4):
            changed = z[:1].clone()
            changed[0, column] = state
            torch.testing.assert_close(exact[0, column, state], classifier(changed, t[:1])[0, 1])

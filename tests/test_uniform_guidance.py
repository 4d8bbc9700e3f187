"""Guidance of uniform-state diffusion (issue 31) against exact answers: D-CFG's tempering at its end points, D-CBG
at weight 1 with the exact denoiser and the exact noisy-input classifier reproducing p(x | class), and D-CBG's
first-order version agreeing with the exact one to first order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from toy_distribution import ToyDistribution, chi_square_pvalue, exact_schedule

from mdlm_bio.diffusion.uniform import UniformDiffusion
from mdlm_bio.diffusion.uniform_guidance import (
    change_scores,
    classifier_based_step,
    classifier_free_step,
    first_order_change_scores,
)

CLASSES = [ToyDistribution.random(num_symbols=3, length=3, seed=11), ToyDistribution.random(num_symbols=3, length=3,
                                                                                            seed=12)]
PRIOR = torch.tensor([0.4, 0.6], dtype=torch.float64)
MIXTURE = ToyDistribution.from_probs(PRIOR[0] * CLASSES[0].probs + PRIOR[1] * CLASSES[1].probs, 3, 3)
ENGINE = UniformDiffusion(exact_schedule(), states=range(3))


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
    samples = ENGINE.sample(step, (3000, 3), steps=150, seed=0)
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

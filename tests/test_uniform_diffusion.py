"""Uniform-state diffusion (UDLM, issue 31) against exact answers on a small enumerable distribution: the posterior
q(z_s | z_t, x) against Bayes' rule, the exact denoiser's reverse step against the true one, the continuous-time
NELBO of the exact denoiser against the exact NLL, the discrete-time bounds approaching it, and the ancestral sampler
reproducing the distribution."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from toy_distribution import ToyDistribution, chi_square_pvalue, exact_schedule

from mdlm_bio.diffusion.reverse_chain import run_chain
from mdlm_bio.diffusion.schedules import CosineSchedule, LogLinearSchedule
from mdlm_bio.diffusion.uniform import UniformDiffusion

TOY = ToyDistribution.random(num_symbols=3, length=3, seed=3)


def engine(schedule=None, **options) -> UniformDiffusion:
    return UniformDiffusion(schedule or exact_schedule(), states=range(TOY.num_symbols), **options)


def transition(alpha: float, n: int) -> torch.Tensor:
    """q(z' | z) [from, to] of keeping with probability alpha, else drawing uniformly."""
    return alpha * torch.eye(n, dtype=torch.float64) + (1 - alpha) / n


@pytest.mark.parametrize("alpha_s, alpha_t", [(0.9, 0.4), (0.5, 0.45), (1.0, 0.3), (0.2, 0.0)])
def test_the_posterior_is_bayes_rule(alpha_s, alpha_t):
    n, diffusion = 3, engine()
    step = transition(alpha_t / alpha_s if alpha_s else 0.0, n)
    for x, z in itertools.product(range(n), repeat=2):
        bayes = transition(alpha_s, n)[x] * step[:, z]  # q(z_s | x) q(z_t | z_s)
        expected = bayes / bayes.sum()
        actual = diffusion.posterior(torch.eye(n, dtype=torch.float64)[x].view(1, 1, n), torch.tensor([[z]]),
                                     torch.tensor([alpha_s], dtype=torch.float64), torch.tensor([alpha_t], dtype=torch.float64))
        torch.testing.assert_close(actual.view(n), expected, rtol=1e-12, atol=1e-12)


def test_the_exact_denoisers_reverse_step_is_the_true_one():
    """q(z_s | z_t, x_theta) with the exact x_theta equals sum_x p(x | z_t) q(z_s | z_t, x) at every position."""
    diffusion, alpha_s, alpha_t = engine(), torch.tensor([0.7], dtype=torch.float64), torch.tensor([0.35], dtype=torch.float64)
    for z in TOY.sequences:
        z = z[None]
        x_theta = TOY.uniform_conditionals(z, alpha_t)
        model = diffusion.posterior(x_theta, z, alpha_s, alpha_t)
        likelihood = (alpha_t * (z[:, None] == TOY.sequences[None]) + (1 - alpha_t) / 3).double().prod(-1)[0]
        posterior_x = TOY.probs * likelihood / (TOY.probs * likelihood).sum()  # p(x | z_t) [S]
        for position in range(TOY.length):
            one_hot = torch.nn.functional.one_hot(TOY.sequences[:, position], 3).double()[:, None]  # [S, 1, 3]
            each = diffusion.posterior(one_hot, z[:, position].expand(len(one_hot))[:, None], alpha_s.expand(len(one_hot)),
                                       alpha_t.expand(len(one_hot)))[:, 0]
            torch.testing.assert_close(model[0, position], posterior_x @ each, rtol=1e-10, atol=1e-12)


def exact_terms(diffusion: UniformDiffusion, denoiser, t: torch.Tensor) -> torch.Tensor:
    """E_x E_{z_t | x}[summed NELBO terms] at each time in t, with x and z_t enumerated exactly."""
    values = []
    z_all = TOY.sequences
    for time in t:
        alpha = float(diffusion.schedule.alpha(time.view(1)))
        q = transition(alpha, 3)[TOY.sequences[:, None, :], z_all[None, :, :]].prod(-1)  # q(z | x) [S, Z]
        x = TOY.sequences.repeat_interleave(len(z_all), dim=0)
        z = z_all.repeat(len(TOY.sequences), 1)
        times = time.expand(len(x))
        terms = diffusion.loss_given_noise(denoiser, x, times, z).token_loss.sum(-1).view(len(TOY.sequences), -1)
        values.append(float((TOY.probs[:, None] * q * terms).sum()))
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("schedule", [exact_schedule(), CosineSchedule()], ids=["loglinear", "cosine"])
def test_the_continuous_time_nelbo_of_the_exact_denoiser_is_the_nll(schedule):
    """Gauss-Legendre over t of the exactly enumerated expectation: the entropy of the distribution to 1e-8; a
    worse (smoothed) denoiser is strictly above it. The nodes are mapped through t = 6u^5 - 15u^4 + 10u^3, flat at
    both ends, where the integrand is not smooth (t log t at t = 0)."""
    diffusion = engine(schedule)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    u = torch.from_numpy((nodes + 1) / 2)
    t, jacobian = 6 * u**5 - 15 * u**4 + 10 * u**3, 30 * u**2 * (1 - u) ** 2

    def nelbo(denoiser) -> float:
        return float((torch.from_numpy(weights) / 2 * jacobian * exact_terms(diffusion, denoiser, t)).sum())

    exact = nelbo(TOY.uniform_oracle(schedule))
    assert exact == pytest.approx(TOY.entropy(), abs=1e-8)
    assert nelbo(TOY.uniform_oracle(schedule, smoothing=0.2)) > TOY.entropy() + 1e-3


def test_the_monte_carlo_nelbo_is_unbiased():
    diffusion = engine(sampling_eps=0.0)
    tokens = TOY.sample(4096, seed=1)
    out = diffusion.loss(TOY.uniform_oracle(diffusion.schedule), tokens, generator=torch.Generator().manual_seed(2))
    per_sequence = out.token_loss.sum(-1).double()
    error = per_sequence.std() / np.sqrt(len(per_sequence))
    assert abs(float(per_sequence.mean()) - TOY.entropy()) < 4 * float(error)


def test_the_discrete_time_bound_tightens_toward_the_nll_as_t_grows():
    """T sum of the exact per-step KL terms: above the NLL, decreasing in T, within 2% of the gap of T = 1 at 256."""
    bounds = []
    for steps in (1, 4, 16, 256):
        diffusion = engine(discrete_steps=steps)
        t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        bounds.append(float(exact_terms(diffusion, TOY.uniform_oracle(diffusion.schedule), t).sum() / steps))
    entropy = TOY.entropy()
    assert all(bound > entropy for bound in bounds)
    assert all(a > b for a, b in zip(bounds, bounds[1:]))
    assert bounds[-1] - entropy < 0.02 * (bounds[0] - entropy)


def test_the_ancestral_sampler_with_the_exact_denoiser_reproduces_the_distribution():
    diffusion = engine()
    samples = run_chain(diffusion, diffusion.model_step(TOY.uniform_oracle(diffusion.schedule)), (4000, TOY.length),
                        steps=200, seed=0)
    assert chi_square_pvalue(samples, TOY) > 1e-3


def test_positions_that_are_not_states_are_neither_noised_nor_scored():
    diffusion = UniformDiffusion(LogLinearSchedule(), states=(7, 8, 9, 10))
    tokens = torch.tensor([[7, 11, 8, 0, 10]])  # 11 (N) and 0 (padding) are not states
    z = diffusion.noise(tokens, torch.tensor([1.0]), torch.Generator().manual_seed(0))
    assert z[0, 1] == 11 and z[0, 3] == 0 and set(z[0, [0, 2, 4]].tolist()) <= {7, 8, 9, 10}
    out = diffusion.loss_given_noise(lambda z_t, t: torch.zeros(1, 5, 16), tokens, torch.tensor([0.5]), z)
    assert int(out.num_tokens) == 3 and out.token_loss[0, 1] == 0 and out.token_loss[0, 3] == 0


def test_fewer_than_two_distinct_states_are_refused():
    with pytest.raises(ValueError, match="uniform diffusion needs at least two distinct states; got \\[4, 4\\]"):
        UniformDiffusion(LogLinearSchedule(), states=(4, 4))

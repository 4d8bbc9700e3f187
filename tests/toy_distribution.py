"""A small, fully enumerable sequence distribution and its exact (oracle) denoiser.

Everything the engine claims can be checked exactly against it: the NELBO of a
perfect denoiser equals the NLL, and samplers driven by the oracle reproduce the
distribution.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from mdlm_bio.diffusion import LogLinearSchedule, masked_diffusion_loss, nelbo_weights
from mdlm_bio.diffusion.schedules import NoiseSchedule


@dataclass
class ToyDistribution:
    """p(x) over all sequences of `length` tokens from {0, ..., num_symbols - 1}.

    The mask token is num_symbols, so the denoiser's vocabulary is num_symbols + 1.
    """

    probs: Tensor  # [N] float64, N = num_symbols ** length
    sequences: Tensor  # [N, L] long
    num_symbols: int

    @property
    def length(self) -> int:
        return self.sequences.shape[1]

    @property
    def mask_id(self) -> int:
        return self.num_symbols

    @property
    def vocab_size(self) -> int:
        return self.num_symbols + 1

    @classmethod
    def from_probs(cls, probs: Tensor, num_symbols: int, length: int) -> "ToyDistribution":
        sequences = torch.tensor(list(itertools.product(range(num_symbols), repeat=length)), dtype=torch.long)
        return cls(probs=probs.double() / probs.sum(), sequences=sequences, num_symbols=num_symbols)

    @classmethod
    def random(cls, num_symbols: int = 3, length: int = 4, seed: int = 0, concentration: float = 1.0) -> "ToyDistribution":
        rng = np.random.default_rng(seed)
        probs = torch.from_numpy(rng.dirichlet(np.full(num_symbols**length, concentration)))
        return cls.from_probs(probs, num_symbols, length)

    @classmethod
    def markov_chain(cls, transition: Tensor, length: int) -> "ToyDistribution":
        """Windows of a stationary Markov chain: p(x) = pi(x_0) prod P(x_l -> x_l+1)."""
        transition = transition.double()
        eigvals, eigvecs = torch.linalg.eig(transition.T)
        stationary = eigvecs[:, eigvals.real.argmax()].real
        stationary = stationary / stationary.sum()
        num_symbols = transition.shape[0]
        sequences = torch.tensor(list(itertools.product(range(num_symbols), repeat=length)), dtype=torch.long)
        probs = stationary[sequences[:, 0]] * transition[sequences[:, :-1], sequences[:, 1:]].prod(dim=1)
        return cls(probs=probs, sequences=sequences, num_symbols=num_symbols)

    # ------------------------------------------------------------------ exact quantities

    def index_of(self, tokens: Tensor) -> Tensor:
        """Row index of each sequence in `sequences` (base-K number)."""
        powers = self.num_symbols ** torch.arange(self.length - 1, -1, -1)
        return (tokens.long() * powers).sum(dim=-1)

    def nll(self, tokens: Tensor) -> Tensor:
        return -torch.log(self.probs[self.index_of(tokens)])

    def entropy(self) -> float:
        return float(-(self.probs * self.probs.log()).sum())

    def sample(self, n: int, seed: int = 0) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return self.sequences[torch.multinomial(self.probs, n, replacement=True, generator=generator)]

    def conditionals(self, z: Tensor) -> Tensor:
        """p(x^l = k | unmasked positions of z) for every position: [B, L, K] float64."""
        visible = z != self.mask_id
        agrees = (~visible[:, None, :]) | (z[:, None, :] == self.sequences[None])
        posterior = self.probs[None] * agrees.all(dim=-1)
        posterior = posterior / posterior.sum(dim=-1, keepdim=True)
        one_hot = torch.nn.functional.one_hot(self.sequences, self.num_symbols).double()
        return torch.einsum("bn,nlk->blk", posterior, one_hot)

    def uniform_conditionals(self, z: Tensor, alpha: Tensor) -> Tensor:
        """Under uniform-state noise at signal levels alpha [B], p(x^l = k | z^m for every m != l) for every
        position: [B, L, K] float64. What UDLM's x_theta is at its optimum (its posterior formulas add the position's
        own noisy token themselves)."""
        alpha = alpha.double()[:, None, None]
        likelihood = alpha * (z[:, None, :] == self.sequences[None]) + (1 - alpha) / self.num_symbols  # [B, S, L]
        log_likelihood = likelihood.log()
        others = log_likelihood.sum(-1, keepdim=True) - log_likelihood  # all positions but l, [B, S, L]
        posterior = self.probs[None, :, None] * others.exp()
        posterior = posterior / posterior.sum(dim=1, keepdim=True)
        one_hot = torch.nn.functional.one_hot(self.sequences, self.num_symbols).double()  # [S, L, K]
        return torch.einsum("bsl,slk->blk", posterior, one_hot)

    def uniform_oracle(self, schedule: NoiseSchedule, smoothing: float = 0.0):
        """The exact UDLM denoiser (log-probabilities over the symbols); smoothing > 0 mixes in the uniform."""

        def denoise(z: Tensor, t: Tensor) -> Tensor:
            probs = self.uniform_conditionals(z, schedule.alpha(t.double()))
            return ((1.0 - smoothing) * probs + smoothing / self.num_symbols).log()

        return denoise

    def oracle(self, smoothing: float = 0.0):
        """The exact denoiser; smoothing > 0 mixes in the uniform distribution (a worse model)."""

        def denoise(z: Tensor, t: Tensor) -> Tensor:
            probs = (1.0 - smoothing) * self.conditionals(z) + smoothing / self.num_symbols
            mask_column = torch.zeros(*probs.shape[:2], 1, dtype=probs.dtype)
            return torch.cat([probs.log(), mask_column], dim=-1)

        return denoise

    def expected_masked_ce(self, denoiser) -> Tensor:
        """Table [N, 2^L] of the summed masked cross-entropy for every (x, mask pattern)."""
        patterns = torch.tensor(list(itertools.product([False, True], repeat=self.length)))
        x = self.sequences.repeat_interleave(len(patterns), dim=0)
        masks = patterns.repeat(len(self.sequences), 1)
        z = torch.where(masks, torch.full_like(x, self.mask_id), x)
        out = masked_diffusion_loss(denoiser(z, torch.zeros(len(z))), x, z, torch.ones(len(z)), self.mask_id)
        return out.per_sequence.double().view(len(self.sequences), len(patterns)), patterns

    def exact_nelbo(self, denoiser, schedule: NoiseSchedule, discrete_steps: int | None = None, nodes: int = 256) -> float:
        """E_x[NELBO(x)] with the expectation over masks enumerated exactly.

        Continuous time integrates with Gauss-Legendre quadrature; discrete time sums the T terms.
        Valid for denoisers that ignore t (like the oracle).
        """
        table, patterns = self.expected_masked_ce(denoiser)
        num_masked = patterns.sum(dim=-1).double()

        def expected_ce(t: Tensor) -> Tensor:  # [len(t)]
            alpha = schedule.alpha(t)[:, None]
            q_pattern = (1 - alpha) ** num_masked * alpha ** (self.length - num_masked)  # [T, P]
            return (q_pattern @ (self.probs @ table))

        if discrete_steps is None:
            x, w = np.polynomial.legendre.leggauss(nodes)
            t = torch.from_numpy((x + 1) / 2)
            return float((torch.from_numpy(w) / 2 * schedule.loss_weight(t) * expected_ce(t)).sum())
        t = torch.arange(1, discrete_steps + 1, dtype=torch.float64) / discrete_steps
        weights = nelbo_weights(schedule, t, discrete_steps) / discrete_steps
        return float((weights * expected_ce(t)).sum())


def chi_square_pvalue(samples: Tensor, toy: ToyDistribution, min_expected: float = 5.0) -> float:
    """Goodness of fit of sampled sequences to p(x); cells with small expectation are pooled."""
    counts = torch.bincount(toy.index_of(samples), minlength=len(toy.probs)).double()
    return chi_square_counts(counts, toy.probs, min_expected)


def chi_square_counts(counts: Tensor, probs: Tensor, min_expected: float = 5.0) -> float:
    expected = probs * counts.sum()
    small = expected < min_expected
    observed = torch.cat([counts[~small], counts[small].sum().view(1)])
    expected = torch.cat([expected[~small], expected[small].sum().view(1)])
    keep = expected > 0
    return float(stats.chisquare(observed[keep].numpy(), expected[keep].numpy()).pvalue)


def default_toy() -> ToyDistribution:
    return ToyDistribution.random(num_symbols=3, length=4, seed=7)


def exact_schedule() -> NoiseSchedule:
    """Log-linear with eps = 0 runs alpha from exactly 1 to exactly 0."""
    return LogLinearSchedule(eps=0.0)

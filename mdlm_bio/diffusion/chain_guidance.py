"""Guidance of a reverse chain (reverse_chain.py: uniform-state or masked diffusion), after Schiff et al. 2024,
"Simple Guidance Mechanisms for Discrete Diffusion Models".

- D-CFG as the guidance paper defines it for uniform noise: the reverse step's log-probabilities tempered,
  gamma log q(z_s | z_t, x_theta(y)) + (1 - gamma) log q(z_s | z_t, x_theta(none)), renormalised per position (a
  masked model's CFG tempers x_theta itself instead: models/network.py).
- D-CBG reweights each position's reverse step by a noisy-input classifier, q(z_s | z_t, x_theta) p(y | z_s)^gamma,
  with z_s one single-token change of z_t (exact when a step changes at most one position, as many steps make it);
  a masked chain's stay-masked outcome is z_t itself. Exactly: every change a step may make through the
  classifier, B x L x N rows (for small vocabularies such as DNA's four bases); to first order:
  log p(y | z with l -> v) ~ log p(y | z) + g[l, v] - g[l, z_l] with g the gradient of log p(y | .) at z's one-hot
  input, one backward pass for any vocabulary.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .denoiser import Denoiser
from .reverse_chain import ReverseStep, StateChain

TOKENS_PER_CLASSIFIER_CALL = 1 << 16  # the exact scores' variant rows go through the classifier in chunks of this


class NoisyClassifier(Protocol):
    """log p(y | z_t) [B, C] of noisy inputs at time t [B], from token ids [B, L] or, differentiably, from one-hot
    rows over the vocabulary [B, L, V]."""

    def __call__(self, tokens: Tensor, t: Tensor) -> Tensor: ...

    def soft(self, one_hot: Tensor, t: Tensor) -> Tensor: ...


def classifier_free_step(chain: StateChain, conditional: Denoiser, unconditional: Denoiser,
                         weight: float) -> ReverseStep:
    """D-CFG: weight 0 is the unconditional model, 1 the conditional, above 1 sharper toward the class."""
    with_class, without = chain.model_step(conditional), chain.model_step(unconditional)

    def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
        if weight == 1.0:
            return with_class(z, s, t)
        if weight == 0.0:
            return without(z, s, t)
        return (weight * with_class(z, s, t).log() + (1 - weight) * without(z, s, t).log()).softmax(-1)

    return step


def classifier_based_step(chain: StateChain, denoiser: Denoiser, classifier: NoisyClassifier, label: int,
                          weight: float, first_order: bool = False) -> ReverseStep:
    """D-CBG toward class `label` with guidance `weight` (0: the unguided model)."""
    unguided = chain.model_step(denoiser)
    changes = first_order_change_scores if first_order else change_scores

    def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
        probs = unguided(z, s, t)
        if weight == 0.0:
            return probs
        return (probs.log() + weight * changes(chain, classifier, z, s, label)).softmax(-1)

    return step


def change_scores(chain: StateChain, classifier: NoisyClassifier, z: Tensor, t: Tensor, label: int) -> Tensor:
    """log p(label | z with position l set to state v) [B, L, N] at every position a step may change (0 at the
    others, whose step keeps their state whatever the scores): one classifier row per such position and state other
    than its own, plus one per sequence for z itself (every position's own state)."""
    n, length, movable = chain.num_states, z.shape[1], chain.movable(z)
    rows, columns = movable.nonzero(as_tuple=True)
    others = (z[rows, columns, None] + torch.arange(1, n, device=z.device)) % n  # [M, N - 1]
    variants = z[rows].repeat_interleave(n - 1, dim=0)  # [M (N - 1), L]
    variants[torch.arange(len(variants), device=z.device), columns.repeat_interleave(n - 1)] = others.flatten()
    inputs, times = torch.cat([z, variants]), torch.cat([t, t[rows].repeat_interleave(n - 1)])
    chunk = max(1, TOKENS_PER_CLASSIFIER_CALL // length)
    with torch.no_grad():
        flat = torch.cat([classifier(chain.tokens_of(inputs[start : start + chunk]), times[start : start + chunk])[:, label]
                          for start in range(0, len(inputs), chunk)]).to(torch.float64)
    scores = flat[: len(z), None, None].repeat(1, length, n)
    scores[rows[:, None], columns[:, None], others] = flat[len(z) :].view(len(rows), n - 1)
    return torch.where(movable[..., None], scores, 0.0)


def first_order_change_scores(chain: StateChain, classifier: NoisyClassifier, z: Tensor, t: Tensor,
                              label: int) -> Tensor:
    """The first-order estimate of `change_scores`, [B, L, N], from one gradient at z's one-hot input (the constant
    log p(label | z) is left out: a reverse step renormalises per position)."""
    tokens = chain.tokens_of(z)
    with torch.enable_grad():
        dtype = getattr(classifier, "dtype", torch.float32)
        one_hot = F.one_hot(tokens, _vocabulary(classifier, tokens)).to(dtype).requires_grad_()
        gradient, = torch.autograd.grad(classifier.soft(one_hot, t)[:, label].sum(), one_hot)
    states = torch.as_tensor(chain.states, device=z.device)
    estimate = (gradient[..., states] - gradient.gather(-1, tokens[..., None])).to(torch.float64)
    return torch.where(chain.movable(z)[..., None], estimate, 0.0)


def _vocabulary(classifier: NoisyClassifier, tokens: Tensor) -> int:
    return int(getattr(classifier, "vocab_size", int(tokens.max()) + 1))

"""Guidance for uniform-state diffusion (Schiff et al. 2024, "Simple Guidance Mechanisms for Discrete Diffusion
Models"), as reverse steps for UniformDiffusion.sample.

- D-CFG tempers the reverse step's log-probabilities, gamma log q(z_s | z_t, x_theta(y)) + (1 - gamma) log q(z_s |
  z_t, x_theta(none)), renormalised per position (masked diffusion tempers x_theta itself instead).
- D-CBG reweights each position's reverse step by a noisy-input classifier, q(z_s | z_t, x_theta) p(y | z_s)^gamma,
  with z_s one single-token change of z_t (exact when a step changes at most one position, as many steps make it).
  Exactly: every one of the L x N changes through the classifier (for small vocabularies such as DNA's four bases);
  to first order: log p(y | z with l -> v) ~ log p(y | z) + g[l, v] - g[l, z_l] with g the gradient of log p(y | .)
  at z's one-hot input, one backward pass for any vocabulary.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .denoiser import Denoiser
from .uniform import ReverseStep, UniformDiffusion


class NoisyClassifier(Protocol):
    """log p(y | z_t) [B, C] of noisy inputs at time t [B], from token ids [B, L] or, differentiably, from one-hot
    rows over the vocabulary [B, L, V]."""

    def __call__(self, tokens: Tensor, t: Tensor) -> Tensor: ...

    def soft(self, one_hot: Tensor, t: Tensor) -> Tensor: ...


def classifier_free_step(engine: UniformDiffusion, conditional: Denoiser, unconditional: Denoiser,
                         weight: float) -> ReverseStep:
    """D-CFG: weight 0 is the unconditional model, 1 the conditional, above 1 sharper toward the class."""
    with_class, without = engine.model_step(conditional), engine.model_step(unconditional)

    def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
        if weight == 1.0:
            return with_class(z, s, t)
        if weight == 0.0:
            return without(z, s, t)
        return (weight * with_class(z, s, t).log() + (1 - weight) * without(z, s, t).log()).softmax(-1)

    return step


def classifier_based_step(engine: UniformDiffusion, denoiser: Denoiser, classifier: NoisyClassifier, label: int,
                          weight: float, first_order: bool = False) -> ReverseStep:
    """D-CBG toward class `label` with guidance `weight` (0: the unguided model)."""
    unguided = engine.model_step(denoiser)
    changes = first_order_change_scores if first_order else change_scores

    def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
        probs = unguided(z, s, t)
        if weight == 0.0:
            return probs
        return (probs.log() + weight * changes(engine, classifier, z, s, label)).softmax(-1)

    return step


def change_scores(engine: UniformDiffusion, classifier: NoisyClassifier, z: Tensor, t: Tensor, label: int) -> Tensor:
    """log p(label | z with position l set to state v) for every l and v, [B, L, N]: B x L x N classifier rows."""
    batch, length, n = z.shape[0], z.shape[1], engine.num_states
    variants = z[:, None, None, :].repeat(1, length, n, 1)  # [B, L, N, L]
    positions = torch.arange(length, device=z.device)
    variants[:, positions, :, positions] = torch.arange(n, device=z.device)
    rows = variants.reshape(-1, length)
    with torch.no_grad():
        scores = classifier(engine.tokens_of(rows), t.repeat_interleave(length * n))[:, label]
    return scores.view(batch, length, n).to(torch.float64)


def first_order_change_scores(engine: UniformDiffusion, classifier: NoisyClassifier, z: Tensor, t: Tensor,
                              label: int) -> Tensor:
    """The first-order estimate of `change_scores`, [B, L, N], from one gradient at z's one-hot input (the constant
    log p(label | z) is left out: a reverse step renormalises per position)."""
    tokens = engine.tokens_of(z)
    with torch.enable_grad():
        dtype = getattr(classifier, "dtype", torch.float32)
        one_hot = F.one_hot(tokens, _vocabulary(classifier, tokens)).to(dtype).requires_grad_()
        gradient, = torch.autograd.grad(classifier.soft(one_hot, t)[:, label].sum(), one_hot)
    states = torch.as_tensor(engine.states, device=z.device)
    return (gradient[..., states] - gradient.gather(-1, tokens[..., None])).to(torch.float64)


def _vocabulary(classifier: NoisyClassifier, tokens: Tensor) -> int:
    return int(getattr(classifier, "vocab_size", int(tokens.max()) + 1))

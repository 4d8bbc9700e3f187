"""SUBS parameterisation, the masked-diffusion NELBO and the AR baseline loss.

All losses return a `LossOutput`: per-token losses summed over the valid
(non-padding) positions, so that NELBO, NLL, PPL and bits per token are
reported the same way for diffusion and autoregressive models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .process import check_mask_id, check_tokens
from .schedules import NoiseSchedule, check_unit_interval


def check_logits(logits: Tensor, tokens: Tensor) -> None:
    """Logits must be [B, L, V] for tokens [B, L]."""
    if logits.dim() != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits must have shape [batch, length, vocab] matching tokens {tuple(tokens.shape)}; "
            f"got {tuple(logits.shape)}"
        )


def subs_log_probs(logits: Tensor, z_t: Tensor, mask_id: int) -> Tensor:
    """Apply MDLM's SUBS parameterisation to raw denoiser logits.

    Zero masking probability: the mask logit is -inf, so x_theta never predicts
    the mask. Carry-over unmasking: a position that is unmasked in z_t already
    holds the clean token, so its distribution is a point mass on z_t.
    Returns float32 (or float64) log-probabilities of shape [B, L, V].
    """
    check_tokens(z_t, "z_t")
    check_logits(logits, z_t)
    check_mask_id(mask_id, logits.shape[-1])
    return _subs_log_probs(logits, z_t, mask_id)


def _subs_log_probs(logits: Tensor, z_t: Tensor, mask_id: int) -> Tensor:
    work_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logits = logits.to(work_dtype).clone()
    logits[..., mask_id] = float("-inf")
    log_probs = logits.log_softmax(dim=-1)
    unmasked = (z_t != mask_id)[..., None]
    carry_over = torch.full_like(log_probs, float("-inf")).scatter_(-1, z_t[..., None].long(), 0.0)
    return torch.where(unmasked, carry_over, log_probs)


def subs_at_masked(logits: Tensor, mask_id: int) -> Tensor:
    """SUBS log-probs for rows [N, V] of masked positions: the mask token is never predicted.

    Samplers draw only at masked positions and the loss has terms only there (SUBS carries the others over),
    so both apply SUBS to those rows alone rather than to all of [B, L, V]: with a 50k vocabulary that
    full-size work was most of a sampling step (bench/bench_text_sampling.py) and of a small model's training
    step (bench/bench_train_throughput.py).
    """
    work_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return logits.to(work_dtype).index_fill(-1, torch.tensor([mask_id], device=logits.device), float("-inf")).log_softmax(-1)


@dataclass(frozen=True)
class LossOutput:
    """Summed per-token losses over the valid positions of a batch.

    token_loss is [B, L] with zeros at padding; `loss` is the mean over valid
    tokens: the NELBO per token for diffusion (an upper bound on the NLL), the
    exact NLL per token for AR.
    """

    token_loss: Tensor
    num_tokens: Tensor

    @property
    def total(self) -> Tensor:
        return self.token_loss.sum()

    @property
    def loss(self) -> Tensor:
        return self.total / self.num_tokens.clamp_min(1)

    @property
    def per_sequence(self) -> Tensor:
        """Summed loss of each sequence in nats: the per-sequence NELBO or NLL."""
        return self.token_loss.sum(dim=-1)

    @property
    def perplexity(self) -> Tensor:
        return torch.exp(self.loss)

    @property
    def bits_per_token(self) -> Tensor:
        return self.loss / math.log(2.0)


def valid_positions(tokens: Tensor, attention_mask: Tensor | None) -> Tensor:
    if attention_mask is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    if attention_mask.shape != tokens.shape:
        raise ValueError(
            f"attention_mask must have the tokens' shape {tuple(tokens.shape)}; "
            f"got {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()


def nelbo_weights(schedule: NoiseSchedule, t: Tensor, discrete_steps: int | None = None, *, check: bool = True) -> Tensor:
    """The per-sequence weight on the masked-token cross-entropy.

    Continuous time: -alpha'(t) / (1 - alpha(t)).
    Discrete T (t = i/T, s = t - 1/T), as a Monte-Carlo estimate over a uniform i:
    T (alpha_s - alpha_t) / (1 - alpha_t).
    `check=False` for times the engine drew itself (see NoiseSchedule).
    """
    if check:
        check_unit_interval(t, "t")
        if discrete_steps is not None and discrete_steps < 1:
            raise ValueError(f"discrete_steps must be a positive integer; got {discrete_steps}")
    if discrete_steps is None:
        return schedule.loss_weight(t, check=False)
    s = (t - 1.0 / discrete_steps).clamp_min(0.0)
    alpha_t, alpha_s = schedule.alpha(t, check=False), schedule.alpha(s, check=False)
    one_minus_alpha = (1.0 - alpha_t).clamp_min(torch.finfo(t.dtype).tiny)
    return discrete_steps * (alpha_s - alpha_t) / one_minus_alpha


def masked_diffusion_loss(
    logits: Tensor,
    tokens: Tensor,
    z_t: Tensor,
    weights: Tensor,
    mask_id: int,
    attention_mask: Tensor | None = None,
    *,
    check: bool = True,
) -> LossOutput:
    """Rao-Blackwellised NELBO terms: weight(t) * -log x_theta(x^l | z_t) on masked positions.

    Unmasked positions contribute exactly zero under SUBS, and padding positions
    (attention_mask == 0) are dropped from both the sum and the token count. `check=False` for the engine, which
    checks its inputs once.
    """
    if check:
        check_tokens(tokens)
        if z_t.shape != tokens.shape:
            raise ValueError(f"z_t shape {tuple(z_t.shape)} differs from tokens shape {tuple(tokens.shape)}")
        if weights.shape not in (tokens.shape[:1], tokens.shape):
            raise ValueError(f"weights must have shape [batch] = {tuple(tokens.shape[:1])} or the tokens' "
                             f"{tuple(tokens.shape)}; got {tuple(weights.shape)}")
        check_logits(logits, z_t)
        check_mask_id(mask_id, logits.shape[-1])
    log_probs = _subs_log_probs(logits, z_t, mask_id)
    valid = valid_positions(tokens, attention_mask)
    masked = (z_t == mask_id) & valid
    token_log_prob = log_probs.gather(-1, tokens[..., None].long()).squeeze(-1)
    cross_entropy = torch.where(masked, -token_log_prob, torch.zeros_like(token_log_prob))
    token_loss = cross_entropy * per_position(weights).to(cross_entropy.dtype)
    return LossOutput(token_loss=token_loss, num_tokens=valid.sum())


def per_position(weights: Tensor) -> Tensor:
    """Loss weights [B] (one time per sequence) or [B, L] (one per position, as block diffusion has) as [B, L]
    or broadcastable to it."""
    return weights[:, None] if weights.dim() == 1 else weights


def masked_position_loss(logits: Tensor, tokens: Tensor, positions: tuple[Tensor, Tensor], weights: Tensor,
                          mask_id: int, valid: Tensor) -> LossOutput:
    """The same NELBO terms from logits [N, V] at the masked valid positions only (`positions`: their row and
    column indices, row-major): every other position's term is exactly zero under SUBS, so it needs no logits."""
    rows, columns = positions
    log_probs = subs_at_masked(logits, mask_id)
    cross_entropy = -log_probs.gather(-1, tokens[rows, columns, None].long()).squeeze(-1)
    weight = weights[rows] if weights.dim() == 1 else weights[rows, columns]
    token_loss = torch.zeros(tokens.shape, dtype=log_probs.dtype, device=tokens.device).index_put(
        (rows, columns), cross_entropy * weight.to(log_probs.dtype))
    return LossOutput(token_loss=token_loss, num_tokens=valid.sum())


def autoregressive_loss(logits: Tensor, tokens: Tensor, attention_mask: Tensor | None = None) -> LossOutput:
    """Next-token cross-entropy: logits at position l predict tokens[l + 1].

    The first token of each sequence is not predicted (it is the BOS or the
    given context), so num_tokens counts the L - 1 valid targets per sequence.
    """
    check_tokens(tokens)
    check_logits(logits, tokens)
    valid = valid_positions(tokens, attention_mask)[:, 1:]
    log_probs = logits[:, :-1].float().log_softmax(dim=-1)
    target_log_prob = log_probs.gather(-1, tokens[:, 1:, None].long()).squeeze(-1)
    token_loss = torch.where(valid, -target_log_prob, torch.zeros_like(target_log_prob))
    return LossOutput(token_loss=F.pad(token_loss, (1, 0)), num_tokens=valid.sum())

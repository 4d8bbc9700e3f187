"""Block diffusion (BD3-LM, Arriola et al. 2025): MDLM inside blocks, autoregression across them.

A sequence of L tokens is cut into L / L' blocks of L' tokens. Block b is masked at its own time t_b and scored,
under SUBS, given its own noisy tokens and the clean blocks before it:

    NELBO(x) = sum_b E_{t_b} [ -alpha'(t_b) / (1 - alpha(t_b)) * sum over masked l in b of -log p(x^l | z^b_t, x^{<b}) ]

so a block of L' = L is MDLM and blocks of L' = 1 give an autoregressive model whose "noisy block" is the mask
token at the position it predicts. The network reads the noisy and the clean sequence together in one pass
(`BlockNetwork`): the attention mask that keeps block b's view to itself and the clean blocks before it is the
backbone's to build (backbones/block_attention.py).

Training may draw the mask rates of a clipped schedule (`clip` = (beta, omega): times in [beta, omega], which
lowers the variance of the gradient, BD3-LM's data-driven noise schedule); the NELBO, a bound on the likelihood,
is always the one with times in [sampling_eps, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .objectives import LossOutput, masked_diffusion_loss, masked_position_loss, nelbo_weights, valid_positions
from .process import check_tokens, mask_where, position_draws
from .schedules import NoiseSchedule

CLIP_SEARCH_STEP = 0.05  # where the search's intervals may start: 0, 0.05, 0.1, ...

# (z_t [B, L], x_0 [B, L], t [B, L / L']) -> logits [B, L, V] of the noisy sequence
BlockNetwork = Callable[[Tensor, Tensor, Tensor], Tensor]
# the same at N chosen positions of the noisy sequence -> [N, V]
BlockPositionLogits = Callable[[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]], Tensor]


@dataclass
class BlockDiffusion:
    """One Monte-Carlo estimate of block diffusion's NELBO per call, for any BlockNetwork."""

    schedule: NoiseSchedule
    mask_id: int
    block_size: int
    sampling_eps: float = 1e-3
    antithetic: bool = True
    clip: tuple[float, float] | None = None  # (beta, omega): the times training draws, None for [sampling_eps, 1]

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be a positive integer; got {self.block_size}")
        if self.clip is not None and not 0.0 <= self.clip[0] < self.clip[1] <= 1.0:
            raise ValueError(f"the clipped schedule needs 0 <= beta < omega <= 1; got {self.clip}")

    def blocks(self, length: int) -> int:
        """Blocks of a sequence of `length` tokens; the last may be shorter (a record's last window)."""
        return -(-length // self.block_size)

    def draw_times(self, batch_size: int, blocks: int, generator: torch.Generator | None,
                   device: torch.device | str, clipped: bool = False) -> Tensor:
        """t [B, blocks]: one time per block, antithetic over all batch x blocks draws, in [sampling_eps, 1]
        (or, `clipped`, in [beta, omega])."""
        low, high = self.clip if clipped and self.clip is not None else (self.sampling_eps, 1.0)
        count = batch_size * blocks
        if self.antithetic:
            offset = torch.rand(1, generator=generator, device=device, dtype=torch.float64)
            u = (offset + torch.arange(count, device=device, dtype=torch.float64) / count) % 1.0
        else:
            u = torch.rand(count, generator=generator, device=device, dtype=torch.float64)
        return (low + (high - low) * u).to(torch.float32).view(batch_size, blocks)

    def loss(self, network: BlockNetwork, tokens: Tensor, attention_mask: Tensor | None = None,
             generator: torch.Generator | None = None, logits_at: BlockPositionLogits | None = None,
             clipped: bool = False) -> LossOutput:
        """One NELBO estimate (with `clipped`, training's clipped-schedule objective, not a bound)."""
        check_tokens(tokens)
        t = self.draw_times(tokens.shape[0], self.blocks(tokens.shape[1]), generator, tokens.device, clipped)
        return self.loss_given_noise(network, tokens, t, position_draws(tokens.shape, generator, tokens.device),
                                     attention_mask, logits_at)

    def loss_given_noise(self, network: BlockNetwork, tokens: Tensor, t: Tensor, draws: Tensor,
                         attention_mask: Tensor | None = None,
                         logits_at: BlockPositionLogits | None = None) -> LossOutput:
        """The estimate for given block times t [B, blocks] and per-position uniforms draws [B, L]."""
        t_tokens = self.per_token(t, tokens.shape[1])
        z_t = mask_where(tokens, draws, self.schedule.alpha(t_tokens, check=False), self.mask_id)
        weights = nelbo_weights(self.schedule, t_tokens, check=False)
        if logits_at is None:
            return masked_diffusion_loss(network(z_t, tokens, t), tokens, z_t, weights, self.mask_id, attention_mask,
                                         check=False)
        valid = valid_positions(tokens, attention_mask)
        positions = ((z_t == self.mask_id) & valid).nonzero(as_tuple=True)
        return masked_position_loss(logits_at(z_t, tokens, t, positions), tokens, positions, weights, self.mask_id,
                                    valid)

    def noise_level(self, t: Tensor) -> Tensor:
        """sigma(t), as MaskedDiffusion gives it to time-aware denoisers (block diffusion's network ignores it)."""
        return self.schedule.total_noise(t, check=False)

    def block_losses(self, token_loss: Tensor) -> Tensor:
        """Per-position losses [B, L] -> each block's mean [B, blocks] (what the clipped schedule's search reads)."""
        pad = self.blocks(token_loss.shape[1]) * self.block_size - token_loss.shape[1]
        return torch.nn.functional.pad(token_loss, (0, pad)).view(token_loss.shape[0], -1, self.block_size).mean(-1)

    def per_token(self, t: Tensor, length: int) -> Tensor:
        """Block times [B, blocks] -> each position's time [B, L]."""
        return t.repeat_interleave(self.block_size, dim=1)[:, :length]


def clip_candidates(widths: Sequence[float], sampling_eps: float) -> list[tuple[float, float]]:
    """The (beta, omega) intervals BD3-LM's search compares: [sampling_eps, 1], and for each width every interval
    of that width starting at a multiple of CLIP_SEARCH_STEP (beta at least sampling_eps)."""
    candidates = [(sampling_eps, 1.0)]
    for width in widths:
        if not 0.0 < width <= 1.0:
            raise ValueError(f"clip search widths must lie in (0, 1]; got {width}")
        starts = round((1.0 - width) / CLIP_SEARCH_STEP + 1e-9)
        candidates += [(max(round(i * CLIP_SEARCH_STEP, 10), sampling_eps), round(i * CLIP_SEARCH_STEP + width, 10))
                       for i in range(starts + 1)]
    return list(dict.fromkeys(candidates))

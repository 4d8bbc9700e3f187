"""MaskedDiffusion: the training-time entry point that ties schedule, masking and NELBO together."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .denoiser import Denoiser, PositionLogits
from .objectives import (
    LossOutput,
    check_logits,
    masked_diffusion_loss,
    masked_position_loss,
    nelbo_weights,
    valid_positions,
)
from .process import check_tokens, mask_where, position_draws, sample_times
from .schedules import NoiseSchedule


@dataclass
class MaskedDiffusion:
    """One Monte-Carlo NELBO estimate per call, for any denoiser(z_t, t) -> logits.

    discrete_steps=None gives the continuous-time NELBO; an integer T gives the
    discrete-time one (an upper bound that tightens as T grows).
    """

    schedule: NoiseSchedule
    mask_id: int
    sampling_eps: float = 1e-3
    antithetic: bool = True
    discrete_steps: int | None = None

    def loss(
        self,
        denoiser: Denoiser,
        tokens: Tensor,
        attention_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        logits_at: PositionLogits | None = None,
    ) -> LossOutput:
        """One NELBO estimate. With `logits_at`, the network's output layer runs at the masked positions only
        (the only ones with a loss term under SUBS); without it, `denoiser` gives logits everywhere."""
        check_tokens(tokens)
        t = self.draw_times(tokens.shape[0], generator, tokens.device)
        return self.loss_given_noise(denoiser, tokens, t, position_draws(tokens.shape, generator, tokens.device),
                                     attention_mask, logits_at)

    def draw_times(self, batch_size: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        """t[B] as this engine's NELBO draws them (antithetic, discrete or continuous as configured)."""
        return sample_times(
            batch_size,
            sampling_eps=self.sampling_eps,
            antithetic=self.antithetic,
            discrete_steps=self.discrete_steps,
            generator=generator,
            device=device,
        )

    def loss_given_noise(self, denoiser: Denoiser, tokens: Tensor, t: Tensor, draws: Tensor,
                         attention_mask: Tensor | None = None, logits_at: PositionLogits | None = None) -> LossOutput:
        """The NELBO estimate for given times t[B] and per-position uniforms draws[B, L] (`loss` draws both): so
        that two sequences can share their noise, for a paired estimate of the difference of their NELBOs."""
        # Checked once here, not inside every step of the computation: the times are drawn in [0, 1], and clean
        # tokens hold no mask id (the data layers see to it, on the CPU), so nothing is read back from the device.
        z_t = mask_where(tokens, draws, self.schedule.alpha(t, check=False), self.mask_id)
        weights = nelbo_weights(self.schedule, t, self.discrete_steps, check=False)
        return self._weighted_loss(denoiser, tokens, t, z_t, weights, attention_mask, logits_at)

    def noise(self, tokens: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """z_t ~ q(z_t | x) for times t [B]: each position masked with probability 1 - alpha_t (what a noisy-input
        classifier trains on; the loss draws the same way)."""
        return mask_where(tokens, position_draws(tokens.shape, generator, tokens.device),
                          self.schedule.alpha(t, check=False), self.mask_id)

    def masked_lm_loss(self, denoiser: Denoiser, tokens: Tensor, rate: float, attention_mask: Tensor | None = None,
                       generator: torch.Generator | None = None, logits_at: PositionLogits | None = None) -> LossOutput:
        """BERT's masked language modelling: each position masked with probability `rate` (at the time whose
        signal level is 1 - rate, for a backbone that reads time), the cross-entropy at the masked positions, each
        weighted 1; the loss is their mean. What an `mlm` model trains on; it is validated by the NELBO."""
        check_tokens(tokens)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"the masked language modelling rate must lie in (0, 1), not {rate}")
        alpha = torch.full((tokens.shape[0],), 1.0 - rate, dtype=torch.float64, device=tokens.device)
        z_t = mask_where(tokens, position_draws(tokens.shape, generator, tokens.device), alpha, self.mask_id)
        t = self.schedule.t_of_alpha(alpha.float(), check=False)
        out = self._weighted_loss(denoiser, tokens, t, z_t, torch.ones_like(t), attention_mask, logits_at)
        masked = (z_t == self.mask_id) & valid_positions(tokens, attention_mask)
        return LossOutput(token_loss=out.token_loss, num_tokens=masked.sum())

    def _weighted_loss(self, denoiser: Denoiser, tokens: Tensor, t: Tensor, z_t: Tensor, weights: Tensor,
                       attention_mask: Tensor | None, logits_at: PositionLogits | None) -> LossOutput:
        """Weighted cross-entropy of the denoiser at the masked positions of z_t, under SUBS."""
        if logits_at is None:
            logits = denoiser(z_t, t)
            check_logits(logits, tokens)
            return masked_diffusion_loss(logits, tokens, z_t, weights, self.mask_id, attention_mask, check=False)
        valid = valid_positions(tokens, attention_mask)
        positions = ((z_t == self.mask_id) & valid).nonzero(as_tuple=True)
        logits = logits_at(z_t, t, positions)
        if logits.dim() != 2 or logits.shape[0] != positions[0].numel():
            raise ValueError(f"logits_at must return [positions, vocab] = [{positions[0].numel()}, V] logits; "
                             f"got {tuple(logits.shape)}")
        return masked_position_loss(logits, tokens, positions, weights, self.mask_id, valid)

    def noise_level(self, t: Tensor) -> Tensor:
        """sigma(t), the conditioning of time-aware denoisers, for times the engine or a sampler drew (in [0, 1]
        by construction, so not checked)."""
        return self.schedule.total_noise(t, check=False)

"""MaskedDiffusion: the training-time entry point that ties schedule, masking and NELBO together."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .objectives import LossOutput, masked_diffusion_loss, nelbo_weights
from .process import check_tokens, mask_tokens, sample_times
from .samplers import Denoiser
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
    ) -> LossOutput:
        check_tokens(tokens)
        t = sample_times(
            tokens.shape[0],
            sampling_eps=self.sampling_eps,
            antithetic=self.antithetic,
            discrete_steps=self.discrete_steps,
            generator=generator,
            device=tokens.device,
        )
        z_t = mask_tokens(tokens, self.schedule.alpha(t), self.mask_id, generator)
        weights = nelbo_weights(self.schedule, t, self.discrete_steps)
        logits = denoiser(z_t, t)
        return masked_diffusion_loss(logits, tokens, z_t, weights, self.mask_id, attention_mask)

"""A uniform-state diffusion model (UDLM) behind the model handle: its ancestral sampler, guided classifier-free
(tempered reverse steps, as the guidance paper defines it for uniform noise) or classifier-based, and NELBO scores
(a masked-diffusion model's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

from ..diffusion.chain_guidance import classifier_free_step
from ..diffusion.denoiser import SampleOutput
from ..diffusion.reverse_chain import ReverseStep
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from .diffusion_model import DiffusionModel
from .handle import Conditioning, ModelMismatchError, WithoutVariantScores, cut

# Why prompts and infilling are refused: a masked z_t shows known bases as they are, so conditioning on them is
# exact; under uniform noise every position of z_t is noisy, and clamping known bases (or re-noising them each
# step) only approximates p(x | known bases).
KNOWN_BASES = ("a uniform-state diffusion model cannot condition exactly on known bases (under uniform noise every "
               "position of z_t is noisy); use a masked-diffusion (mdlm) model")


class UniformDiffusionModel(WithoutVariantScores, DiffusionModel):
    kind: ClassVar[str] = "udlm"
    kind_name: ClassVar[str] = "uniform-state diffusion"

    @torch.no_grad()
    def sample(self, sampler: Sampler, *, num: int, length: int, seed: int | torch.Generator, batch_size: int,
               prompt: np.ndarray | None = None, start_token: int | None = None,
               condition: Conditioning = Conditioning(), stop: StopRule | None = None,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
        """Windows of at most the context, each from uniform noise (no prompt or longer samples yet)."""
        if sampler.process != "uniform":
            raise ModelMismatchError(f"{self.source} holds a uniform-state diffusion (udlm) model; --sampler "
                                     f"{sampler.name} reverses masking: sample it with --sampler udlm")
        if prompt is not None:
            raise ValueError(f"--prompt: {KNOWN_BASES}")
        self.check_one_window(prompt, length, "a uniform-state diffusion model")
        return cut(self.sample_chain(self.network.engine, self.reverse_step(condition), sampler.steps, num=num,
                                     length=length, seed=seed, batch_size=batch_size, progress=progress), stop)

    def reverse_step(self, condition: Conditioning) -> ReverseStep:
        """The model's reverse step: unconditional, one class, D-CFG toward it (tempering the reverse step's
        log-probabilities), or D-CBG with a noisy-input classifier (guiding the unconditional model)."""
        engine, network = self.network.engine, self.network
        if condition.guide is not None:
            return self.classifier_guided_step(engine, condition)
        if condition.label is None or condition.weight == 1.0:
            return engine.model_step(network.sampling_denoiser(condition.label))
        return classifier_free_step(engine, network.sampling_denoiser(condition.label), network.sampling_denoiser(None),
                                    condition.weight)

    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        raise ModelMismatchError(f"{self.source} holds a uniform-state diffusion model; infill: {KNOWN_BASES}")

"""A uniform-state diffusion model (UDLM) behind the model handle: its ancestral sampler, guided by classifier-free
guidance as the guidance paper defines it for uniform noise, and NELBO scores (a masked-diffusion model's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

from ..diffusion.chain_guidance import classifier_free_step
from ..diffusion.denoiser import SampleOutput
from ..diffusion.generation import in_batches
from ..diffusion.process import make_generator
from ..diffusion.reverse_chain import ReverseStep
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from .diffusion_model import DiffusionModel
from .handle import Conditioning, ModelMismatchError, WithoutVariantScores, cut


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
            raise ValueError("--prompt: a uniform-state diffusion model does not continue a prompt yet")
        if length > self.context:
            raise ValueError(f"--length {length}: a uniform-state diffusion model samples at most its context "
                             f"({self.context}) for now")
        generator, step = make_generator(seed, self.device), self.reverse_step(condition)

        def draw(batch: int) -> SampleOutput:
            out = sampler.sample_uniform(self.network.engine, step, (batch, length), generator, self.device)
            return dataclasses.replace(out, tokens=out.tokens.cpu())

        bases = None if progress is None else (lambda rows: progress(rows * length))  # progress counts tokens
        return cut(in_batches(draw, num, batch_size, bases), stop)

    def reverse_step(self, condition: Conditioning) -> ReverseStep:
        """The model's reverse step: unconditional, one class, or D-CFG toward it (tempering the reverse step's
        log-probabilities, as the guidance paper does for uniform noise)."""
        engine = self.network.engine
        if condition.label is None or condition.weight == 1.0:
            return engine.model_step(self.network.sampling_denoiser(condition.label))
        return classifier_free_step(engine, self.network.sampling_denoiser(condition.label),
                                    self.network.sampling_denoiser(None), condition.weight)

    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        raise ModelMismatchError(f"{self.source} holds a uniform-state diffusion model; infill needs a "
                                 f"masked-diffusion (mdlm) model for now")

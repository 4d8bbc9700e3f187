"""A uniform-state diffusion model (UDLM) behind the model handle: its ancestral sampler and NELBO scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..diffusion.denoiser import SampleOutput
from ..diffusion.generation import in_batches
from ..diffusion.process import make_generator
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.generate import score_sequence
from ..likelihood import Estimate, Nll
from .handle import Conditioning, Model, ModelMismatchError, cut


class UniformDiffusionModel(Model):
    kind: ClassVar[str] = "udlm"
    kind_name: ClassVar[str] = "uniform-state diffusion"
    score_name: ClassVar[str] = "nelbo_nats"
    snv_method: ClassVar[str] = "nelbo-difference"
    window_method: ClassVar[str] = "nelbo-difference"

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
        generator = make_generator(seed, self.device)
        denoiser = self.network.sampling_denoiser(condition.label, condition.weight)

        def draw(batch: int) -> SampleOutput:
            out = sampler.sample_uniform(self.network.engine, denoiser, (batch, length), generator, self.device)
            return dataclasses.replace(out, tokens=out.tokens.cpu())

        return cut(in_batches(draw, num, batch_size, progress), stop)

    def describe_sampling(self, sampler: Sampler) -> str:
        return sampler.describe()

    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        raise ModelMismatchError(f"{self.source} holds a uniform-state diffusion model; infill needs a "
                                 f"masked-diffusion (mdlm) model for now")

    def score(self, tokens: np.ndarray, mc: int, seed: int) -> Nll:
        return score_sequence(self.network.sampling_denoiser(), self.network.engine, tokens, self.context, mc, seed,
                              self.device)

    @torch.no_grad()
    def nll(self, tokens: Tensor, attention_mask: Tensor, generator: torch.Generator, draws: int,
            discrete_steps: int | None) -> tuple[float, int]:
        engine = dataclasses.replace(self.network.engine, discrete_steps=discrete_steps)
        total = 0.0
        for _ in range(draws):
            out = self.network.objective(tokens, attention_mask, generator, engine=engine)
            total += float(out.total) / draws
        return total, int(out.num_tokens)

    def snv_log_ratios(self, windows: np.ndarray, sites: np.ndarray, alt: np.ndarray, both_strands: bool) -> np.ndarray:
        raise self._no_variant_scores()

    def window_log_ratio(self, ref: np.ndarray, alt: np.ndarray, flanks: tuple[int, int], mc: int, seed: int,
                         both_strands: bool) -> Estimate:
        raise self._no_variant_scores()

    def _no_variant_scores(self) -> ModelMismatchError:
        return ModelMismatchError(f"{self.source} holds a uniform-state diffusion model; score-variants does not "
                                  f"score with it yet (use `score` for whole-window NELBOs, or an mdlm or ar model)")

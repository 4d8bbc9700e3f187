"""A masked-diffusion model (MDLM) behind the model handle: the engine's samplers, infilling, NELBO scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..diffusion.ancestral_sampler import AncestralSampler
from ..diffusion.chain_guidance import classifier_based_step
from ..diffusion.denoiser import SampleOutput
from ..diffusion.generation import generate, in_batches, infill
from ..diffusion.process import make_generator
from ..diffusion.reverse_chain import MaskedChain, ReverseStep, StateChain, run_chain
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.generate import score_sequence
from ..dna.variants import nelbo_difference, snv_log_ratios
from ..likelihood import Estimate, Nll
from .handle import Conditioning, GuideClassifier, Model, cut


class DiffusionModel(Model):
    kind: ClassVar[str] = "mdlm"
    kind_name: ClassVar[str] = "masked diffusion"
    snv_method: ClassVar[str] = "masked-marginal"
    window_method: ClassVar[str] = "nelbo-difference"
    score_name: ClassVar[str] = "nelbo_nats"

    @property
    def strand_symmetric(self) -> bool:
        return bool(getattr(self.network.backbone, "rcps", False))

    def conditioning(self, class_label: str | None, guidance: float | None,
                     classifier: GuideClassifier | None = None, first_order: bool = False) -> Conditioning:
        if class_label is None:
            if guidance is not None or classifier is not None:
                raise ValueError("--guidance needs --class: guidance steers toward a class")
            return Conditioning(words=" class=none" if self.classes else "")
        weight = 1.0 if guidance is None else guidance
        if classifier is None:
            label = self.class_index(class_label)
            return Conditioning(label, weight, f" class={self.classes[label]} guidance={weight:g}")
        if class_label not in classifier.classes:
            raise ValueError(f"unknown class {class_label!r}; the noisy-input classifier knows {classifier.classes}")
        way = " first-order" if first_order else ""
        return Conditioning(classifier.classes.index(class_label), weight,
                            f" class={class_label} guidance=cbg{way} weight={weight:g}",
                            classifier.reading(self.network.engine), first_order)

    @torch.no_grad()
    def sample(self, sampler: Sampler, *, num: int, length: int, seed: int | torch.Generator, batch_size: int,
               prompt: np.ndarray | None = None, start_token: int | None = None,
               condition: Conditioning = Conditioning(), stop: StopRule | None = None,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
        """A diffusion model generates its first token like any other, so `start_token` is not needed."""
        self.require_masked_sampler(sampler)
        if condition.guide is not None:
            return cut(self._classifier_guided(sampler, condition, num=num, length=length, seed=seed,
                                               batch_size=batch_size, prompt=prompt, progress=progress), stop)
        out = generate(self.network.sampling_denoiser(condition.label, condition.weight), self.network.engine.schedule,
                       sampler, context=self.context, mask_id=self.mask_id, num=num, length=length, seed=seed,
                       batch_size=batch_size, prompt=None if prompt is None else torch.as_tensor(prompt, dtype=torch.long),
                       device=self.device, progress=progress)
        return cut(out, stop)

    def _classifier_guided(self, sampler: Sampler, condition: Conditioning, *, num: int, length: int,
                           seed: int | torch.Generator, batch_size: int, prompt: np.ndarray | None,
                           progress: Callable[[int], None] | None) -> SampleOutput:
        """D-CBG: MDLM's ancestral steps drawn from their full distribution (the masked chain), reweighted by the
        noisy-input classifier; the unconditional model (a conditional one's null label) is what it guides."""
        if not isinstance(sampler, AncestralSampler) or sampler != AncestralSampler(steps=sampler.steps):
            raise ValueError(f"--guidance cbg draws MDLM's ancestral steps (--sampler ancestral, uniform grid, no "
                             f"cache, remasking or top-p), not {sampler.describe()}")
        self.check_one_window(prompt, length, "classifier-based guidance")
        chain = MaskedChain(self.network.engine.schedule, self.mask_id, self.network.output_states)
        return self.sample_chain(chain, self.classifier_guided_step(chain, condition), sampler.steps, num=num,
                                 length=length, seed=seed, batch_size=batch_size, progress=progress)

    def classifier_guided_step(self, chain: StateChain, condition: Conditioning) -> ReverseStep:
        """D-CBG of `chain`'s reverse step by the condition's noisy-input classifier, guiding the unconditional
        model (a conditional one's null label)."""
        return classifier_based_step(chain, self.network.sampling_denoiser(None), condition.guide, condition.label,
                                     condition.weight, condition.first_order)

    def check_one_window(self, prompt: np.ndarray | None, length: int, what: str) -> None:
        """Sampling by a reverse chain starts from noise and fills one window: no prompt, no longer samples."""
        if prompt is not None:
            raise ValueError(f"--prompt: {what} does not continue a prompt yet")
        if length > self.context:
            raise ValueError(f"--length {length}: {what} samples at most the model's context ({self.context}) "
                             f"for now")

    def sample_chain(self, chain: StateChain, step: ReverseStep, steps: int, *, num: int, length: int,
                     seed: int | torch.Generator, batch_size: int,
                     progress: Callable[[int], None] | None) -> SampleOutput:
        """`num` windows drawn by a reverse chain's `step` over `steps` steps, in batches; progress counts bases."""
        generator = make_generator(seed, self.device)

        def draw(batch: int) -> SampleOutput:
            tokens = run_chain(chain, step, (batch, length), steps, generator, self.device)
            return SampleOutput(tokens.cpu(), steps, steps * batch)

        return in_batches(draw, num, batch_size, None if progress is None else (lambda rows: progress(rows * length)))

    def describe_sampling(self, sampler: Sampler) -> str:
        return sampler.describe()

    @torch.no_grad()
    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        self.require_masked_sampler(sampler)
        out = infill(self.network.sampling_denoiser(), self.network.engine.schedule, sampler, context=self.context,
                     mask_id=self.mask_id, tokens=torch.as_tensor(tokens, dtype=torch.long, device=self.device),
                     fill=torch.as_tensor(fill, device=self.device), seed=seed)
        return dataclasses.replace(out, tokens=out.tokens.cpu())

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
        ratios = snv_log_ratios(self.network.sampling_denoiser(), self.mask_id, self._tensor(windows),
                                self._tensor(sites), self._tensor(alt), both_strands)
        return ratios.cpu().numpy()

    def window_log_ratio(self, ref: np.ndarray, alt: np.ndarray, flanks: tuple[int, int], mc: int, seed: int,
                         both_strands: bool) -> Estimate:
        return nelbo_difference(self.network.engine, self.network.sampling_denoiser(), self._tensor(ref),
                                self._tensor(alt), flanks, mc, seed, both_strands)

    def _tensor(self, tokens: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)


class MaskedLanguageModel(DiffusionModel):
    """A model trained with masked language modelling (objective mlm, BERT's), used as a masked diffusion model:
    its masked marginals are what it learnt; its NELBO bounds a likelihood it was not trained to tighten, which
    MDLM fine-tuning (init_from it, objective mdlm) does."""

    kind: ClassVar[str] = "mlm"
    kind_name: ClassVar[str] = "masked language model"

"""A noisy-input classifier p(y | z_t) for classifier-based guidance (D-CBG): a sequence classifier trained on
sequences noised by a generator's forward process at a time drawn per sequence, t ~ U[eps, 1], and told the noise
level (a time-conditioned Caduceus). It keeps the noise it was trained on (process, schedule, mask id, states), so
guidance refuses a generator of the other process.

The classifier reads the noise level sigma(t) = -log alpha_t, not t: a masked or uniform z_t's distribution depends on
alpha_t alone, so a classifier trained under one schedule reads a generator's z_t under another correctly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..diffusion.engine import MaskedDiffusion
from ..diffusion.uniform import UniformDiffusion
from ..errors import CheckpointError
from ..models.spec import UNIFORM, ModelSpec, objective_settings
from .classifier import SequenceClassifier, load_classifier

NOISE_KINDS = ("mdlm", "mlm", UNIFORM)  # objectives whose forward process a noisy classifier can learn


def noise_of(spec: ModelSpec, states: tuple[int, ...]) -> dict[str, Any]:
    """The forward process of a generator, as a noisy-input classifier stores it; `states` are the tokens the
    generator emits (its network's)."""
    if spec.objective.kind not in NOISE_KINDS:
        raise ValueError(f"a noisy-input classifier learns masked (mdlm) or uniform-state (udlm) noise; this generator "
                         f"was trained with objective {spec.objective.kind}")
    return {"objective": dataclasses.asdict(spec.objective), "mask_id": spec.mask_id, "states": list(states)}


def process_name(engine: MaskedDiffusion | UniformDiffusion) -> str:
    return "uniform" if isinstance(engine, UniformDiffusion) else "masked"


class NoisyInputClassifier(SequenceClassifier):
    """p(y | z_t, sigma(t)): the backbone must read the noise level (time_conditioning)."""

    def __init__(self, config: dict[str, Any], backbone_config: dict[str, Any], classes: list[str],
                 noise: dict[str, Any]) -> None:
        super().__init__(config, backbone_config, classes)
        if not self.backbone.reads_time:
            raise ValueError("a noisy-input classifier needs a backbone that reads the noise level "
                             "(model.overrides.time_conditioning: true)")
        self.noise = noise
        self.engine = objective_settings(noise["objective"]).engine(noise["mask_id"], tuple(noise["states"]))

    @property
    def process(self) -> str:
        return process_name(self.engine)

    @classmethod
    def check_stored(cls, stored: dict[str, Any], path: str | Path) -> None:
        if "noise" not in stored:
            raise CheckpointError(f"{path} is a classifier of clean sequences (mdlm-bio finetune); classifier-based "
                                  f"guidance needs a noisy-input one: mdlm-bio train-classifier --generator MODEL")

    def stored_settings(self) -> dict[str, Any]:
        return {**super().stored_settings(), "noise": self.noise}

    def model_inputs(self, tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """z_t of the stored forward process at a time drawn per sequence, and its noise level."""
        t = self.engine.draw_times(tokens.shape[0], generator, tokens.device)
        return self.engine.noise(tokens, t, generator), self.engine.noise_level(t).float()

    def log_probs(self, inputs: Tensor, noise_level: Tensor) -> Tensor:
        """log p(y | z) [B, C] for ids [B, L] or one-hot rows [B, L, V], every position a base (samples)."""
        mask = torch.ones(inputs.shape[:2], device=inputs.device)
        return self(inputs, mask, conjoin=self.conjoin, noise_level=noise_level.float()).log_softmax(-1)

    def reading(self, engine: MaskedDiffusion | UniformDiffusion) -> GuidingClassifier:
        """This classifier as guidance of a generator with `engine` reads it, at the generator's times."""
        if process_name(engine) != self.process:
            raise ValueError(f"the noisy-input classifier learnt {self.process} noise but the generator adds "
                             f"{process_name(engine)} noise; train one for it: mdlm-bio train-classifier --generator "
                             f"MODEL")
        same = (tuple(engine.states) == tuple(self.noise["states"]) if isinstance(engine, UniformDiffusion)
                else engine.mask_id == self.noise["mask_id"])
        if not same:
            raise ValueError("the noisy-input classifier was trained on another vocabulary's noise (states or mask "
                             "id) than the generator's; train one for it: mdlm-bio train-classifier --generator MODEL")
        return GuidingClassifier(self, engine)


class GuidingClassifier:
    """chain_guidance.NoisyClassifier of a trained classifier: times of the generator's schedule in, log p(y | z_t)
    out, from ids or (for first-order guidance) differentiably from one-hot rows."""

    dtype = torch.float32

    def __init__(self, classifier: NoisyInputClassifier, engine: MaskedDiffusion | UniformDiffusion) -> None:
        self.classifier, self.engine = classifier, engine
        self.vocab_size = classifier.backbone.embedding.num_embeddings

    def __call__(self, inputs: Tensor, t: Tensor) -> Tensor:
        return self.classifier.log_probs(inputs, self.engine.noise_level(t))

    soft = __call__  # log_probs reads one-hot rows as it reads ids


def load_noisy_classifier(path: str | Path, device: torch.device | str = "cpu") -> NoisyInputClassifier:
    """A `train-classifier` checkpoint, or its run folder when that holds one best checkpoint."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("**/checkpoints/best.ckpt"))
        if len(found) != 1:
            what = "no checkpoints/best.ckpt" if not found else f"{len(found)} ({', '.join(map(str, found))})"
            raise FileNotFoundError(f"{path} holds {what}; give --noisy-classifier one checkpoint file")
        path = found[0]
    return load_classifier(path, device, NoisyInputClassifier)

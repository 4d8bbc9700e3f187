"""The LightningModule: a backbone trained with the masked-diffusion NELBO (or the AR loss as baseline)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..backbones import build_backbone
from ..diffusion import LossOutput, MaskedDiffusion, autoregressive_loss, classifier_free_guidance
from ..diffusion.engine import PositionLogits
from ..diffusion.samplers import Denoiser
from ..memory import MemoryEstimate, activation_bytes, probe_length, scaled
from .settings import ModelSpec, TrainingSettings

LN2 = math.log(2.0)
CHECKPOINT_FORMAT = 2  # 1: the run config only (backbone as preset + overrides); 2: a ModelSpec beside it


def seeded_generator(entropy: list[int], device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from a few integers (run seed, step, ...) through SeedSequence, which mixes them."""
    seed = np.random.SeedSequence(entropy).generate_state(1)[0]
    return torch.Generator(device=device).manual_seed(int(seed))


def lr_factor(step: int, warmup: int, total: int, decay: str, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine down to min_ratio at `total` steps (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class DiffusionLM(L.LightningModule):
    """Engine + backbone, built from a ModelSpec (what the checkpoint stores) and, to train, TrainingSettings.
    `run_config` (the run's resolved YAML, if any) is kept in checkpoints as a record of how it was trained."""

    def __init__(self, spec: ModelSpec, training: TrainingSettings | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        # Not `self.training`: nn.Module uses that name for train/eval mode.
        self.spec, self.training_settings, self.run_config = spec, training, run_config
        self.mask_id = spec.mask_id
        self.backbone = build_backbone(spec.backbone)
        vocab_size = spec.backbone["vocab_size"]
        # Class-conditional models (labelled data) learn an unconditional branch too, through label dropout.
        self.num_classes = int(spec.backbone.get("num_classes", 0))
        self.label_dropout = training.label_dropout if training is not None and self.num_classes else 0.0
        allowed = torch.ones(vocab_size, dtype=torch.bool)
        if spec.output_ids is not None:
            allowed = torch.zeros(vocab_size, dtype=torch.bool)
            allowed[list(spec.output_ids)] = True
        # The ids the model may emit (for DNA the four bases): it is a distribution over these only,
        # so N, [PAD] or the vocabulary padding are never sampled, and positions holding them are
        # context but not targets.
        self.register_buffer("output_allowed", allowed, persistent=False)
        # DNA runs report bits per base, text runs bits per token (and both the perplexity).
        self.unit = "token" if spec.track == "text" else "base"
        # Weight decay applies to matrices, not to norms, biases and embeddings. Decided here, from the shapes
        # the backbone is built with: FSDP replaces each parameter's data by a flat 1-D shard before
        # configure_optimizers runs, where a shape test would exempt every weight.
        self._decayed = {id(param) for name, param in self.backbone.named_parameters()
                         if param.dim() >= 2 and "embedding" not in name}
        self.is_autoregressive = spec.objective.kind == "ar"
        self.engine: MaskedDiffusion = spec.objective.engine(spec.mask_id)

    def inference_memory(self, batch: int, length: int, outputs: int = 0) -> MemoryEstimate:
        """Network calls at [batch, length] without gradients (sampling, scoring), measured on a probe and
        scaled; the weights; and `outputs` bytes of results kept on the side."""
        tensors = [*self.parameters(), *self.buffers()]
        probe = torch.full((1, probe_length(length)), self.mask_id, device=tensors[0].device)
        times = torch.ones(1, device=probe.device)
        with torch.no_grad():
            probed = activation_bytes(lambda: self.denoiser(probe, times), [*tensors, probe, times])
        weights = sum(tensor.numel() * tensor.element_size() for tensor in tensors)
        return MemoryEstimate({"activations": scaled(probed, probe.numel(), batch * length), "weights": weights,
                               "outputs": outputs})

    def restrict(self, logits: Tensor) -> Tensor:
        """-inf for the tokens the model may not emit; a model that may emit all of them (text) is left as is,
        sparing a copy of its largest tensor."""
        if self.spec.output_ids is None:
            return logits
        return logits.masked_fill(~self.output_allowed, float("-inf"))

    def denoiser(self, z_t: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The engine's view of the network; conditioning (when a backbone uses it) is MDLM's sigma(t),
        plus the class labels for a conditional model (None: the unconditional branch)."""
        extra = {} if labels is None else {"labels": labels}
        return self.restrict(self.backbone(z_t, self.engine.noise_level(t), **extra))

    def causal_network(self, tokens: Tensor) -> Tensor:
        """An autoregressive model's view of the network: logits at position l score token l + 1."""
        return self.restrict(self.backbone(tokens, None))

    def _label_index(self, label: int | None) -> int:
        """The embedding row of a class (None: the null label of the unconditional branch)."""
        if not self.num_classes:
            raise ValueError("this model is not class-conditional (trained without labels)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"class index {label} is out of range for {self.num_classes} classes")
        return self.num_classes if label is None else label

    def class_denoiser(self, label: int | None) -> Denoiser:
        """The denoiser for one class (None: unconditional), for samplers that call denoiser(z, t)."""
        index = self._label_index(label)

        def denoise(z_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(z_t, t, torch.full(z_t.shape[:1], index, dtype=torch.long, device=z_t.device))

        return denoise

    def guided_denoiser(self, label: int, weight: float) -> Denoiser:
        """Classifier-free guidance toward `label`: weight 0 is unconditional, 1 conditional, > 1 sharper.

        Both branches run as one batch of twice the size: one network call per step instead of two,
        which is what matters when small sampling batches leave the device idle.
        """
        if weight in (0.0, 1.0):  # one branch has weight 0: skip computing it
            return self.class_denoiser(label if weight == 1.0 else None)
        branches = torch.tensor([self._label_index(label), self._label_index(None)])

        def denoise(z_t: Tensor, t: Tensor) -> Tensor:
            labels = branches.to(z_t.device).repeat_interleave(z_t.shape[0])
            conditional, unconditional = self.denoiser(z_t.repeat(2, 1), t.repeat(2), labels).chunk(2)
            return classifier_free_guidance(conditional, unconditional, weight)

        return denoise

    def objective(
        self,
        tokens: Tensor,
        attention_mask: Tensor | None,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        engine: MaskedDiffusion | None = None,
    ) -> LossOutput:
        """The loss over positions whose token the model can emit (for DNA: bases, not N or padding).
        `engine` overrides the training one, e.g. a discrete-T copy for evaluation."""
        emittable = self.output_allowed[tokens]
        attention_mask = emittable if attention_mask is None else attention_mask.bool() & emittable
        if self.is_autoregressive:
            extra = {} if labels is None else {"labels": labels}
            return autoregressive_loss(self.restrict(self.backbone(tokens, None, **extra)), tokens, attention_mask)
        denoiser = self.denoiser if labels is None else (lambda z_t, t: self.denoiser(z_t, t, labels))
        return (engine or self.engine).loss(denoiser, tokens, attention_mask, generator=generator,
                                            logits_at=self.position_logits(labels))

    def position_logits(self, labels: Tensor | None = None) -> PositionLogits | None:
        """The loss's view of a backbone that can give logits at chosen positions only (None if it cannot)."""
        if not hasattr(self.backbone, "logits_at"):
            return None
        extra = {} if labels is None else {"labels": labels}

        def logits_at(z_t: Tensor, t: Tensor, positions: tuple[Tensor, Tensor]) -> Tensor:
            return self.restrict(self.backbone.logits_at(z_t, self.engine.noise_level(t), positions, **extra))

        return logits_at

    def drop_labels(self, labels: Tensor | None, generator: torch.Generator) -> Tensor | None:
        """Replace each label by the null label with probability label_dropout (the unconditional branch)."""
        if labels is None or not self.num_classes:
            return None
        dropped = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device) < self.label_dropout
        return labels.masked_fill(dropped, self.num_classes)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        generator = self.step_generator(batch["tokens"].device)
        labels = self.drop_labels(batch.get("labels"), generator)
        out = self.objective(batch["tokens"], batch.get("attention_mask"), generator, labels)
        self.log("train/loss", out.loss)
        self.log(f"train/bits_per_{self.unit}", out.loss / LN2, prog_bar=True)  # same unit as validation
        return out.loss

    def step_generator(self, device: torch.device) -> torch.Generator:
        """Diffusion noise drawn from (seed, step, rank) alone, so a resumed run repeats exactly what an
        uninterrupted one would have drawn (Lightning does not checkpoint the global RNG)."""
        return seeded_generator([self._training.seed, self.global_step, self.global_rank], device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # Fixed noise per batch, so validation curves move only when the model does.
        generator = torch.Generator(device=batch["tokens"].device).manual_seed(batch_idx)
        labels = batch.get("labels") if self.num_classes else None
        out = self.objective(batch["tokens"], batch.get("attention_mask"), generator, labels)
        weight = int(out.num_tokens)
        if labels is not None:  # how much the label helps: the unconditional branch on the same noise
            generator.manual_seed(batch_idx)
            unconditional = self.objective(batch["tokens"], batch.get("attention_mask"), generator)
            self.log(f"val/bits_per_{self.unit}_unconditional", unconditional.loss / LN2, batch_size=weight, sync_dist=True)
        self.log("val/nelbo", out.loss, batch_size=weight, sync_dist=True)
        self.log(f"val/bits_per_{self.unit}", out.loss / LN2, batch_size=weight, prog_bar=True, sync_dist=True)
        self._validation_totals += torch.stack([out.loss.detach() * weight, out.loss.new_tensor(weight)])

    def on_validation_epoch_start(self) -> None:
        self._validation_totals = torch.zeros(2, device=self.device)

    def on_validation_epoch_end(self) -> None:
        """Perplexity is exp of the token-weighted mean NLL over the whole validation set; averaging each
        batch's exp (what logging it per step would do) overstates it, by Jensen's inequality."""
        nll_sum, tokens = self.trainer.strategy.reduce(self._validation_totals, reduce_op="sum")
        self.log("val/ppl", (nll_sum / tokens).exp())

    @property
    def _training(self) -> TrainingSettings:
        if self.training_settings is None:
            raise RuntimeError("this DiffusionLM was built for inference (no TrainingSettings)")
        return self.training_settings

    def configure_optimizers(self):
        optim = self._training.optim
        decay = [param for param in self.backbone.parameters() if id(param) in self._decayed]
        no_decay = [param for param in self.backbone.parameters() if id(param) not in self._decayed]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=optim.lr,
            betas=optim.betas,
        )
        total = self._training.max_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, optim.warmup_steps, total, optim.decay, optim.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mdlm_bio_format"] = CHECKPOINT_FORMAT
        checkpoint["mdlm_bio_model"] = self.spec.to_dict()
        checkpoint["mdlm_bio_config"] = self.run_config

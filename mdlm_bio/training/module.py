"""The LightningModule: a model's network trained with the masked-diffusion NELBO (or the AR loss as baseline)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..diffusion.process import make_generator
from ..models.checkpoint_format import CHECKPOINT_FORMAT
from ..models.network import LanguageModel
from ..models.spec import ModelSpec
from .settings import TrainingSettings

LN2 = math.log(2.0)


def seeded_generator(entropy: list[int], device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from a few integers (run seed, step, ...) through SeedSequence, which mixes them."""
    seed = np.random.SeedSequence(entropy).generate_state(1)[0]
    return make_generator(int(seed), device)


def lr_factor(step: int, warmup: int, total: int, decay: str, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine or linear down to min_ratio at `total` steps (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "linear":  # BERT's fine-tuning schedule
        return min_ratio + (1 - min_ratio) * (1 - progress)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def fine_tuning_schedule(optimizer: torch.optim.Optimizer, total: int, optim: dict[str, Any]) -> dict[str, Any]:
    """Lightning's optimizer configuration for a fine-tuning run measured in epochs: warmup over
    `optim["warmup_fraction"]` of the `total` steps (at least one), then `optim["decay"]` to `min_lr_ratio`."""
    warmup = max(1, round(optim["warmup_fraction"] * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, optim["decay"], optim["min_lr_ratio"]))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class DiffusionLM(LanguageModel, L.LightningModule):
    """The network of models/network.py, trained: built from a ModelSpec (what the checkpoint stores) and
    TrainingSettings. `run_config` (the run's resolved YAML, if any) is kept in checkpoints as a record of how it
    was trained."""

    def __init__(self, spec: ModelSpec, training: TrainingSettings | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        super().__init__(spec)
        # Not `self.training`: nn.Module uses that name for train/eval mode.
        self.training_settings, self.run_config = training, run_config
        # Class-conditional models (labelled data) learn an unconditional branch too, through label dropout.
        self.label_dropout = training.label_dropout if training is not None and self.num_classes else 0.0
        # DNA runs report bits per base, text runs bits per token (and both the perplexity).
        self.unit = "token" if spec.track == "text" else "base"
        # Weight decay applies to matrices, not to norms, biases and embeddings. Decided here, from the shapes
        # the backbone is built with: FSDP replaces each parameter's data by a flat 1-D shard before
        # configure_optimizers runs, where a shape test would exempt every weight.
        self._decayed = {id(param) for name, param in self.backbone.named_parameters()
                         if param.dim() >= 2 and "embedding" not in name}

    def drop_labels(self, labels: Tensor | None, generator: torch.Generator) -> Tensor | None:
        """Replace each label by the null label with probability label_dropout (the unconditional branch)."""
        if labels is None or not self.num_classes:
            return None
        dropped = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device) < self.label_dropout
        return labels.masked_fill(dropped, self.num_classes)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        generator = self.step_generator(batch["tokens"].device)
        labels = self.drop_labels(batch.get("labels"), generator)
        out = self.objective(batch["tokens"], batch.get("attention_mask"), generator, labels, training_objective=True)
        self.log("train/loss", out.loss)
        self.log(f"train/bits_per_{self.unit}", out.loss / LN2, prog_bar=True)  # same unit as validation
        return out.loss

    def step_generator(self, device: torch.device) -> torch.Generator:
        """Diffusion noise drawn from (seed, step, rank) alone, so a resumed run repeats exactly what an
        uninterrupted one would have drawn (Lightning does not checkpoint the global RNG)."""
        return seeded_generator([self._training.seed, self.global_step, self.global_rank], device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # Fixed noise per batch, so validation curves move only when the model does.
        generator = make_generator(batch_idx, batch["tokens"].device)
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

"""Sequence classification on a DNA backbone: mean-pooled features and a linear head (Caduceus's protocol).

The backbone starts from a pretrained checkpoint (ours, or a published Caduceus one) or from scratch.
Models without parameter sharing between strands (Caduceus-Ph, plain BiMamba) are conjoined at
evaluation: features of a sequence and of its reverse complement are averaged before pooling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
from torch import Tensor, nn

from ..backbones import build_backbone
from ..backbones.caduceus import Caduceus, conjoined_features
from ..classification_metrics import METRICS
from ..errors import CheckpointError, first_line
from ..models.checkpoint_format import read_checkpoint
from .data.labelled import random_reverse_complement
from .module import fine_tuning_schedule, seeded_generator

ACCURACY = "accuracy"  # logged per batch as {stage}/acc; any other metric is scored over the epoch as {stage}/<metric>
NOISE_STREAM = 1  # the noise a noisy-input classifier trains on is drawn apart from the strand coin flips


class NotAClassifierBackbone(ValueError):
    """A backbone without per-position DNA features (e.g. the text DiT)."""


def logged_metric(stage: str, metric: str) -> str:
    """The name a SequenceClassifier logs a stage's metric under (val/acc, test/matthews, ...)."""
    return f"{stage}/acc" if metric == ACCURACY else f"{stage}/{metric}"


def mean_pool(features: Tensor, attention_mask: Tensor) -> Tensor:
    """Average of the features over real (non-padding) positions: [B, L, D] -> [B, D]."""
    weights = attention_mask.to(features.dtype)[..., None]
    return (features * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def should_conjoin(setting: bool | str, backbone: Caduceus) -> bool:
    """`auto` conjoins exactly the models that are not RC-equivariant by construction."""
    if setting == "auto":
        return not backbone.rcps
    if not isinstance(setting, bool):
        raise ValueError(f"model.conjoin must be auto, true or false, not {setting!r}")
    return setting


class SequenceClassifier(L.LightningModule):
    """Backbone + mean pooling + linear head, trained with cross-entropy; logs loss, top-1 accuracy and, where
    `config["metric"]` names another (matthews, f1), that metric per validation and test epoch.

    `config` is the run's resolved fine-tuning config; `backbone_config` the architecture (stored in the
    checkpoint with the class names, so a checkpoint alone rebuilds the classifier).
    """

    def __init__(self, config: dict[str, Any], backbone_config: dict[str, Any], classes: list[str]) -> None:
        super().__init__()
        self.config, self.backbone_config, self.classes = config, dict(backbone_config), list(classes)
        self.backbone = build_backbone(self.backbone_config)
        if not isinstance(self.backbone, Caduceus):
            raise NotAClassifierBackbone(
                f"fine-tuning needs a DNA backbone (caduceus); got {self.backbone_config.get('architecture')!r}"
            )
        self.head = nn.Linear(self.backbone.d_model, len(classes))
        self.conjoin = should_conjoin(config["model"]["conjoin"], self.backbone)
        self.metric = config.get("metric", ACCURACY)
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, not {self.metric!r}")
        self._epoch_predictions: list[tuple[Tensor, Tensor]] = []

    def forward(self, tokens: Tensor, attention_mask: Tensor, conjoin: bool = False,
                noise_level: Tensor | None = None) -> Tensor:
        """Class logits [B, C] of token ids [B, L] (or one-hot rows [B, L, V]); `noise_level` [B] reaches a
        time-conditioned backbone (a noisy-input classifier's)."""
        features = (conjoined_features(self.backbone, tokens, noise_level) if conjoin
                    else self.backbone.features(tokens, noise_level))
        return self.head(mean_pool(features.to(self.head.weight.dtype), attention_mask))

    def predict_proba(self, tokens: Tensor, attention_mask: Tensor) -> Tensor:
        return self(tokens, attention_mask, conjoin=self.conjoin).softmax(-1)

    def model_inputs(self, tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """What the network reads of a batch's tokens: here the tokens themselves at no noise level (a noisy-input
        classifier noises them first)."""
        return tokens, None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        generator = seeded_generator([self.config["seed"], self.global_step])
        batch = random_reverse_complement(batch, self.config["data"]["rc_augment"], generator)
        noise = seeded_generator([self.config["seed"], self.global_step, NOISE_STREAM], batch["tokens"].device)
        inputs, level = self.model_inputs(batch["tokens"], noise)
        logits = self(inputs, batch["attention_mask"], noise_level=level)
        loss = nn.functional.cross_entropy(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(-1) == batch["labels"]).float().mean())
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str, batch_idx: int) -> None:
        # Fixed noise per batch (for a noisy-input classifier), so validation moves only when the model does.
        inputs, level = self.model_inputs(batch["tokens"], seeded_generator([batch_idx], batch["tokens"].device))
        logits = self(inputs, batch["attention_mask"], conjoin=self.conjoin, noise_level=level)
        size = batch["labels"].numel()
        self.log(f"{stage}/loss", nn.functional.cross_entropy(logits, batch["labels"]), batch_size=size, sync_dist=True)
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log(f"{stage}/acc", accuracy, batch_size=size, prog_bar=True, sync_dist=True)
        if self.metric != ACCURACY:
            self._epoch_predictions.append((logits.argmax(-1), batch["labels"]))

    def _log_epoch_metric(self, stage: str) -> None:
        """The task's metric over the whole epoch's predictions (Matthews correlation and F1 are not means of
        per-batch values), gathered from every process under DDP."""
        if self.metric == ACCURACY or not self._epoch_predictions:
            return
        predictions, labels = (torch.cat(parts) for parts in zip(*self._epoch_predictions))
        self._epoch_predictions = []
        if self.trainer.world_size > 1:
            predictions, labels = self.all_gather(predictions).flatten(), self.all_gather(labels).flatten()
        value = METRICS[self.metric](predictions.cpu().numpy(), labels.cpu().numpy())
        self.log(logged_metric(stage, self.metric), value, prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._epoch_predictions = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metric("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metric("test")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def configure_optimizers(self):
        optim = self.config["optim"]
        optimizer = torch.optim.AdamW(self.parameters(), lr=optim["lr"], weight_decay=optim["weight_decay"])
        return fine_tuning_schedule(optimizer, self.trainer.estimated_stepping_batches, optim)

    @classmethod
    def check_stored(cls, stored: dict[str, Any], path: str | Path) -> None:
        """Refuse a checkpoint of the other kind of classifier, naming what it is for."""
        if "noise" in stored:
            raise CheckpointError(f"{path} is a noisy-input classifier (from mdlm-bio train-classifier), for "
                                  f"--noisy-classifier; this needs a classifier of clean sequences (mdlm-bio finetune)")

    def stored_settings(self) -> dict[str, Any]:
        """What a checkpoint keeps to rebuild this classifier: the constructor's arguments."""
        return {"config": self.config, "backbone_config": self.backbone_config, "classes": self.classes}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mdlm_bio_classifier"] = self.stored_settings()


Classifier = TypeVar("Classifier", bound=SequenceClassifier)


def load_classifier(path: str | Path, device: torch.device | str = "cpu",
                    kind: type[Classifier] = SequenceClassifier) -> Classifier:
    """A classifier checkpoint (`mdlm-bio finetune` or `train-classifier`) -> the model in eval mode; `kind` is
    the class the stored settings must rebuild."""
    payload = read_checkpoint(path, required=("mdlm_bio_classifier", "state_dict"), kind="classifier (from `mdlm-bio finetune`)")
    stored = payload["mdlm_bio_classifier"]
    kind.check_stored(stored, path)
    try:
        model = kind(**stored)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its weights or stored settings do not make a classifier ({first_line(error)})") from None
    return model.to(device).eval()

"""Sentence (pair) classification and regression on a text backbone's features: GLUE fine-tuning.

The backbone is any text backbone with per-position features: a Hugging Face encoder (pooled at its first token,
[CLS] or <s>, as BERT is fine-tuned, and given the padding mask and segment ids) or our DiT (mean-pooled over
the real tokens; it reads no padding mask, as in MDLM). A dropout and a linear head follow: classes by
cross-entropy, or one score by mean squared error (STS-B).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..backbones import build_backbone
from .classifier import mean_pool
from .module import fine_tuning_schedule

POOLINGS = ("auto", "first", "mean")


def sequence_features(backbone: nn.Module, tokens: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
    """Per-position features [B, L, D] of clean text (no noise level): an encoder is given the padding mask and
    the segment ids; the DiT returns its conditioning beside the features, which is dropped."""
    if getattr(backbone, "reads_attention_mask", False):
        return backbone.features(tokens, None, attention_mask, token_type_ids)
    features = backbone.features(tokens, None)
    return features[0] if isinstance(features, tuple) else features


def pooling_for(setting: str, backbone_config: dict[str, Any]) -> str:
    """`auto`: the first token for an encoder pretrained with one in front ([CLS]), the mean otherwise."""
    if setting not in POOLINGS:
        raise ValueError(f"model.pooling must be one of {POOLINGS}, not {setting!r}")
    if setting != "auto":
        return setting
    return "first" if backbone_config.get("architecture") == "hf-masked-lm" else "mean"


class TextClassifier(L.LightningModule):
    """Backbone + pooling + dropout + linear head over `num_labels` classes (1: a regression)."""

    def __init__(self, config: dict[str, Any], backbone_config: dict[str, Any], num_labels: int) -> None:
        super().__init__()
        self.config, self.backbone_config, self.num_labels = config, dict(backbone_config), num_labels
        self.backbone = build_backbone(self.backbone_config)
        self.pooling = pooling_for(config["model"]["pooling"], self.backbone_config)
        probe = torch.zeros((1, 2), dtype=torch.long)
        with torch.no_grad():
            width = sequence_features(self.backbone, probe, torch.ones_like(probe), probe).shape[-1]
        self.dropout = nn.Dropout(config["model"]["dropout"])
        self.head = nn.Linear(width, num_labels)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """[B, num_labels] logits, or [B] scores for a regression."""
        features = sequence_features(self.backbone, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        features = features.to(self.head.weight.dtype)
        pooled = features[:, 0] if self.pooling == "first" else mean_pool(features, batch["attention_mask"])
        out = self.head(self.dropout(pooled))
        return out[:, 0] if self.num_labels == 1 else out

    def loss(self, out: Tensor, labels: Tensor) -> Tensor:
        if self.num_labels == 1:
            return nn.functional.mse_loss(out.float(), labels.float())
        return nn.functional.cross_entropy(out.float(), labels.long())

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(self(batch), batch["label"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Predicted classes, or scores for a regression."""
        out = self(batch)
        return out.float() if self.num_labels == 1 else out.argmax(-1)

    def configure_optimizers(self):
        optim = self.config["optim"]
        exempt = {name for name, p in self.named_parameters() if p.ndim < 2 or "norm" in name.lower()}  # biases, norms
        groups = [[p for name, p in self.named_parameters() if (name in exempt) is skip] for skip in (False, True)]
        optimizer = torch.optim.AdamW([{"params": groups[0], "weight_decay": optim["weight_decay"]},
                                       {"params": groups[1], "weight_decay": 0.0}], lr=optim["lr"])
        return fine_tuning_schedule(optimizer, self.trainer.estimated_stepping_batches, optim)

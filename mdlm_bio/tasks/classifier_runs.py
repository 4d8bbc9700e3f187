"""One classifier run, shared by the fine-tuning sweeps (Genomic Benchmarks, the Nucleotide Transformer tasks, and
the noisy-input classifiers of guidance): its backbone, pretrained or from scratch, then training with the checkpoint
best on validation kept and the test split scored with it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from ..backbones import load_preset
from ..dna.tokenizer import BASE_IDS, COMPLEMENT_MAP
from ..models import load_model
from ..training.callbacks import StopOnNonFinite
from ..training.classifier import SequenceClassifier, logged_metric
from ..training.data.labelled import LabelledDataModule
from ..training.limits import check_training_memory
from ..training.trainer import build_trainer

ClassifierFactory = Callable[[dict[str, Any], dict[str, Any], list[str]], SequenceClassifier]
BEST_CHECKPOINT = "best.ckpt"


def pretrained_backbone(source: str | Path, trusted: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone settings, backbone weights) of a DNA model: an mdlm-bio run folder or .ckpt (EMA weights where
    trained with EMA), or a published Caduceus checkpoint (a local file or hf:kuleshov-group/caduceus-...)."""
    model = load_model(source, trusted=trusted).require_track("dna", "finetune")
    return dict(model.spec.backbone), model.network.backbone.state_dict()


def scratch_backbone(model: dict[str, Any]) -> dict[str, Any]:
    """The backbone trained from scratch: the preset with the run's overrides, on the DNA vocabulary."""
    overrides = [f"{key}={value}" for key, value in (model.get("overrides") or {}).items()]
    return {**load_preset(model["preset"], overrides), "complement_map": list(COMPLEMENT_MAP)}


def build_classifier(plain: dict[str, Any], init: tuple[dict[str, Any], dict[str, Any]] | None, classes: list[str],
                     make_classifier: ClassifierFactory) -> SequenceClassifier:
    """The classifier of a run's config: the pretrained backbone's architecture and weights (`init`), or the preset
    from scratch."""
    module = make_classifier(plain, init[0] if init else scratch_backbone(plain["model"]), classes)
    if init:
        module.backbone.load_state_dict(init[1])
    return module


@dataclass(frozen=True)
class FittedRun:
    test_metrics: dict[str, float]
    best_val_score: float
    checkpoint: Path


def fit_and_test(plain: dict[str, Any], run_dir: Path, module: SequenceClassifier, data: LabelledDataModule,
                 ignore_memory_limit: bool) -> FittedRun:
    """Train for the config's epochs, keep the checkpoint best on the classifier's validation metric, and score the
    test split with it. A step that would not fit in the device's free memory is refused first, unless
    `ignore_memory_limit`."""
    checkpoints = run_dir / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)  # left by an interrupted attempt at this run: start over
    best = ModelCheckpoint(dirpath=checkpoints, filename=BEST_CHECKPOINT.removesuffix(".ckpt"),
                           monitor=logged_metric("val", module.metric), mode="max")
    trainer = build_trainer(plain["trainer"], run_dir, [best, StopOnNonFinite()], [CSVLogger(run_dir, name="logs")],
                            plain["optim"]["grad_clip"], max_epochs=plain["epochs"])
    if not ignore_memory_limit:
        check_training_memory(
            module, trainer, data.batch_size, data.max_length,
            lambda probe: nn.functional.cross_entropy(module(probe, torch.ones_like(probe)), probe.new_zeros(len(probe))),
            token=BASE_IDS[0], extra_copies=0, smaller="lower data.batch_size or data.max_length")
    trainer.fit(module, datamodule=data)
    (metrics,) = trainer.test(module, datamodule=data, ckpt_path=best.best_model_path, verbose=False)
    return FittedRun({name: float(value) for name, value in metrics.items()}, float(best.best_model_score),
                     Path(best.best_model_path))

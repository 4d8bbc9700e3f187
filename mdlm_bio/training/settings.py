"""Typed settings of a training run: built once from a resolved run config at the edge, then read as fields.

`RunSettings` mirrors a training preset (configs/train). What a trained model keeps of it (`ModelSpec`, with the
objective) lives with the models, which are read back without this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backbones import load_preset
from ..backbones.registry import accepts_option, resolved_settings
from ..models.spec import ObjectiveSettings, from_mapping, schedule_as_mapping


@dataclass(frozen=True)
class DataSettings:
    """The `data` section. Which keys matter depends on the dataset (genome, labelled sequences or text)."""

    dataset: str
    window: int
    batch_size: int
    num_workers: int = 0
    data_dir: str | None = None
    # genomes (bundled, hg38, fasta)
    fasta: str | None = None
    valid_records: tuple[str, ...] = ()
    rc_augment: float = 0.0
    max_n_fraction: float = 0.5
    windows_per_epoch: int | None = None
    valid_windows: int | None = None
    # labelled sequences (genomic-benchmarks)
    benchmark: str | None = None
    download: bool = True
    mirror: str | None = None
    valid_fraction: float = 0.1
    label_dropout: float = 0.0
    classes: tuple[str, ...] | None = None
    # text
    corpus: str | None = None
    tokenizer: str | None = None
    wrap: bool = True
    cache_dir: str | None = None
    num_proc: int | None = None
    train_files: tuple[str, ...] | None = None
    valid_files: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelSettings:
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimSettings:
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_steps: int
    decay: str
    min_lr_ratio: float
    ema: float | None
    grad_clip: float | None


@dataclass(frozen=True)
class RunSettings:
    """A whole training run (a configs/train preset after overrides)."""

    run_dir: str
    seed: int
    checkpoint_every_n_steps: int
    data: DataSettings
    model: ModelSettings
    objective: ObjectiveSettings
    optim: OptimSettings
    trainer: dict[str, Any]
    init_from: str | None = None  # another model whose backbone weights the run starts from


@dataclass(frozen=True)
class TrainingSettings:
    """What a module needs only while it trains."""

    optim: OptimSettings
    seed: int
    max_steps: int
    label_dropout: float = 0.0


@dataclass(frozen=True)
class Vocabulary:
    """A track's token space, handed to the trainer by its data builder: the trainer knows no track's constants.
    `output_ids`: the ids the model may emit (None: all but the mask); `complement_map`: for DNA models."""

    size: int
    mask_id: int
    output_ids: tuple[int, ...] | None = None
    complement_map: tuple[int, ...] | None = None
    tokenizer: str | None = None


def resolve_backbone(preset: str, overrides: Sequence[str], vocabulary: Vocabulary,
                     classes: Sequence[str] = ()) -> dict[str, Any]:
    """A backbone preset with `key=value` overrides, on a vocabulary: its size, its complement map (for
    architectures that take one) and, for a class-conditional model, the number of classes."""
    backbone = resolved_settings({**load_preset(preset, list(overrides)), "vocab_size": vocabulary.size})
    if vocabulary.complement_map is not None and accepts_option(backbone["architecture"], "complement_map"):
        backbone["complement_map"] = list(vocabulary.complement_map)
    if classes:
        backbone["num_classes"] = len(classes)
    return backbone


def run_settings(config: Mapping[str, Any]) -> RunSettings:
    """The typed settings of a resolved run config (a plain dict)."""
    return from_mapping(RunSettings, {**config, "objective": schedule_as_mapping(config["objective"])})



"""Typed settings: built once from a resolved run config at the edge, then read as fields, not dict keys.

`RunSettings` mirrors a training preset (configs/train). `ModelSpec` is what a checkpoint keeps to describe its
model without any preset file: the resolved backbone settings, the objective, and the facts sampling needs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..backbones import load_preset
from ..backbones.registry import TYPE_NAMES, accepts_option, fits_kind
from ..diffusion import MaskedDiffusion, NoiseSchedule, make_schedule


class SettingsError(ValueError):
    """Settings whose keys or value types do not fit their section."""


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
class ObjectiveSettings:
    """`schedule` is {name, **parameters} (a bare name in the YAML means no parameters), e.g. {name: polynomial,
    k: 3}; the engine builds it with make_schedule."""

    kind: str
    schedule: dict[str, Any]
    sampling_eps: float
    antithetic: bool
    discrete_steps: int | None = None

    def noise_schedule(self) -> NoiseSchedule:
        parameters = dict(self.schedule)
        return make_schedule(parameters.pop("name"), **parameters)

    def engine(self, mask_id: int) -> MaskedDiffusion:
        return MaskedDiffusion(self.noise_schedule(), mask_id=mask_id, sampling_eps=self.sampling_eps,
                               antithetic=self.antithetic, discrete_steps=self.discrete_steps)


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


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint stores to describe its model: everything to rebuild and use it, no preset file needed."""

    backbone: dict[str, Any]  # resolved constructor settings, `architecture` included
    objective: ObjectiveSettings
    mask_id: int
    context: int  # the window (DNA) or block (text) length it was trained on
    track: str  # "dna" or "text"
    output_ids: tuple[int, ...] | None = None
    tokenizer: str | None = None
    classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> ModelSpec:
        return from_mapping(cls, stored, "model spec")


def resolve_backbone(preset: str, overrides: Sequence[str], vocabulary: Vocabulary,
                     classes: Sequence[str] = ()) -> dict[str, Any]:
    """A backbone preset with `key=value` overrides, on a vocabulary: its size, its complement map (for
    architectures that take one) and, for a class-conditional model, the number of classes."""
    backbone = {**load_preset(preset, list(overrides)), "vocab_size": vocabulary.size}
    if vocabulary.complement_map is not None and accepts_option(backbone["architecture"], "complement_map"):
        backbone["complement_map"] = list(vocabulary.complement_map)
    if classes:
        backbone["num_classes"] = len(classes)
    return backbone


Settings = TypeVar("Settings")


def from_mapping(kind: type[Settings], values: Any, where: str = "") -> Settings:
    """Build a settings dataclass from a plain mapping, checking keys and value types; errors name the key."""
    if not isinstance(values, Mapping):
        raise SettingsError(f"{where or kind.__name__} must be a mapping of keys to values, not {values!r}")
    hints = typing.get_type_hints(kind)
    names = {spec.name for spec in dataclasses.fields(kind)}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(values) - names)
    if unknown:
        raise SettingsError(f"unknown config key {prefix}{unknown[0]}")
    arguments = {}
    for spec in dataclasses.fields(kind):
        if spec.name in values:
            arguments[spec.name] = _convert(values[spec.name], hints[spec.name], f"{prefix}{spec.name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise SettingsError(f"{prefix}{spec.name} is required")
    return kind(**arguments)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _convert(value, inner, key)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{key} must be a list, not {value!r}")
        return tuple(_convert(item, arguments[0], f"{key}[{index}]") for index, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SettingsError(f"{key} must be a mapping, not {value!r}")
        return dict(value)
    if not fits_kind(value, hint):
        raise SettingsError(f"{key} must be {TYPE_NAMES[hint]}, not {value!r}")
    return float(value) if hint is float else value


def _schedule_as_mapping(objective: Mapping[str, Any]) -> dict[str, Any]:
    """A bare schedule name (the YAML's and older checkpoints' form) becomes {name: ...}."""
    values = dict(objective)
    if isinstance(values.get("schedule"), str):
        values["schedule"] = {"name": values["schedule"]}
    return values


def run_settings(config: Mapping[str, Any]) -> RunSettings:
    """The typed settings of a resolved run config (a plain dict)."""
    return from_mapping(RunSettings, {**config, "objective": _schedule_as_mapping(config["objective"])})


def objective_settings(objective: Mapping[str, Any]) -> ObjectiveSettings:
    """An objective section as a run config or an older checkpoint holds it."""
    return from_mapping(ObjectiveSettings, _schedule_as_mapping(objective), "objective")

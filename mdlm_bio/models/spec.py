"""What a checkpoint stores to describe its model (ModelSpec), and the typed-settings builder it is read with.

Typed settings are built once from plain data at the edge (a YAML run config, a checkpoint's stored dict), checking
keys and value types, and then read as fields, not dict keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..backbones.registry import TYPE_NAMES, fits_kind
from ..diffusion.block_diffusion import BlockDiffusion
from ..diffusion.engine import MaskedDiffusion
from ..diffusion.schedules import NoiseSchedule, make_schedule
from ..diffusion.uniform import UniformDiffusion

BLOCK_DIFFUSION = "bd3"
MASKED_LM = "mlm"
UNIFORM = "udlm"


class SettingsError(ValueError):
    """Settings whose keys or value types do not fit their section."""


@dataclass(frozen=True)
class ObjectiveSettings:
    """`kind`: mdlm (masked diffusion), ar (the autoregressive baseline), bd3 (block diffusion, with
    `block_size` tokens per block and, to train on, the clipped schedule `clip` = (beta, omega), or the one
    validation finds among intervals of the `clip_search` widths) or mlm (masked language modelling, BERT's
    objective: a fixed fraction `mask_rate` masked, validated and used as a masked diffusion model) or udlm
    (uniform-state diffusion: noise draws any of the states the model may emit). `schedule` is
    {name, **parameters} (a bare name in the YAML means no parameters), e.g. {name: polynomial, k: 3}; the engine
    builds it with make_schedule."""

    kind: str
    schedule: dict[str, Any]
    sampling_eps: float
    antithetic: bool
    discrete_steps: int | None = None
    block_size: int | None = None
    clip: tuple[float, float] | None = None
    clip_search: tuple[float, ...] | None = None  # widths of the (beta, omega) intervals validation compares
    mask_rate: float | None = None  # mlm: the fraction of positions masked in training

    def noise_schedule(self) -> NoiseSchedule:
        parameters = dict(self.schedule)
        return make_schedule(parameters.pop("name"), **parameters)

    def engine(self, mask_id: int, states: tuple[int, ...]) -> MaskedDiffusion | BlockDiffusion | UniformDiffusion:
        """The engine of this objective; `states` are the tokens a uniform-noise process moves among."""
        if self.kind == UNIFORM:
            return UniformDiffusion(self.noise_schedule(), states, sampling_eps=self.sampling_eps,
                                    antithetic=self.antithetic, discrete_steps=self.discrete_steps)
        if self.kind == BLOCK_DIFFUSION:
            return BlockDiffusion(self.noise_schedule(), mask_id=mask_id, block_size=self.block_size,
                                  sampling_eps=self.sampling_eps, antithetic=self.antithetic, clip=self.clip)
        return MaskedDiffusion(self.noise_schedule(), mask_id=mask_id, sampling_eps=self.sampling_eps,
                               antithetic=self.antithetic, discrete_steps=self.discrete_steps)


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


def schedule_as_mapping(objective: Mapping[str, Any]) -> dict[str, Any]:
    """A bare schedule name (the YAML's and older checkpoints' form) becomes {name: ...}."""
    values = dict(objective)
    if isinstance(values.get("schedule"), str):
        values["schedule"] = {"name": values["schedule"]}
    return values


def objective_settings(objective: Mapping[str, Any]) -> ObjectiveSettings:
    """An objective section as a run config or an older checkpoint holds it."""
    return from_mapping(ObjectiveSettings, schedule_as_mapping(objective), "objective")

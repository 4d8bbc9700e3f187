"""What a sampler is: a small frozen settings object that draws samples, and whose settings are its options.

Each field of a sampler is one option, declared once with `option(default, help)`; its type comes from the
annotation (`int`, `float`, `bool`, a `Literal[...]` of choices, or any of these `| None`). The command line
builds `--sampler` and every sampler's flags from these declarations (mdlm_bio/cli/sampling.py), and the object
checks its values when it is built, so a task that holds one holds a valid one.

This module and the built-in samplers' declarations import no torch (their `sample` reaches the algorithms in
samplers.py when it runs), so `mdlm-bio ... --help` stays quick.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .denoiser import Denoiser, SampleOutput
    from .schedules import NoiseSchedule

SCALARS = (int, float, bool, str)


def option(default: Any, help: str) -> Any:
    """A sampler setting with its default and its help text (shown by `mdlm-bio ... --help`)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class OptionSpec:
    """One declared option, read off a sampler's field: what the command line needs to offer it."""

    name: str
    kind: type  # int, float, bool or str
    choices: tuple[Any, ...] | None
    optional: bool  # None is allowed (and means "not set")
    default: Any
    help: str

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.choices is not None:
            return value in self.choices
        if self.kind is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.kind)

    @property
    def described_type(self) -> str:
        text = " or ".join(repr(choice) for choice in self.choices) if self.choices else self.kind.__name__
        return f"{text} or None" if self.optional else text


def _spec(field: dataclasses.Field, hint: Any, owner: str) -> OptionSpec:
    arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
    optional = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)
    inner = arguments[0] if optional and len(arguments) == 1 else hint
    choices = None
    if typing.get_origin(inner) is Literal:
        choices = typing.get_args(inner)
        inner = type(choices[0])
    if inner not in SCALARS or (optional and len(arguments) != 1):
        raise TypeError(f"sampler {owner} option {field.name!r}: its type must be int, float, bool, str or a Literal, "
                        f"optionally | None; got {hint}")
    if "help" not in field.metadata:
        raise TypeError(f"sampler {owner} option {field.name!r}: declare it with option(default, help)")
    return OptionSpec(field.name, inner, choices, optional, field.default, field.metadata["help"])


@dataclass(frozen=True)
class Sampler:
    """Base of every sampler. A subclass is a frozen dataclass whose fields are its options (see `option`), with
    `name` (how the registry and the command line know it) and `sample`."""

    name: ClassVar[str] = ""
    process: ClassVar[str] = "masked"  # the noise it reverses: masked (mdlm, bd3) or uniform (udlm)

    def __post_init__(self) -> None:
        for spec in self.option_specs():
            value = getattr(self, spec.name)
            if not spec.accepts(value):
                raise ValueError(f"{self.name} sampler: {spec.name} must be {spec.described_type}, not {value!r}")

    @classmethod
    def option_specs(cls) -> tuple[OptionSpec, ...]:
        hints = typing.get_type_hints(cls)
        return tuple(_spec(field, hints[field.name], cls.name or cls.__name__) for field in dataclasses.fields(cls))

    def sample(self, denoiser: Denoiser, z_init: Tensor, schedule: NoiseSchedule, mask_id: int,
               generator: int | torch.Generator | None = None) -> SampleOutput:
        """Fill the masked positions of `z_init` [B, L] (a window of at most the model's context)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample()")

    def describe(self) -> str:
        """How samples were drawn, as key=value words for FASTA headers and result rows: the name, then every
        option that is set (not None or False), in declaration order."""
        return " ".join([f"sampler={self.name}"] + [_word(name, value) for name, value in self.settings().items()])

    def settings(self) -> dict[str, Any]:
        """The options that are set, by name."""
        return {spec.name: getattr(self, spec.name) for spec in self.option_specs()
                if getattr(self, spec.name) not in (None, False)}


def _word(name: str, value: Any) -> str:
    if value is True:
        return name
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def check_top_p(top_p: float | None) -> None:
    """Nucleus sampling keeps a probability mass in (0, 1]."""
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1]; got {top_p}")


def check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")

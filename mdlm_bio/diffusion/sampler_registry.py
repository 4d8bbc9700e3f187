"""The samplers by name: what `--sampler` offers, and how a name and options become a sampler object.

A name maps to a sampler class and, for an alias, the settings it presets (`cached` is the ancestral sampler with
its cache on). Adding a sampler is one file with its class plus one `register` line, here for the package's own
or anywhere for yours (README, "Adding a sampler"); the command line picks it up with its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ancestral_sampler import AncestralSampler
from .confidence_sampler import ConfidenceSampler
from .first_hitting_sampler import FirstHittingSampler
from .sampler import Sampler
from .uniform_sampler import UniformAncestralSampler


@dataclass(frozen=True)
class RegisteredSampler:
    """A sampler class under one name, with the settings that name presets."""

    kind: type[Sampler]
    preset: dict[str, Any] = field(default_factory=dict)

    def build(self, options: dict[str, Any]) -> Sampler:
        return self.kind(**{**self.preset, **options})


SAMPLERS: dict[str, RegisteredSampler] = {}


def register(kind: type[Sampler], name: str | None = None, **preset: Any) -> None:
    """Offer `kind` under `name` (default: its own `name`), with `preset` settings for an alias."""
    name = name or kind.name
    if not name:
        raise ValueError(f"{kind.__name__} has no name: set its `name` class variable or pass one")
    fields = {spec.name for spec in kind.option_specs()}  # also checks that every option is declared usably
    unknown = sorted(set(preset) - fields)
    if unknown:
        raise ValueError(f"sampler {name!r}: {unknown} are not options of {kind.__name__}")
    SAMPLERS[name] = RegisteredSampler(kind, preset)


def make_sampler(name: str, **options: Any) -> Sampler:
    """The sampler registered as `name` with `options` (the others take its defaults); an option it does not have
    is an error naming the samplers that do."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    entry = SAMPLERS[name]
    own = {spec.name for spec in entry.kind.option_specs()}
    stray = [key for key in options if key not in own]
    if stray:
        owners = [other for other, registered in SAMPLERS.items()
                  if stray[0] in {spec.name for spec in registered.kind.option_specs()}]
        whose = f"an option of --sampler {', '.join(owners)}" if owners else "not an option of any sampler"
        raise ValueError(f"--{stray[0].replace('_', '-')}: {whose}, not of {name}")
    return entry.build(options)


def samplers_for(process: str) -> list[str]:
    """The registered names whose sampler reverses `process` noise (masked or uniform)."""
    return sorted(name for name, registered in SAMPLERS.items() if registered.kind.process == process)


register(AncestralSampler)
register(AncestralSampler, "cached", cache=True)
register(AncestralSampler, "remdm", remask="loop")
register(FirstHittingSampler)
register(ConfidenceSampler)
register(UniformAncestralSampler)

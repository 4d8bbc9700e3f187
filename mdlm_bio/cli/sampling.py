"""`--sampler` and every sampler's own options, built from the sampler registry (diffusion/sampler_registry.py).

Each option a registered sampler declares becomes one flag, with its type, choices and help from the declaration;
a flag several samplers share (`--steps`, `--top-p`) is offered once. After parsing, the flags given become one
sampler object: an option of a sampler other than the chosen one is an error, and the object checks its values.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..diffusion.sampler import OptionSpec, Sampler
from ..diffusion.sampler_registry import SAMPLERS, make_sampler

SAMPLER = "sampler"


@dataclass(frozen=True)
class SamplerDefault:
    """A command's sampler when `--sampler` is not given, and option values it prefers for any sampler that has
    them (eval-genppl: 1000 steps, MDLM's setting for generative perplexity)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return " ".join([self.name, *(f"{key}={value}" for key, value in self.options.items())])


def declared_options() -> dict[str, dict[str, OptionSpec]]:
    """option name -> {sampler name: its declaration}, over the registry as it is now."""
    options: dict[str, dict[str, OptionSpec]] = {}
    for name, registered in SAMPLERS.items():
        for spec in registered.kind.option_specs():
            options.setdefault(spec.name, {})[name] = spec
    return options


def add_sampler_options(parser: argparse.ArgumentParser, default: SamplerDefault) -> None:
    group = parser.add_argument_group("sampling", "--sampler chooses how to draw; the options below belong to the "
                                      "samplers named in their help, and another sampler's option is an error")
    group.add_argument("--sampler", dest=SAMPLER, choices=list(SAMPLERS), default=None,
                       help=f"{'; '.join(_summaries())} (default: {default.describe()})")
    for name, owners in declared_options().items():
        kinds = {(spec.kind, spec.choices) for spec in owners.values()}
        if len(kinds) > 1:
            raise TypeError(f"samplers {sorted(owners)} declare option {name!r} with different types")
        spec = next(iter(owners.values()))
        flag = "--" + name.replace("_", "-")
        extra: dict[str, Any] = ({"action": "store_const", "const": True} if spec.kind is bool
                                 else {"type": spec.kind, "choices": spec.choices})
        try:
            group.add_argument(flag, dest=name, default=None, help=_help(owners, default.options.get(name)), **extra)
        except argparse.ArgumentError:
            raise TypeError(f"sampler option {flag} ({', '.join(owners)}) clashes with an option of "
                            f"{parser.prog}; rename it") from None


def build_sampler(options: dict[str, Any], default: SamplerDefault) -> Sampler:
    """Take `--sampler` and the sampler flags out of parsed `options` and make the sampler they describe."""
    chosen = options.pop(SAMPLER)
    given = {name: value for name in declared_options() if (value := options.pop(name)) is not None}
    if chosen is None:
        chosen = default.name
    own = {spec.name for spec in SAMPLERS[chosen].kind.option_specs()}
    preferred = {key: value for key, value in default.options.items() if key in own}
    return make_sampler(chosen, **{**preferred, **given})


def _summaries() -> list[str]:
    """One line per name: the sampler's first docstring sentence, or for an alias the settings it presets."""
    return [f"{name}: {registered.kind.name} with {', '.join(f'{k}={v}' for k, v in registered.preset.items())}"
            if registered.preset else f"{name}: {_first_sentence(registered.kind.__doc__)}"
            for name, registered in SAMPLERS.items()]


def _first_sentence(text: str | None) -> str:
    sentence = (text or "").strip().split(". ")[0].split("\n\n")[0].replace("\n", " ").rstrip(".")
    return sentence[:1].lower() + sentence[1:] if sentence[1:2].islower() else sentence


def _help(owners: dict[str, OptionSpec], preferred: Any) -> str:
    """One help text per declaration (samplers of one class share it), with their defaults."""
    by_text: dict[tuple[str, Any], list[str]] = {}
    for sampler, spec in owners.items():
        by_text.setdefault((spec.help, spec.default), []).append(sampler)
    parts = []
    for (text, value), samplers in by_text.items():
        default = "" if value in (None, False) else f" (default: {value})"
        parts.append(f"{text}{default}" if len(by_text) == 1 else f"{', '.join(samplers)}: {text}{default}")
    here = "" if preferred is None else f"; this command's default: {preferred}"
    return f"[{', '.join(owners)}] " + "; ".join(parts) + here

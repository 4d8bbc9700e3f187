"""Build backbones from config mappings, load the YAML presets, and describe model sizes."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from .caduceus import Caduceus
from .dit import DiT
from .hf_masked_lm import HuggingFaceMaskedLM
from .mamba import Mamba

ARCHITECTURES: dict[str, type[nn.Module]] = {"dit": DiT, "caduceus": Caduceus, "hf-masked-lm": HuggingFaceMaskedLM}
# Caduceus passes its extra keyword arguments on to every Mamba mixer.
_FORWARDED_KWARGS: dict[str, type[nn.Module]] = {"caduceus": Mamba}
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
              dict: "a mapping"}
_ANNOTATED_KINDS = {"bool": bool, "int": int, "float": float, "str": str}


def kind_of(value: Any) -> type | None:
    """The kind of a setting's value: bool, int, float, str, list or dict (OmegaConf containers included)."""
    for kind in (bool, int, float, str):  # bool first: it is an int to isinstance
        if isinstance(value, kind):
            return kind
    if isinstance(value, (list, ListConfig)):
        return list
    if isinstance(value, (dict, DictConfig)):
        return dict
    return None


def fits_kind(value: Any, expected: type) -> bool:
    """Whether a value may stand where `expected` is wanted: an int for a float, and anything for a string."""
    actual = kind_of(value)
    return expected is str or actual is expected or (expected is float and actual is int)


def _option_kinds(architecture: str) -> dict[str, type]:
    """The kind of each scalar constructor option, from its annotation or its default."""
    kinds: dict[str, type] = {}
    for constructor in (ARCHITECTURES[architecture], _FORWARDED_KWARGS.get(architecture)):
        for name, parameter in inspect.signature(constructor).parameters.items() if constructor else ():
            default = None if parameter.default is inspect.Parameter.empty else parameter.default
            kind = _ANNOTATED_KINDS.get(parameter.annotation) or kind_of(default)
            if kind in _ANNOTATED_KINDS.values():
                kinds.setdefault(name, kind)
    return kinds


def _accepted_keys(architecture: str) -> set[str]:
    keys = set(inspect.signature(ARCHITECTURES[architecture]).parameters) - {"mamba_kwargs"}
    forwarded = _FORWARDED_KWARGS.get(architecture)
    if forwarded is not None:
        keys |= set(inspect.signature(forwarded).parameters) - {"d_model"}
    return keys


def accepts_option(architecture: str, key: str) -> bool:
    """Whether an architecture's constructor (or what it forwards to) takes `key`."""
    return key in _accepted_keys(architecture)


def build_backbone(config: Mapping[str, Any]) -> nn.Module:
    """`{"architecture": "dit" | "caduceus", **constructor arguments}` -> module, with unknown keys named."""
    options = dict(config)
    architecture = options.pop("architecture", None)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown backbone architecture {architecture!r}; choose from {sorted(ARCHITECTURES)}")
    unknown = sorted(set(options) - _accepted_keys(architecture))
    if unknown:
        raise ValueError(
            f"unknown {architecture} option(s) {unknown}; valid options are {sorted(_accepted_keys(architecture))}"
        )
    kinds = _option_kinds(architecture)
    for key, value in options.items():
        if key in kinds and value is not None and not fits_kind(value, kinds[key]):
            raise ValueError(f"{architecture} option {key} must be {TYPE_NAMES[kinds[key]]}, not {value!r}")
    return ARCHITECTURES[architecture](**options)


def resolved_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A backbone's settings with what its architecture reads from elsewhere filled in (a Hugging Face
    encoder's config), so the stored settings rebuild it alone."""
    resolve = getattr(ARCHITECTURES.get(config.get("architecture")), "resolve_settings", None)
    return dict(config) if resolve is None else resolve(config)


def preset_names() -> list[str]:
    folder = resources.files("mdlm_bio.configs") / "backbone"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_preset(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A preset from configs/backbone/NAME.yaml with `key=value` overrides applied."""
    if name not in preset_names():
        raise ValueError(f"unknown backbone preset {name!r}; choose from {preset_names()}")
    config = OmegaConf.create((resources.files("mdlm_bio.configs") / "backbone" / f"{name}.yaml").read_text())
    config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters; tied weights are counted once."""
    return sum(p.numel() for p in module.parameters())


def describe(model: nn.Module) -> str:
    """A table of parameter counts by top-level submodule, then the total and its fp32 size."""
    rows, seen = [], set()
    for name, child in model.named_children():
        fresh = [p for p in child.parameters() if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        if fresh:
            rows.append((name, sum(p.numel() for p in fresh)))
    rows += [(name, p.numel()) for name, p in model.named_parameters(recurse=False)]
    total = count_parameters(model)
    width = max(len(name) for name, _ in rows + [("total", 0)])
    lines = [f"{type(model).__name__}"]
    lines += [f"  {name:<{width}}  {count:>13,}" for name, count in rows]
    lines.append(f"  {'total':<{width}}  {total:>13,}  ({total * 4 / 2**20:,.1f} MiB in fp32)")
    return "\n".join(lines)

"""Load a trained run (or one checkpoint file) back into a model that owns what sampling and scoring need.

A checkpoint describes its model itself (format 2: a ModelSpec with the resolved backbone and objective), so
editing or renaming a preset file changes nothing already trained. Format 1 checkpoints (a run config naming a
backbone preset, before 2026-11-30) still load: their backbone is read from the preset as it was then done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..backbones import load_preset
from ..backbones.pretrained import CheckpointError, first_line
from ..diffusion import ConfidenceRule, NoiseSchedule, Remasking, SamplingPlan
from ..diffusion.generation import SamplerName
from ..diffusion.samplers import Denoiser
from .checkpoint_io import read_checkpoint
from .module import CHECKPOINT_FORMAT, DiffusionLM
from .settings import ModelSpec, objective_settings

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that is not ours, or holds a model this command cannot use."""


@dataclass
class TrainedModel:
    """A loaded model and the facts that belong to it: its mask id, context, schedule and denoiser."""

    module: DiffusionLM
    path: Path
    config: dict[str, Any] | None = None  # the run config it was trained with, when the checkpoint has it

    @property
    def spec(self) -> ModelSpec:
        return self.module.spec

    @property
    def mask_id(self) -> int:
        return self.spec.mask_id

    @property
    def context(self) -> int:
        """The window (DNA) or block (text) length the model was trained on."""
        return self.spec.context

    @property
    def schedule(self) -> NoiseSchedule:
        return self.module.engine.schedule

    @property
    def denoiser(self) -> Denoiser:
        return self.module.denoiser

    def plan(self, sampler: SamplerName, steps: int, top_p: float | None = None, remasking: Remasking | None = None,
             confidence: ConfidenceRule | None = None) -> SamplingPlan:
        """How to sample from this model with a given sampler: its own context and mask id."""
        return SamplingPlan(sampler, steps, self.context, self.mask_id, top_p, remasking, confidence)

    @property
    def classes(self) -> list[str]:
        """Class names of a class-conditional model (empty for an unconditional one)."""
        return list(self.spec.classes)

    def class_index(self, name: str) -> int:
        """A class given by name (or by its index, as a string) -> its label index."""
        if not self.classes:
            raise ValueError(f"{self.path} holds an unconditional model; --class needs one trained on labelled data "
                             f"(mdlm-bio train conditional)")
        if name in self.classes:
            return self.classes.index(name)
        if name.isdigit() and int(name) < len(self.classes):
            return int(name)
        raise ValueError(f"unknown class {name!r}; this model knows {self.classes}")

    @property
    def description(self) -> str:
        preset = (self.config or {}).get("model", {}).get("preset", self.spec.backbone["architecture"])
        return f"{preset} {self.spec.objective.kind} ({self.path})"


def checkpoint_path(spec: str | Path) -> Path:
    path = Path(spec)
    if path.is_dir():
        path = path / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `mdlm-bio train demo` or pass a .ckpt file")
    return path


def _require(payload: Mapping[str, Any], keys: tuple[str, ...], path: Path | str) -> None:
    missing = [key for key in keys if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: not an mdlm-bio training checkpoint, or an incomplete one: it has no {missing}")


def model_spec_of(payload: Mapping[str, Any], path: Path | str) -> ModelSpec:
    """The ModelSpec of a training checkpoint of any format."""
    if payload.get("mdlm_bio_format") == CHECKPOINT_FORMAT:
        _require(payload, ("mdlm_bio_model",), path)
        return ModelSpec.from_dict(payload["mdlm_bio_model"])
    _require(payload, ("mdlm_bio_config", "mdlm_bio_mask_id"), path)
    return _format_1_spec(payload)


def _format_1_spec(payload: Mapping[str, Any]) -> ModelSpec:
    """Format 1 kept the run config (backbone = preset + overrides), the mask id and the output ids. The preset is
    read as format 1 always did; the complement map, which presets no longer carry, comes from the weights."""
    config = payload["mdlm_bio_config"]
    model, data = config["model"], config["data"]
    backbone = load_preset(model["preset"], [f"{key}={value}" for key, value in (model.get("overrides") or {}).items()])
    complement = payload.get("state_dict", {}).get("backbone.complement_map")
    if complement is not None:
        backbone["complement_map"] = complement.tolist()
    output_ids = payload.get("mdlm_bio_output_ids")
    return ModelSpec(
        backbone=backbone, objective=objective_settings(config["objective"]), mask_id=int(payload["mdlm_bio_mask_id"]),
        context=int(data["window"]), track="text" if data.get("dataset") == "text" else "dna",
        output_ids=None if output_ids is None else tuple(output_ids), tokenizer=data.get("tokenizer"),
        classes=tuple(data.get("classes") or ()),
    )


def is_mdlm_bio_checkpoint(path: Path) -> bool:
    """Ours hold only tensors and plain data with a model description; anything else (a published checkpoint,
    a Lightning file that pickles objects) is left to the importers, which say what they need."""
    if path.suffix != ".ckpt" or not path.is_file():
        return False
    try:
        payload = read_checkpoint(path, verify=False, mmap=True)
    except CheckpointError:
        return False
    return "mdlm_bio_model" in payload or "mdlm_bio_config" in payload


def load_trained(spec: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """A run folder (its checkpoints/last.ckpt) or a .ckpt file -> the model in eval mode (EMA weights if used)."""
    path = checkpoint_path(spec)
    payload = read_checkpoint(path, required=("state_dict",))
    try:
        module = DiffusionLM(model_spec_of(payload, path))
        module.load_state_dict(payload["state_dict"])
    except CheckpointError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointMismatchError(f"{path}: its weights or stored model do not make a model ({first_line(error)})") from None
    return TrainedModel(module.to(device).eval(), path, payload.get("mdlm_bio_config"))


def require_dna_model(model: TrainedModel, command: str, diffusion_only: str | None = None) -> None:
    """A DNA command needs a DNA model; `diffusion_only` (why) refuses an autoregressive one."""
    if model.spec.track != "dna":
        raise CheckpointMismatchError(f"{model.path} holds a {model.spec.track} model; DNA commands need a DNA model")
    if diffusion_only and model.spec.objective.kind != "mdlm":
        raise CheckpointMismatchError(
            f"{model.path} holds an autoregressive model; {command} needs a masked-diffusion (mdlm) model: "
            f"{diffusion_only}")

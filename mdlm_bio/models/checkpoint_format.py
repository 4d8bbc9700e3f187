"""The checkpoint file format: what an mdlm-bio checkpoint holds, its checksums, and reading it back.

A checkpoint describes its model itself (format 2: a ModelSpec with the resolved backbone and objective), so
editing or renaming a preset file changes nothing already trained. Format 1 checkpoints (a run config naming a
backbone preset, before 2026-11-30) still load: their backbone is read from the preset as it was then done.
Reading needs torch alone (`torch.load(weights_only=True)`: tensors and plain data, no code runs); training
writes the same format through Lightning (training/checkpoint_io.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..backbones import load_preset
from ..backbones.pretrained import read_payload
from ..errors import CheckpointError
from .spec import ModelSpec, objective_settings

CHECKPOINT_FORMAT = 2  # 1: the run config only (backbone as preset + overrides); 2: a ModelSpec beside it

# The weights a checkpoint holds: what sampling and scoring use (the EMA average where trained with EMA), and the
# raw weights a resumed run continues from.
WEIGHT_KEYS = ("state_dict", "current_model_state")
CHECKSUMS = "mdlm_bio_checksums"
# What describes the model besides its weights (config, mask id, classes): entries named mdlm_bio_*.
SETTINGS_PREFIX = "mdlm_bio_"


class NonFiniteWeightsError(CheckpointError):
    """Weights with nan or inf: what a diverged run leaves."""


def weights_checksum(weights: Mapping[str, Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def settings_checksum(checkpoint: Mapping[str, Any]) -> str:
    """SHA-256 of the mdlm_bio_* entries (plain data), written as canonical JSON."""
    settings = {key: value for key, value in checkpoint.items() if key.startswith(SETTINGS_PREFIX) and key != CHECKSUMS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode()).hexdigest()


def checksums(checkpoint: Mapping[str, Any], path: Path | str) -> dict[str, str]:
    """One checksum per set of weights, and one of the settings that say what model they are."""
    found = {key: weights_checksum(weights) for key, weights in weight_sets(checkpoint, path).items()}
    return {**found, "settings": settings_checksum(checkpoint)}


def non_finite_names(weights: Mapping[str, Tensor]) -> list[str]:
    return [name for name, tensor in weights.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def weight_sets(checkpoint: Mapping[str, Any], path: Path | str) -> dict[str, Mapping[str, Tensor]]:
    found = {key: checkpoint[key] for key in WEIGHT_KEYS if key in checkpoint}
    for key, weights in found.items():
        if not isinstance(weights, Mapping) or not all(isinstance(value, Tensor) for value in weights.values()):
            raise CheckpointError(f"{path}: its {key!r} is not a mapping of names to tensors; not an mdlm-bio checkpoint")
    return found


def check_weights(checkpoint: Mapping[str, Any], path: Path | str) -> None:
    """The weights and settings match the checksums written with them (where there are any), and the weights are
    all finite."""
    stored = checkpoint.get(CHECKSUMS) or {}
    if "settings" in stored and settings_checksum(checkpoint) != stored["settings"]:
        raise CheckpointError(f"{path}: its stored settings do not match the checksum saved with them, so the file was "
                              f"damaged or changed after it was written; restore a good copy or retrain")
    for key, weights in weight_sets(checkpoint, path).items():
        if key in stored and weights_checksum(weights) != stored[key]:
            raise CheckpointError(f"{path}: the weights in {key!r} do not match the checksum saved with them, so the file "
                                  f"was damaged or changed after it was written; restore a good copy or retrain")
        bad = non_finite_names(weights)
        if bad:
            raise NonFiniteWeightsError(
                f"{path}: {len(bad)} of {len(weights)} weight tensors in {key!r} hold nan or inf (e.g. {bad[0]}): the run "
                f"diverged before this checkpoint was written; retrain with a lower optim.lr")


def read_checkpoint(
    path: Path | str,
    required: Sequence[str] = (),
    kind: str = "training",
    map_location: Any = "cpu",
    verify: bool = True,
    mmap: bool = False,
) -> dict[str, Any]:
    """Load an mdlm-bio checkpoint with tensors and plain data only (no code runs), check it has the `required`
    keys and, with `verify`, that its weights are intact and finite; every failure is a CheckpointError naming
    the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = read_payload(path, kind=f"an mdlm-bio {kind} checkpoint", map_location=map_location, mmap=mmap)
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: not an mdlm-bio {kind} checkpoint, or an incomplete one: it has no {missing}")
    if verify:
        check_weights(payload, path)
    return payload


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

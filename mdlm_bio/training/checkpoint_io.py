"""Checkpoint files: written atomically, with a checksum of their weights and never with non-finite weights, and
read back with errors that say which file, what is wrong and what to do, instead of a pickle or zip traceback."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from ..backbones.pretrained import CheckpointError, first_line

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
    found = {key: weights_checksum(weights) for key, weights in _weight_sets(checkpoint, path).items()}
    return {**found, "settings": settings_checksum(checkpoint)}


def non_finite_names(weights: Mapping[str, Tensor]) -> list[str]:
    return [name for name, tensor in weights.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def _weight_sets(checkpoint: Mapping[str, Any], path: Path | str) -> dict[str, Mapping[str, Tensor]]:
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
    for key, weights in _weight_sets(checkpoint, path).items():
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
    """Load a checkpoint with tensors and plain data only (no code runs), check it has the `required` keys and,
    with `verify`, that its weights are intact and finite; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            raise CheckpointError(f"{path}: cannot be read as a checkpoint; the file is damaged (its pickled index "
                                  f"does not parse). Restore a good copy") from None
        raise CheckpointError(f"{path}: holds Python objects besides tensors and plain data, so mdlm-bio did not write "
                              f"it (ours hold only those); give an mdlm-bio {kind} checkpoint") from None
    except Exception as error:  # zip, EOF, storage and other errors of a truncated or damaged file
        reason = first_line(error).split(". ")[0]
        raise CheckpointError(f"{path}: cannot be read as a checkpoint; the file is truncated or damaged ({reason}). "
                              f"Restore a good copy; for a run's last.ckpt, copy the newest step=N.ckpt beside it "
                              f"over it to resume from there") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: holds a {type(payload).__name__}, not an mdlm-bio {kind} checkpoint")
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: not an mdlm-bio {kind} checkpoint, or an incomplete one: it has no {missing}")
    if verify:
        check_weights(payload, path)
    return payload


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, then renamed, so a crash never leaves a torn last.ckpt; with
    checksums of their weights; and refused when the weights are not finite, so a diverged run never replaces a
    good checkpoint. Reading (Lightning's resume) goes through read_checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        weights = _weight_sets(checkpoint, path)
        for key, tensors in weights.items():
            bad = non_finite_names(tensors)
            if bad:
                raise NonFiniteWeightsError(f"refusing to write {path}: {len(bad)} weight tensors in {key!r} hold nan or "
                                            f"inf (e.g. {bad[0]}); the checkpoints already written are kept")
        checkpoint[CHECKSUMS] = checksums(checkpoint, path)
        temporary = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, temporary, storage_options)
        os.replace(temporary, path)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return read_checkpoint(path, map_location=map_location)

"""Checkpoints written by training: atomically, with checksums of their weights, and never with non-finite
weights. The format and its reading live in models/checkpoint_format.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..models.checkpoint_format import CHECKSUMS, NonFiniteWeightsError, checksums, non_finite_names, read_checkpoint, weight_sets


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, then renamed, so a crash never leaves a torn last.ckpt; with
    checksums of their weights; and refused when the weights are not finite, so a diverged run never replaces a
    good checkpoint. Reading (Lightning's resume) goes through read_checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        weights = weight_sets(checkpoint, path)
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

"""Trained models: one handle (`load_model(source)` -> `Model`) for our checkpoints and published ones, of
every kind, with what sampling and scoring need.

`load_model` imports torch and the backbones when it is called, not when this package is imported, and reports a
missing local checkpoint before it does, so a command checks its arguments and inputs before paying for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..sources import is_hub_name, local_checkpoint

if TYPE_CHECKING:
    import torch

    from .handle import Model


def load_model(source: str | Path, device: torch.device | str = "cpu", *, trusted: bool = False) -> Model:
    """See loading.load_model."""
    if not is_hub_name(source):
        local_checkpoint(source)
    from .loading import load_model as load

    return load(source, device, trusted=trusted)

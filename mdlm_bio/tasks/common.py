"""What the tasks share: loading the model a command works with.

Every task checks its inputs and outputs first and loads the model (and with it torch) after, so a mistake is
reported in a fraction of a second; task modules import no torch themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..models import load_model

if TYPE_CHECKING:
    from ..models.handle import Model


def load_for(source: str | Path, device: str, track: str, command: str, trusted: bool = False) -> Model:
    """The model `command` works with: ours or a published one, of the command's track, its caveat (if it has
    one) printed to standard error."""
    model = load_model(source, device, trusted=trusted).require_track(track, command)
    if model.caveat:
        print(model.caveat, file=sys.stderr)
    return model

"""The Lightning Trainer every training command runs (`train`, `finetune`): the run config's `trainer` options,
with the checkpoint writer that never leaves a torn or non-finite file, gradient clipping and the run's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger

from .checkpoint_io import AtomicCheckpointIO
from .terminal import StepProgressBar


def build_trainer(options: dict[str, Any], run_dir: Path, callbacks: list[L.Callback], loggers: list[Logger],
                  grad_clip: float | None, **more: Any) -> L.Trainer:
    """`options` (the config's trainer section, checked against Trainer's own options when the config was read)
    plus what the command adds (`more`, e.g. max_epochs); a run measured in steps shows them against max_steps."""
    if options.get("enable_progress_bar", True) and options.get("max_steps", -1) > 0:
        callbacks = [*callbacks, StepProgressBar()]
    return L.Trainer(**options, **more, default_root_dir=run_dir, callbacks=callbacks, logger=loggers,
                     plugins=[AtomicCheckpointIO()], gradient_clip_val=grad_clip, enable_model_summary=False)

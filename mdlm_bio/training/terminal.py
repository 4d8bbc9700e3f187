"""What a training command shows in the terminal: one bar of optimizer steps against max_steps, our own lines, and
none of Lightning's chatter. Lightning's informational log (devices found, why fit stopped) goes to the run's
`logs/lightning.log`, where it can still be read; its advertisement for a logging service and a deprecation line
it raises from inside itself are dropped."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

LIGHTNING_LOGGER = "lightning.pytorch"
ADVERTISEMENT = "💡 Tip:"


class _NoAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(ADVERTISEMENT)


@contextmanager
def quiet_lightning(run_dir: Path) -> Iterator[None]:
    """For the life of the block, Lightning's log goes to `run_dir/logs/lightning.log` instead of the terminal."""
    logger = logging.getLogger(LIGHTNING_LOGGER)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(run_dir / "logs" / "lightning.log")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    to_file.addFilter(_NoAdvertisement())
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [to_file], False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", module=r"lightning\.")
            yield
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        to_file.close()


class StepProgressBar(TQDMProgressBar):
    """One bar for a run measured in optimizer steps: the global step against max_steps, across epochs and
    resumes (Lightning's own bars count the batches of an epoch, as 'Epoch 0/-2' when no epoch count is set)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:
            bar.reset(total=trainer.max_steps)
            bar.set_description("training")
        bar.initial = 0
        bar.n = trainer.global_step
        bar.refresh()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        bar = self.train_progress_bar
        if not bar.disable and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

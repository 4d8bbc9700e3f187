"""Callbacks: EMA weights, the stop on a non-finite loss or gradient, and a plain-text validation log (checkpoint
files are checkpoint_io.py's)."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging


class EMA(WeightAveraging):
    """Exponential moving average of the weights, with MDLM's warm-up: decay_n = min(decay, (1+n)/(10+n)).

    Lightning swaps the averaged weights in for validation and stores them as the checkpoint's state_dict
    (the raw weights go to current_model_state), so sampling and scoring use the EMA model.
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), not {decay}")
        self.decay = decay
        super().__init__(use_buffers=False, avg_fn=self._average)

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        decay = min(self.decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return torch.lerp(current, averaged, decay)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Keep the raw weights in the model: Lightning would copy the average over them here, and the last
        checkpoint, saved after this hook, would then resume training from the average instead."""


class TrainingDiverged(ValueError):
    """A non-finite loss or gradient: training stops before that step reaches the weights."""


class StopOnNonFinite(L.Callback):
    """Stops training before a non-finite loss or gradient reaches the weights: one check per optimizer step, on
    the sum of its (micro-batch) losses and the total gradient norm. Under fp16 loss scaling, inf gradients are
    the scaler's to skip, so only the losses are checked there."""

    def __init__(self) -> None:
        self._losses: torch.Tensor | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._losses = loss.detach() if self._losses is None else self._losses + loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        losses, self._losses = self._losses, None
        if losses is None:
            return
        grads = [param.grad for param in pl_module.parameters() if param.grad is not None]
        scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
        norm = torch.nn.utils.get_total_norm(grads) if grads and not scaled else losses.new_zeros(())
        if not torch.isfinite(losses + norm):
            raise TrainingDiverged(f"training diverged at step {trainer.global_step}: the loss is {float(losses):.4g} "
                                   f"and the gradient norm {float(norm):.4g}")


class ValidationLog(L.Callback):
    """One line per validation (`step N  val bits/base X`, or bits/token and perplexity for text), readable in
    logs and by tests; `history` holds (step, bits per unit)."""

    def __init__(self) -> None:
        self.history: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        unit = getattr(pl_module, "unit", "base")
        value = trainer.callback_metrics.get(f"val/bits_per_{unit}")
        # The sanity check of a fresh run is the untrained model: the curve's starting point.
        if value is None or (trainer.sanity_checking and trainer.global_step > 0):
            return
        self.history.append((trainer.global_step, float(value)))
        if trainer.is_global_zero:
            extra = f"  ppl {2 ** float(value):.2f}" if unit == "token" else ""
            print(f"step {trainer.global_step:>7}  val bits/{unit} {float(value):.4f}{extra}", flush=True)

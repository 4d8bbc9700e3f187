"""BD3-LM's data-driven noise schedule: after each validation, block diffusion trains on the clipped schedule
(beta, omega) whose loss varies least across the validation set's blocks.

The clipped schedule draws training mask rates from [beta, omega] only: an estimate of lower variance, so better
gradients, while the reported NELBO keeps [sampling_eps, 1]. Every candidate interval (diffusion/block_diffusion.py,
`clip_candidates`) is scored on each validation batch with the same noise, its per-block losses' variance summed
over batches; the smallest wins and is kept in checkpoints, so a resumed run goes on with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L
import torch

from ..diffusion.block_diffusion import clip_candidates
from ..diffusion.process import make_generator

CLIP_KEY = "mdlm_bio_clip"


class ClippedScheduleSearch(L.Callback):
    def __init__(self, widths: tuple[float, ...]) -> None:
        self.widths = widths
        self.candidates: list[tuple[float, float]] = []
        self.variance = torch.zeros(0, dtype=torch.float64)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.candidates = clip_candidates(self.widths, pl_module.engine.sampling_eps)
        self.variance = torch.zeros(len(self.candidates), dtype=torch.float64)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        engine = pl_module.engine
        for index, clip in enumerate(self.candidates):
            out = pl_module.objective(batch["tokens"], batch.get("attention_mask"),
                                      make_generator(batch_idx, batch["tokens"].device),
                                      engine=dataclasses.replace(engine, clip=clip), training_objective=True)
            self.variance[index] += float(engine.block_losses(out.token_loss).var())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.candidates:
            return
        beta, omega = self.candidates[int(self.variance.argmin())]
        pl_module.engine.clip = (beta, omega)
        pl_module.log_dict({"train/clip_beta": beta, "train/clip_omega": omega})
        if trainer.is_global_zero:
            print(f"step {trainer.global_step:>7}  clipped schedule U[{beta:g}, {omega:g}] (least variance of "
                  f"{len(self.candidates)})", flush=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        clip = pl_module.engine.clip
        checkpoint[CLIP_KEY] = None if clip is None else list(clip)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get(CLIP_KEY) is not None:
            pl_module.engine.clip = tuple(checkpoint[CLIP_KEY])

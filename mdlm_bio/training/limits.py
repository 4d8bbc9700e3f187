"""Memory checks before a training run allocates anything: one training step, estimated on a probe at the run's
precision and device (mdlm_bio.memory), against what that device has free."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor

from ..memory import MemoryEstimate, activation_bytes, check_fits, probe_length, scaled

# Float32 copies per parameter during training: the weight, its gradient and AdamW's two moments.
TRAINING_COPIES = 4


def training_step_memory(module: L.LightningModule, trainer: L.Trainer, batch: int, length: int,
                         loss: Callable[[Tensor], Tensor], token: int, extra_copies: int = 0) -> MemoryEstimate:
    """`loss(probe)` on a [1, probe] batch of `token`, scaled to [batch, length]; the weights with gradients,
    optimizer state and `extra_copies` more (an EMA average)."""
    device = trainer.strategy.root_device
    module.to(device)
    probe = torch.full((1, probe_length(length)), token, device=device)
    # The probe draws dropout masks from the global generator: fork it, so the run's own draws are unchanged.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), trainer.precision_plugin.forward_context():
        probed = activation_bytes(lambda: loss(probe), [*module.parameters(), *module.buffers(), probe])
    weights = sum(param.numel() * param.element_size() for param in module.parameters())
    return MemoryEstimate({"activations": scaled(probed, probe.numel(), batch * length),
                           "weights and optimizer": (TRAINING_COPIES + extra_copies) * weights})


def check_training_memory(module: L.LightningModule, trainer: L.Trainer, batch: int, length: int,
                          loss: Callable[[Tensor], Tensor], token: int, extra_copies: int, smaller: str) -> None:
    check_fits(lambda: training_step_memory(module, trainer, batch, length, loss, token, extra_copies),
               trainer.strategy.root_device, f"a training step of batch {batch} x length {length}", smaller,
               "--ignore-memory-limit")

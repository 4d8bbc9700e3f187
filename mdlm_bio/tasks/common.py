"""What several tasks share: argument checks, loading a DNA model, and the memory check before long work."""

from __future__ import annotations

from ..memory import check_fits
from ..training.checkpoints import TrainedModel, load_trained, require_dna_model
from ..training.module import DiffusionLM


def require_positive(name: str, value: int | None) -> None:
    """Counts given on the command line (--num, --steps, ...) must be positive; None means 'the default'."""
    if value is not None and value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, not {value}")


def load_dna_model(ckpt: str, device: str, command: str, diffusion_only: str | None = None) -> TrainedModel:
    """A DNA model from a run folder or checkpoint, ready for `command`; `diffusion_only` (why) refuses an
    autoregressive one."""
    model = load_trained(ckpt, device)
    require_dna_model(model, command, diffusion_only)
    return model


def check_memory(module: DiffusionLM, batch: int, length: int, outputs: int, device: str, request: str, smaller: str,
                 ignore_memory_limit: bool) -> None:
    """Refuse, before the long part, work whose estimated memory exceeds what the device has free."""
    if not ignore_memory_limit:
        check_fits(lambda: module.inference_memory(batch, length, outputs), device, request, smaller,
                   "--ignore-memory-limit")

"""Training a Mamba stack without saving its activations: recompute them in backward, but never the scans.

A mixer's convolution, projections, softplus and gate are cheap to recompute and expensive to keep (about a
dozen [B, E, L] tensors per direction). Its selective scans are the opposite. So `recomputed` runs a function
once without gradients while a ScanTape records each scan's outputs and chunk checkpoints, and in backward
runs it again with gradients while the tape replays the scans (ScanReplay): the scans still run once forward
and once backward, and what is saved per layer is the input plus the scans' [B, E, L] outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .scan import ScanReplay

ScanCore = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


class ScanTape:
    """Records the scans of one forward pass in order, then replays them in the same order."""

    def __init__(self) -> None:
        self.replays: list[ScanReplay] = []
        self.position: int | None = None  # None while recording

    def core(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
        """A selective_scan_torch `core` that records (first pass) or replays (after `rewind`)."""
        if self.position is None:
            replay = ScanReplay()
            self.replays.append(replay)
            return replay.record(u, delta, A, B, C)
        replay = self.replays[self.position]
        self.position += 1
        return replay.replay(u, delta, A, B, C)

    def rewind(self) -> None:
        self.position = 0

    def tensors(self) -> list[Tensor]:
        return [t for r in self.replays for t in (r.outputs, r.checkpoints)]

    def restore(self, tensors: Sequence[Tensor]) -> None:
        """Put back the tensors of `tensors()` (as saved for backward) and rewind."""
        for replay, outputs, checkpoints in zip(self.replays, tensors[0::2], tensors[1::2]):
            replay.outputs, replay.checkpoints = outputs, checkpoints
        self.rewind()


def recomputed(function: Callable[[Tensor, ScanCore], Tensor], x: Tensor, parameters: Sequence[nn.Parameter]) -> Tensor:
    """function(x, core) with its activations recomputed in backward and its scans replayed (see module doc).

    `function` must be deterministic, pass `core` to every selective scan it runs, and use no parameters
    besides `parameters`.
    """
    return _Recomputed.apply(function, x, *parameters)


class _Recomputed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, function: Callable[[Tensor, ScanCore], Tensor], x: Tensor,  # type: ignore[override]
                *parameters: nn.Parameter) -> Tensor:
        tape = ScanTape()
        with torch.no_grad():
            y = function(x, tape.core)
        ctx.function, ctx.tape, ctx.parameters = function, tape, parameters
        ctx.autocast = dict(enabled=torch.is_autocast_enabled(x.device.type),
                            dtype=torch.get_autocast_dtype(x.device.type))
        ctx.save_for_backward(x, *tape.tensors())
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, *recorded = ctx.saved_tensors
        ctx.tape.restore(recorded)
        with torch.enable_grad(), torch.autocast(x.device.type, **ctx.autocast):
            leaf = x.detach().requires_grad_()
            y = ctx.function(leaf, ctx.tape.core)
            grads = torch.autograd.grad(y, (leaf, *ctx.parameters), grad_y, allow_unused=True)
        return None, *grads

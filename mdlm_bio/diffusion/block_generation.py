"""Block diffusion's generation: blocks left to right, each filled by any sampler, conditioned on the blocks before.

The network's memory of the finished blocks is a `BlockContext` the model provides (a transformer's key/value
cache, or the clean prefix recomputed at every call): the loop asks it for the denoiser of the next block and
hands it each finished block. The block is filled by a sampler object like any window (first-hitting, ancestral
with its cache, ReMDM, confidence decoding), so every sampler's guarantees hold inside a block. A prompt fixes the
first tokens (blocks wholly inside it are not sampled), and a `StopRule` can end rows early: the loop stops once
every row of the batch has stopped, and the output keeps each row's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .denoiser import Denoiser, SampleOutput
from .generation import in_batches
from .process import make_generator
from .sampler import Sampler
from .samplers import all_masked
from .schedules import NoiseSchedule
from .stopping import StopRule


class BlockContext(Protocol):
    """What a network has read of the clean blocks so far, for a batch of rows."""

    def denoiser(self) -> Denoiser:
        """The denoiser of the next block, given every block appended so far."""
        ...

    def append(self, block: Tensor) -> None:
        """Read a finished block [B, L'] (its tokens are final)."""
        ...


def generate_blocks(
    new_context: Callable[[int], BlockContext],
    sampler: Sampler,
    schedule: NoiseSchedule,
    *,
    block_size: int,
    mask_id: int,
    num: int,
    length: int,
    seed: int | torch.Generator,
    batch_size: int,
    prompt: Tensor | None = None,
    stop: StopRule | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """`num` sequences of at most `length` tokens [num, length] on the CPU (a row that stopped early is padded with
    `mask_id`; `lengths` says where each ends), continuing the 1-D `prompt` if given."""
    if num < 1 or length < 1 or block_size < 1:
        raise ValueError(f"num, length and block_size must be positive; got {num}, {length}, {block_size}")
    if prompt is not None and len(prompt) >= length:
        raise ValueError(f"the prompt ({len(prompt)} tokens) must be shorter than the length ({length})")
    generator = make_generator(seed, device)

    def draw(batch: int) -> SampleOutput:
        context = new_context(batch)
        known = None if prompt is None else prompt.to(device=device, dtype=torch.long).expand(batch, -1)
        canvas = torch.full((batch, length), mask_id, device=device)  # 8 bytes a base, however long
        calls = rows = written = 0
        for start in range(0, length, block_size):
            end = min(start + block_size, length)
            block = all_masked(batch, end - start, mask_id, device)
            given = 0 if known is None else max(0, min(known.shape[1], end) - start)
            if given:
                block[:, :given] = known[:, start : start + given]
            if given < end - start:
                out = sampler.sample(context.denoiser(), block, schedule, mask_id, generator)
                block, calls, rows = out.tokens, calls + out.num_calls, rows + out.row_calls
                if progress is not None:
                    progress(batch * (end - start - given))
            canvas[:, start:end], written = block, end
            if stop is not None and bool((stop.lengths(canvas[:, :end]) < end).all()):
                break
            if end < length:
                context.append(block)
        lengths = torch.full((batch,), written) if stop is None else stop.lengths(canvas[:, :written]).cpu()
        padded = canvas.cpu()
        return SampleOutput(padded, calls, rows, lengths)

    return in_batches(draw, num, batch_size)

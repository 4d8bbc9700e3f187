"""Batched generation of any length from a denoiser: a sampler object plus semi-autoregressive windows.

Both tracks draw samples through here (DNA FASTA, text for generative perplexity); only the mask id and
the context length differ between them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, SampleOutput
from .process import make_generator
from .sampler import Sampler
from .samplers import semi_autoregressive_sample
from .schedules import NoiseSchedule


def generate(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    sampler: Sampler,
    *,
    context: int,
    mask_id: int,
    num: int,
    length: int,
    seed: int | torch.Generator,
    batch_size: int = 16,
    prompt: Tensor | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """`num` sequences of `length` tokens (continuing the 1-D `prompt`, if given), as one CPU tensor
    [num, length], and the network calls used; `sampler` fills windows of at most `context` tokens.

    Lengths beyond the context are generated semi-autoregressively with a half-context stride. `progress(n)`
    is told the number of new tokens after each window, so long sequences show progress as they grow.
    """
    if num < 1 or length < 1:
        raise ValueError(f"num and length must be positive; got num={num}, length={length}")
    if context < 2:
        raise ValueError(f"context must be at least 2; got {context}")
    generator = make_generator(seed, device)

    def sample_block(z_init: Tensor) -> SampleOutput:
        return sampler.sample(denoiser, z_init, schedule, mask_id, generator)

    def draw(batch: int) -> SampleOutput:
        prefix = None if prompt is None else prompt.to(device=device, dtype=torch.long).expand(batch, -1)
        return semi_autoregressive_sample(
            sample_block, batch_size=batch, length=length, block_length=context,
            stride=max(1, context // 2), mask_id=mask_id, prompt=prefix, device=device, progress=progress,
        )

    return in_batches(draw, num, batch_size)


def infill(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    sampler: Sampler,
    *,
    context: int,
    mask_id: int,
    tokens: Tensor,
    fill: Tensor,
    seed: int,
) -> SampleOutput:
    """Resample the positions of the 1-D `tokens` where `fill` is True, keeping every other token; the tokens
    come back 1-D.

    Works window by window (each `context` long, with a quarter of it as already-known left flank where
    possible), so sequences and regions of any length are handled.
    """
    if fill.shape != tokens.shape or tokens.dim() != 1:
        raise ValueError(f"tokens and fill must be 1-D of one shape; got {tuple(tokens.shape)} and {tuple(fill.shape)}")
    generator = make_generator(seed, tokens.device)
    current = torch.where(fill, torch.full_like(tokens, mask_id, dtype=torch.long), tokens.long())
    length, calls, rows = current.numel(), 0, 0
    while True:
        masked = torch.nonzero(current == mask_id)
        if masked.numel() == 0:
            return SampleOutput(tokens=current, num_calls=calls, row_calls=rows)
        window = min(context, length)
        begin = max(0, min(int(masked[0]) - window // 4, length - window))
        out = sampler.sample(denoiser, current[begin : begin + window][None], schedule, mask_id, generator)
        current[begin : begin + window] = out.tokens[0]
        calls, rows = calls + out.num_calls, rows + out.row_calls


def in_batches(draw: Callable[[int], SampleOutput], num: int, batch_size: int,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
    """`draw(batch)` for batches of at most `batch_size` until `num` rows, concatenated on the CPU, with
    the network calls summed: how every sampler is run over many samples."""
    batches, lengths, calls, rows = [], [], 0, 0
    for start in range(0, num, batch_size):
        batch = min(batch_size, num - start)
        out = draw(batch)
        batches.append(out.tokens.cpu())
        lengths.append(out.lengths)
        calls, rows = calls + out.num_calls, rows + out.row_calls
        if progress is not None:
            progress(batch)
    whole = any(length is None for length in lengths)
    return SampleOutput(tokens=torch.cat(batches), num_calls=calls, row_calls=rows,
                        lengths=None if whole else torch.cat(lengths))

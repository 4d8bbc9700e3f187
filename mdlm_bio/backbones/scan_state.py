"""The selective scan's state, which block diffusion on Mamba carries instead of a KV cache (issue 30): a scan
that starts from a given state, and the states at the ends of blocks of a scan from zero.

Both rest on the recurrence h_l = a_l h_{l-1} + b_l (a_l = exp(delta_l A), b_l = delta_l u_l B_l) being linear in
its state. Started from h0 instead of 0, every state gains P_l h0 with P_l = prod_{k<=l} a_k = exp(A S_l), S_l the
running sum of delta, so the output gains C_l . (P_l h0), gated like the rest: a correction added to whatever
computed the scan from zero (the torch scan, the compiled one or mamba-ssm's kernel), so every path takes a
starting state alike, and its gradient with respect to h0 is autograd's. The products are exponentials of
negative sums (delta >= 0 after softplus, A < 0), so they only shrink and stay exact in floating point.

Both need [E, L, N] decays per row. They are computed in chunks of rows of at most CHUNK_BYTES each, and under
autograd each chunk is recomputed in backward instead of saved (torch.utils.checkpoint), so the memory they hold is
one chunk's plus their [B, E, L] or [B, E, J, N] results, not the states at every position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .scan import selective_scan

CHUNK_BYTES = 64 * 2**20  # what one chunk of rows' [E, L, N] decays may weigh


def in_row_chunks(function: Callable[..., Tensor], rows: tuple[Tensor, ...], shared: tuple[Tensor, ...],
                  row_bytes: int) -> Tensor:
    """function(*rows, *shared) over chunks of the rows (dim 0) whose work weighs at most CHUNK_BYTES, joined;
    under autograd a chunk of several is recomputed in backward rather than saved."""
    count = rows[0].shape[0]
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    if step >= count:
        return function(*rows, *shared)
    recompute = torch.is_grad_enabled()
    parts = []
    for start in range(0, count, step):
        chunk = tuple(row[start : start + step] for row in rows)
        parts.append(checkpoint(function, *chunk, *shared, use_reentrant=False) if recompute
                     else function(*chunk, *shared))
    return torch.cat(parts)


def step_sizes(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    """delta as the scan uses it (bias added, softplus), in at least float32."""
    delta = delta.to(torch.promote_types(delta.dtype, torch.float32))
    if delta_bias is not None:
        delta = delta + delta_bias.to(delta.dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def output_from_state(delta: Tensor, A: Tensor, C: Tensor, h0: Tensor) -> Tensor:
    """C_l . (P_l h0) for every position, [B, E, L]: what a start from state h0 [B, E, N] adds to the output of
    a scan from zero (before the gate). `delta` is the scan's step sizes (`step_sizes`)."""
    work = torch.promote_types(delta.dtype, torch.float32)
    row_bytes = delta[0].numel() * A.shape[-1] * work.itemsize
    return in_row_chunks(_output_from_state, (delta, C, h0), (A,), row_bytes)


def _output_from_state(delta: Tensor, C: Tensor, h0: Tensor, A: Tensor) -> Tensor:
    decay = torch.exp(delta.cumsum(-1).unsqueeze(-1) * A[:, None, :])  # P_l, [B, E, L, N]
    return torch.einsum("beln,bnl,ben->bel", decay, C.to(decay.dtype), h0.to(decay.dtype))


def selective_scan_from(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor,
                        D: Tensor | None = None, z: Tensor | None = None, delta_bias: Tensor | None = None,
                        delta_softplus: bool = False) -> Tensor:
    """`selective_scan` (mamba-ssm's argument layout) started from state h0 [B, E, N] instead of zero."""
    y = selective_scan(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    work = torch.promote_types(A.dtype, torch.float32)
    extra = output_from_state(step_sizes(delta, delta_bias, delta_softplus), A.to(work), C, h0)
    if z is not None:
        extra = extra * F.silu(z.to(extra.dtype))
    return (y.to(extra.dtype) + extra).to(y.dtype)


def states_after_blocks(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, block: int, h0: Tensor | None = None) -> Tensor:
    """The state after each whole block of `block` positions, [B, E, L // block, N], of the scan of u [B, E, L]
    (from h0 [B, E, N], or zero): each block's own final state from zero, all blocks at once, then the short
    recurrence across blocks H_j = (block j's decay) H_{j-1} + (block j's own final state). `delta` is the scan's
    step sizes (`step_sizes`)."""
    batch, inner, length = u.shape
    if block < 1 or length % block:
        raise ValueError(f"block ({block}) must divide the length ({length})")
    work = torch.promote_types(torch.promote_types(u.dtype, delta.dtype), torch.float32)
    blocks = length // block
    delta = delta.to(work).reshape(batch, inner, blocks, block)
    drive = delta * u.to(work).reshape(batch, inner, blocks, block)  # delta_l u_l
    inputs = B.to(work).reshape(batch, B.shape[1], blocks, block)
    A = A.to(work)
    own = in_row_chunks(_own_final_states, (delta, drive, inputs), (A,), inner * length * A.shape[-1] * work.itemsize)
    carry = torch.exp(delta.sum(-1).unsqueeze(-1) * A[:, None, :])  # each block's decay, [B, E, J, N]
    state = own.new_zeros(batch, inner, A.shape[-1]) if h0 is None else h0.to(work)
    states = []
    for index in range(blocks):  # one step per block, in plain ops so autograd differentiates it
        state = carry[:, :, index] * state + own[:, :, index]
        states.append(state)
    return torch.stack(states, dim=2) if states else own  # no whole block: [B, E, 0, N]


def _own_final_states(delta: Tensor, drive: Tensor, inputs: Tensor, A: Tensor) -> Tensor:
    """Each block's final state from zero [B, E, J, N], from its step sizes and drives [B, E, J, L'] and inputs
    [B, N, J, L']."""
    within = delta.cumsum(-1)  # S_l - S_(block start - 1)
    to_end = torch.exp((within[..., -1:] - within).unsqueeze(-1) * A[:, None, None, :])  # [B, E, J, L', N]
    return torch.einsum("bejkn,bejk,bnjk->bejn", to_end, drive, inputs)

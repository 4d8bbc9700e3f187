"""Selective scan (Mamba's S6 recurrence) in pure torch, with mamba-ssm kernels on CUDA.

The recurrence h_l = a_l * h_{l-1} + x_l is linear, so both its output and its
backward pass are scans. We compute them chunk-parallel without autograd, inside
one custom Function for the whole selective scan whose backward recomputes the
states: saved memory stays O(L E) per scan (no [L, B, E, N] states kept between
forward and backward), and Python only loops over chunk offsets, never positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .kernels import kernels_apply, selective_scan_kernel

CHUNK = 32


def linear_recurrence(decay: Tensor, inputs: Tensor, reverse: bool = False, chunk: int = CHUNK,
                      out: Tensor | None = None) -> Tensor:
    """Solve h_l = decay_l * h_{l-1} + inputs_l (h_{-1} = 0) along dim 0 of contiguous tensors.

    With `reverse`, solve h_l = decay_l * h_{l+1} + inputs_l from the end instead. `out`, a contiguous tensor
    shaped like `inputs`, receives the states when the length is a whole number of chunks (or one chunk or less).
    Two levels: a short sequential pass inside every chunk at once (vectorised
    over all chunks), then the same recurrence on the chunk boundaries
    (recursively), then one broadcast of each chunk's incoming state. Products
    of decays in [0, 1] only shrink, so this stays exact in floating point,
    unlike log-space or cumulative-product-division scans.
    """
    length = inputs.shape[0]
    if length <= chunk:
        return _sequential(decay, inputs, 0, reverse, out)[0]
    num_chunks = -(-length // chunk)
    padding = num_chunks * chunk - length
    if padding:  # identity steps: decay 1, input 0
        decay = torch.cat([decay, decay.new_ones(padding, *decay.shape[1:])])
        inputs = torch.cat([inputs, inputs.new_zeros(padding, *inputs.shape[1:])])
        out = None
    rest = inputs.shape[1:]
    # Views [num_chunks, chunk, ...]: step k of every chunk is one strided slab, no copies.
    shape = (num_chunks, chunk, *rest)
    local, carried = _sequential(decay.view(shape), inputs.view(shape), 1, reverse,
                                 None if out is None else out.view(shape))
    boundary = 0 if reverse else -1
    incoming = linear_recurrence(
        carried[:, boundary].contiguous(), local[:, boundary].contiguous(), reverse, chunk
    ).unsqueeze(1)
    if reverse:
        local[:-1] += carried[:-1] * incoming[1:]
    else:
        local[1:] += carried[1:] * incoming[:-1]
    return local.view(num_chunks * chunk, *rest)[:length]


def _sequential(decay: Tensor, inputs: Tensor, dim: int, reverse: bool, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """States (into `out` if given) and running decay products, stepping along `dim` in Python (short spans only)."""
    states, products = torch.empty_like(inputs) if out is None else out, torch.empty_like(decay)
    order = range(inputs.shape[dim] - 1, -1, -1) if reverse else range(inputs.shape[dim])
    previous = None
    for index in order:
        step, state, product = decay.select(dim, index), states.select(dim, index), products.select(dim, index)
        if previous is None:
            state.copy_(inputs.select(dim, index))
            product.copy_(step)
        else:
            torch.addcmul(inputs.select(dim, index), step, states.select(dim, previous), out=state)
            torch.mul(products.select(dim, previous), step, out=product)
        previous = index
    return states, products


def selective_scan_torch(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """Mamba's selective scan with mamba-ssm's argument layout.

    u, delta, z: [B, E, L]; A: [E, N]; B, C: [B, N, L]; D, delta_bias: [E].
    Zero-order hold for A (exp(delta A)) and Euler for B (delta B u), as in the
    reference implementation, so checkpoints trained with the kernels load here.
    Runs in float32 at least, whatever the autocast dtype.
    """
    dtype = u.dtype
    work = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (x.to(work) for x in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (u, delta, A, B, C))
    if needs_grad:
        y = _SelectiveScan.apply(u, delta, A, B, C)
    elif _state_bytes(u, A) <= STATE_SLICE_BYTES:
        y = _scan_outputs_with_states(u, delta, A, B, C)
    else:
        y = _scan_outputs_stepwise(u, delta, A, B, C)
    if D is not None:
        y = y + D.to(work)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype)


STATE_SLICE_BYTES = 16 * 2**20


def _batch_slices(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> list[tuple[Tensor, ...]]:
    """Split the batch so that each slice's [L, b, E, N] states stay under STATE_SLICE_BYTES.

    glibc serves blocks over 32 MiB with fresh mmap pages, and faulting those in on every call cost more than
    the arithmetic (3-4x slower training steps on CPU); smaller blocks are reused from the heap.
    """
    size = _slice_size(u, A)
    return [(u[i : i + size], delta[i : i + size], A, B[i : i + size], C[i : i + size]) for i in range(0, len(u), size)]


def _slice_size(u: Tensor, A: Tensor) -> int:
    """Sequences per batch slice, so that a slice's states stay under STATE_SLICE_BYTES (at least one)."""
    return max(1, STATE_SLICE_BYTES // _state_bytes(u[:1], A))


def _state_bytes(u: Tensor, A: Tensor) -> int:
    """Bytes of the [L, B, E, N] states of a scan over u [B, E, L]."""
    return u.numel() * A.shape[1] * u.element_size()


def _scan_outputs_with_states(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """y = C . h for all positions, through the [L, B, E, N] states (materialised here, not kept)."""
    return _outputs(_states(u, delta, A, B), C)


def _states(u: Tensor, delta: Tensor, A: Tensor, B: Tensor) -> tuple[_ScanPieces, Tensor]:
    """The scan's pieces and its state history: history[l + 1] = h_l and history[0] = h_{-1} = 0, so
    history[:L] holds the previous state of every step."""
    pieces = _ScanPieces(u, delta, A, B)
    history = u.new_zeros(pieces.padded + 1, *pieces.drive.shape[1:])
    linear_recurrence(pieces.decay[: pieces.padded], pieces.drive, out=history[1:])
    return pieces, history


def _outputs(states: tuple[_ScanPieces, Tensor], C: Tensor) -> Tensor:
    """y_l = C_l . h_l, [B, E, L]."""
    pieces, history = states
    return torch.matmul(history[1 : pieces.length + 1], C.permute(2, 0, 1).unsqueeze(-1)).squeeze(-1).permute(1, 2, 0)


class _ScanPieces:
    """The decays a_l = exp(delta_l A) and drives b_l = delta_l u_l B_l of a scan, in length-first [L, B, E, N]
    buffers padded to a whole number of chunks (identity steps: a = 1, b = 0), so the chunked recurrence runs on
    views without copying; `decay` holds one extra identity step, so decay[1:] is the shifted decay the adjoint
    scan needs."""

    def __init__(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor) -> None:
        self.length = u.shape[-1]
        self.padded = -(-self.length // CHUNK) * CHUNK
        self.delta = delta.permute(2, 0, 1)
        self.scale = self.delta * u.permute(2, 0, 1)  # delta_l u_l, [L, B, E]
        shape = (self.padded + 1, u.shape[0], u.shape[1], A.shape[-1])
        self.decay = u.new_empty(shape)
        torch.exp(self.delta.unsqueeze(-1) * A, out=self.decay[: self.length])
        self.decay[self.length :] = 1.0
        self.drive = u.new_zeros(shape[0] - 1, *shape[1:])
        torch.mul(self.scale.unsqueeze(-1), B.permute(2, 0, 1).unsqueeze(2), out=self.drive[: self.length])


class _SelectiveScan(torch.autograd.Function):
    """y_l = C_l . h_l with h_l = exp(delta_l A) h_{l-1} + delta_l u_l B_l, differentiated by recomputation.

    Forward keeps only its inputs (all [B, E, L] or smaller); backward rebuilds the [L, B, E, N] states one batch
    slice at a time and runs the adjoint scan beside them. So the states of a whole network are never held at
    once: saved memory is O(L E) per scan instead of O(L E N), as with mamba-ssm's fused kernel.

    The adjoint, with g_y the incoming gradient and a_l = exp(delta_l A), b_l = delta_l u_l B_l:
      g_h_l = g_y_l C_l + a_{l+1} g_h_{l+1}  (a reverse scan),   g_C_l = sum_e g_y_l h_l,
      g_a_l = g_h_l h_{l-1},   g_(delta u)_l = sum_n g_h_l B_l,   g_B_l = sum_e g_h_l (delta u)_l,
      g_delta_l = sum_n g_a_l a_l A + g_(delta u)_l u_l,   g_u_l = g_(delta u)_l delta_l,   g_A = sum g_a a delta.
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(u, delta, A, B, C)
        ctx.kept = None
        with torch.autocast(u.device.type, enabled=False):  # the states stay in the inputs' float32 (or 64)
            if _slice_size(u, A) >= len(u):
                # Small enough for one slice: keep the states, recomputing them would cost more than they weigh.
                ctx.kept = _states(u, delta, A, B)
                return _outputs(ctx.kept, C)
            return torch.cat([_scan_outputs_with_states(*part) for part in _batch_slices(u, delta, A, B, C)])

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        u, delta, A, B, C = ctx.saved_tensors
        size = _slice_size(u, A)
        with torch.autocast(u.device.type, enabled=False):
            grads = [_scan_gradients(*(x[i : i + size] for x in (u, delta)), A,
                                     *(x[i : i + size] for x in (B, C, grad_y.to(u.dtype))), kept=ctx.kept)
                     for i in range(0, len(u), size)]
        ctx.kept = None
        grad_A = torch.stack([g[2] for g in grads]).sum(0)
        return (torch.cat([g[0] for g in grads]), torch.cat([g[1] for g in grads]), grad_A,
                torch.cat([g[3] for g in grads]), torch.cat([g[4] for g in grads]))


def _scan_gradients(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, grad_y: Tensor,
                    kept: tuple[_ScanPieces, Tensor] | None = None) -> tuple[Tensor, ...]:
    """Gradients of one batch slice (see _SelectiveScan), from the states kept by forward or recomputed; the
    buffers are reused in place, so each is consumed here."""
    pieces, history = kept or _states(u, delta, A, B)
    length = pieces.length
    grad_y_l, C_l, B_l = grad_y.permute(2, 0, 1), C.permute(2, 0, 1), B.permute(2, 0, 1)
    grad_C = torch.matmul(grad_y_l.unsqueeze(-2), history[1 : length + 1]).squeeze(-2)
    # the adjoint scan: g_h_l = g_y_l C_l + a_{l+1} g_h_{l+1}, written over the drives (no longer needed)
    seed = pieces.drive
    seed[length:] = 0.0
    torch.mul(grad_y_l.unsqueeze(-1), C_l.unsqueeze(2), out=seed[:length])
    grad_states = linear_recurrence(pieces.decay[1:], seed, reverse=True)[:length]
    grad_scale = torch.matmul(grad_states, B_l.unsqueeze(-1)).squeeze(-1)
    grad_B = torch.matmul(pieces.scale.unsqueeze(-2), grad_states).squeeze(-2)
    decay_grad = history[:length].mul_(grad_states).mul_(pieces.decay[:length])  # g_a_l a_l, over the history
    grad_A = (decay_grad * pieces.delta.unsqueeze(-1)).sum((0, 1))
    grad_delta = decay_grad.mul_(A).sum(-1).add_(grad_scale * u.permute(2, 0, 1))
    return (
        (grad_scale * pieces.delta).permute(1, 2, 0),
        grad_delta.permute(1, 2, 0),
        grad_A,
        grad_B.permute(1, 2, 0),
        grad_C.permute(1, 2, 0),
    )


def _scan_outputs_stepwise(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The same outputs without gradients, stepping one position at a time on a single [B, E, N] state.

    Inference needs no stored states. Once they would pass STATE_SLICE_BYTES, never building the
    [L, B, E, N] tensors is 2-3x faster on CPU (bench/bench_scan.py); below that, L small Python steps
    cost more than the tensors save.
    """
    batch, inner, length = u.shape
    delta_l = delta.permute(2, 0, 1).contiguous()
    drive_l = (delta * u).permute(2, 0, 1).contiguous()
    B_l, C_l = B.permute(2, 0, 1).contiguous(), C.permute(2, 0, 1).contiguous()
    state = u.new_zeros(batch, inner, A.shape[1])
    decay = torch.empty_like(state)
    outputs = u.new_empty(length, batch, inner, 1)
    for position in range(length):
        torch.mul(delta_l[position].unsqueeze(-1), A, out=decay).exp_()
        state.mul_(decay).addcmul_(drive_l[position].unsqueeze(-1), B_l[position].unsqueeze(1))
        torch.matmul(state, C_l[position].unsqueeze(-1), out=outputs[position])
    return outputs.squeeze(-1).permute(1, 2, 0)


def selective_scan(u: Tensor, *args, **kwargs) -> Tensor:
    """mamba-ssm's fused kernel where it applies (installed, u on CUDA), else the torch scan; same arguments."""
    kernel = selective_scan_kernel() if kernels_apply(u) else None
    if kernel is not None:
        return kernel(u, *args, **kwargs)
    return selective_scan_torch(u, *args, **kwargs)

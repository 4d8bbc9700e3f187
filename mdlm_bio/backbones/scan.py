"""Selective scan (Mamba's S6 recurrence) in pure torch, with mamba-ssm kernels on CUDA.

The recurrence h_l = a_l * h_{l-1} + x_l is linear, so both its output and its
backward pass are scans. We compute them chunk-parallel without autograd and
wrap them in a custom Function: memory stays O(L) per state (no saved graph of
L steps), and Python only loops over chunk offsets, never over positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .kernels import kernels_apply, selective_scan_kernel

CHUNK = 32


def linear_recurrence(decay: Tensor, inputs: Tensor, reverse: bool = False, chunk: int = CHUNK) -> Tensor:
    """Solve h_l = decay_l * h_{l-1} + inputs_l (h_{-1} = 0) along dim 0 of contiguous tensors.

    With `reverse`, solve h_l = decay_l * h_{l+1} + inputs_l from the end instead.
    Two levels: a short sequential pass inside every chunk at once (vectorised
    over all chunks), then the same recurrence on the chunk boundaries
    (recursively), then one broadcast of each chunk's incoming state. Products
    of decays in [0, 1] only shrink, so this stays exact in floating point,
    unlike log-space or cumulative-product-division scans.
    """
    length = inputs.shape[0]
    if length <= chunk:
        return _sequential(decay, inputs, 0, reverse)[0]
    num_chunks = -(-length // chunk)
    padding = num_chunks * chunk - length
    if padding:  # identity steps: decay 1, input 0
        decay = torch.cat([decay, decay.new_ones(padding, *decay.shape[1:])])
        inputs = torch.cat([inputs, inputs.new_zeros(padding, *inputs.shape[1:])])
    rest = inputs.shape[1:]
    # Views [num_chunks, chunk, ...]: step k of every chunk is one strided slab, no copies.
    shape = (num_chunks, chunk, *rest)
    local, carried = _sequential(decay.view(shape), inputs.view(shape), 1, reverse)
    boundary = 0 if reverse else -1
    incoming = linear_recurrence(
        carried[:, boundary].contiguous(), local[:, boundary].contiguous(), reverse, chunk
    ).unsqueeze(1)
    if reverse:
        local[:-1] += carried[:-1] * incoming[1:]
    else:
        local[1:] += carried[1:] * incoming[:-1]
    return local.view(num_chunks * chunk, *rest)[:length]


def _sequential(decay: Tensor, inputs: Tensor, dim: int, reverse: bool) -> tuple[Tensor, Tensor]:
    """States and running decay products, stepping along `dim` in Python (used only for short spans)."""
    states, products = torch.empty_like(inputs), torch.empty_like(decay)
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


class _LinearRecurrence(torch.autograd.Function):
    """Autograd for h = scan(a, x): dL/dx is the reverse scan of dL/dh with decays a_{l+1}; dL/da_l = g_l * h_{l-1}."""

    @staticmethod
    def forward(ctx, decay: Tensor, inputs: Tensor) -> Tensor:  # type: ignore[override]
        states = linear_recurrence(decay.contiguous(), inputs.contiguous())
        ctx.save_for_backward(decay, states)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        decay, states = ctx.saved_tensors
        next_decay = torch.cat([decay[1:], torch.zeros_like(decay[:1])])
        grad_inputs = linear_recurrence(next_decay, grad_states.contiguous(), reverse=True)
        grad_decay = torch.zeros_like(decay)
        torch.mul(grad_inputs[1:], states[:-1], out=grad_decay[1:])
        return grad_decay, grad_inputs


def scan(decay: Tensor, inputs: Tensor) -> Tensor:
    """Differentiable h_l = decay_l * h_{l-1} + inputs_l along dim 0."""
    return _LinearRecurrence.apply(decay, inputs)


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
        y = torch.cat([_scan_outputs_with_states(*part) for part in _batch_slices(u, delta, A, B, C)])
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
    size = max(1, STATE_SLICE_BYTES // _state_bytes(u[:1], A))
    return [(u[i : i + size], delta[i : i + size], A, B[i : i + size], C[i : i + size]) for i in range(0, len(u), size)]


def _state_bytes(u: Tensor, A: Tensor) -> int:
    """Bytes of the [L, B, E, N] states of a scan over u [B, E, L]."""
    return u.numel() * A.shape[1] * u.element_size()


def _scan_outputs_with_states(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """y = C . h for all positions, materialising the states [L, B, E, N] that backward needs."""
    # Length-first contiguous layout [L, B, E, N], so the scan walks contiguous slabs.
    delta_l = delta.permute(2, 0, 1).contiguous()
    decay = torch.exp(delta_l.unsqueeze(-1) * A)
    drive = (delta_l * u.permute(2, 0, 1)).unsqueeze(-1) * B.permute(2, 0, 1).contiguous().unsqueeze(2)
    states = scan(decay, drive)
    return torch.einsum("lben,lbn->bel", states, C.permute(2, 0, 1))


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

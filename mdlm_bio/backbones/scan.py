"""Selective scan (Mamba's S6 recurrence) in pure torch, with mamba-ssm kernels on CUDA.

Two exact paths, picked by shape (bench/bench_scan.py measures the crossover):
- chunk-sequential (the default): step through positions one fused multiply-add at a time on chunk-sized
  buffers that stay in cache, computing decays, drives and outputs for a whole chunk per call. Training keeps
  only the state entering each chunk and rebuilds a chunk's states inside backward, as mamba-ssm's fused
  kernel does on GPU: saved memory is O(L E + (L / CHUNK) E N), never the [L, B, E, N] states.
- materialised, for small states per position (a handful of sequences of a tiny model), where L Python steps
  cost more than the arithmetic: all states at once through a chunk-parallel linear recurrence.
Where the optional compiled scan builds (scan_native), it takes the chunk-sequential path's place, with the same
checkpoints, and the materialised path is never needed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import scan_native
from .kernels import kernels_apply, selective_scan_kernel

CHUNK = scan_native.CHUNK  # positions per chunk checkpoint, shared with the compiled scan


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
    core: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Mamba's selective scan with mamba-ssm's argument layout.

    u, delta, z: [B, E, L]; A: [E, N]; B, C: [B, N, L]; D, delta_bias: [E].
    Zero-order hold for A (exp(delta A)) and Euler for B (delta B u), as in the
    reference implementation, so checkpoints trained with the kernels load here.
    Runs in float32 at least, whatever the autocast dtype. `core` replaces the recurrence itself,
    (u, softplus'd delta, A, B, C) -> C . h (see ScanReplay).
    """
    dtype = u.dtype
    work = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (x.to(work) for x in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if core is not None:
        y = core(u, delta, A, B, C)
    elif torch.is_grad_enabled() and any(x.requires_grad for x in (u, delta, A, B, C)):
        y = _SelectiveScan.apply(u, delta, A, B, C)
    elif _materialises(u, A, MATERIALISE_BELOW_INFERENCE):
        y = _outputs(_states(u, delta, A, B), C)
    else:
        y = _chunk_scan(u, delta, A, B, C)[0]
    if D is not None:
        y = y + D.to(work)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype)


# Below these many state elements per position (B E N) the materialised path is faster: the chunk-sequential
# path's L small Python steps cost more than the arithmetic they save (bench/bench_scan.py).
MATERIALISE_BELOW_INFERENCE = 2048
MATERIALISE_BELOW_TRAINING = 4096
# ... as long as all states stay this small: glibc serves larger blocks with fresh mmap pages, whose faulting-in
# on every call costs more than the arithmetic.
MATERIALISED_STATE_BYTES = 16 * 2**20


def _materialises(u: Tensor, A: Tensor, below: int) -> bool:
    """Whether a scan over u [B, E, L] is cheaper with all its [L, B, E, N] states materialised (never when the
    compiled scan applies)."""
    if scan_native.applies(u, A):
        return False
    per_position = u.shape[0] * u.shape[1] * A.shape[1]
    return per_position < below and per_position * u.shape[2] * u.element_size() <= MATERIALISED_STATE_BYTES


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
    """y_l = C_l . h_l with h_l = exp(delta_l A) h_{l-1} + delta_l u_l B_l, with a hand-written backward.

    Forward keeps its inputs (all [B, E, L] or smaller) and, on the chunk-sequential path, the state entering
    each chunk; backward rebuilds the states chunk by chunk beside the adjoint scan. Small materialised scans
    keep their states instead (rebuilding them would cost more than they weigh).

    The adjoint, with g_y the incoming gradient and a_l = exp(delta_l A), b_l = delta_l u_l B_l:
      g_h_l = g_y_l C_l + a_{l+1} g_h_{l+1}  (a reverse scan),   g_C_l = sum_e g_y_l h_l,
      g_a_l = g_h_l h_{l-1},   g_(delta u)_l = sum_n g_h_l B_l,   g_B_l = sum_e g_h_l (delta u)_l,
      g_delta_l = sum_n g_a_l a_l A + g_(delta u)_l u_l,   g_u_l = g_(delta u)_l delta_l,   g_A = sum g_a a delta.
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:  # type: ignore[override]
        ctx.materialised = _materialises(u, A, MATERIALISE_BELOW_TRAINING)
        with torch.autocast(u.device.type, enabled=False):  # the states stay in the inputs' float32 (or 64)
            if ctx.materialised:
                ctx.kept = _states(u, delta, A, B)
                ctx.save_for_backward(u, delta, A, B, C)
                return _outputs(ctx.kept, C)
            y, checkpoints = _chunk_scan(u, delta, A, B, C, keep_checkpoints=True)
        ctx.save_for_backward(u, delta, A, B, C, checkpoints)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        u, delta, A, B, C, *checkpoints = ctx.saved_tensors
        grad_y = grad_y.to(u.dtype)
        with torch.autocast(u.device.type, enabled=False):
            if ctx.materialised:  # the kept states are consumed; a second backward (retain_graph) rebuilds them
                kept, ctx.kept = ctx.kept or _states(u, delta, A, B), None
                return _materialised_gradients(u, delta, A, B, C, grad_y, kept)
            return _chunk_scan_gradients(u, delta, A, B, C, grad_y, checkpoints[0])


def _materialised_gradients(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, grad_y: Tensor,
                            kept: tuple[_ScanPieces, Tensor]) -> tuple[Tensor, ...]:
    """Gradients of a materialised scan (see _SelectiveScan) from the states its forward kept; the buffers are
    reused in place, so they are consumed here."""
    pieces, history = kept
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


def _chunk_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                keep_checkpoints: bool = False) -> tuple[Tensor, Tensor | None]:
    """The chunk-sequential scan: compiled (scan_native) where it applies, else in torch."""
    if scan_native.applies(u, A):
        return scan_native.chunk_scan(u, delta, A, B, C, keep_checkpoints)
    return _chunk_scan_torch(u, delta, A, B, C, keep_checkpoints)


def _chunk_scan_gradients(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, grad_y: Tensor,
                          checkpoints: Tensor) -> tuple[Tensor, ...]:
    """Gradients of _chunk_scan: compiled (scan_native) where it applies, else in torch."""
    if scan_native.applies(u, A):
        return scan_native.chunk_scan_gradients(u, delta, A, B, C, grad_y, checkpoints)
    return _chunk_scan_gradients_torch(u, delta, A, B, C, grad_y, checkpoints)


def _chunk_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                      keep_checkpoints: bool = False) -> tuple[Tensor, Tensor | None]:
    """Outputs y [B, E, L] of the scan, stepping position by position on chunk-sized buffers that stay in cache.

    Decays and drives are computed for a whole chunk of CHUNK positions in one call each, the recurrence then
    takes one fused multiply-add per position, and the outputs of the chunk are one batched matmul. With
    `keep_checkpoints`, also returns the state entering every chunk, [num_chunks, B, E, N]: all that backward
    needs to rebuild the states (1/CHUNK of them).
    """
    batch, inner, length = u.shape
    delta_l, scale_l = delta.permute(2, 0, 1), (delta * u).permute(2, 0, 1)
    B_l, C_l = B.permute(2, 0, 1), C.permute(2, 0, 1)
    num_chunks = -(-length // CHUNK)
    checkpoints = u.new_empty(num_chunks, batch, inner, A.shape[1]) if keep_checkpoints else None
    states = u.new_empty(CHUNK + 1, batch, inner, A.shape[1])  # states[0]: the state entering the chunk
    states[0] = 0.0
    decay, drive = torch.empty_like(states[1:]), torch.empty_like(states[1:])
    outputs = u.new_empty(length, batch, inner, 1)
    for chunk, start in enumerate(range(0, length, CHUNK)):
        stop = min(length, start + CHUNK)
        size = stop - start
        if checkpoints is not None:
            checkpoints[chunk] = states[0]
        torch.mul(delta_l[start:stop].unsqueeze(-1), A, out=decay[:size]).exp_()
        torch.mul(scale_l[start:stop].unsqueeze(-1), B_l[start:stop].unsqueeze(2), out=drive[:size])
        for step in range(size):
            torch.addcmul(drive[step], decay[step], states[step], out=states[step + 1])
        torch.matmul(states[1 : size + 1], C_l[start:stop].unsqueeze(-1), out=outputs[start:stop])
        states[0] = states[size]
    return outputs.squeeze(-1).permute(1, 2, 0), checkpoints


def _chunk_scan_gradients_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, grad_y: Tensor,
                                checkpoints: Tensor) -> tuple[Tensor, ...]:
    """Gradients of the scan (see _SelectiveScan), chunk by chunk from the last: rebuild the chunk's states from
    its checkpoint, run the adjoint recurrence back through it, then form the chunk's gradients in batched calls."""
    batch, inner, length = u.shape
    delta_l, u_l = delta.permute(2, 0, 1), u.permute(2, 0, 1)
    scale_l = delta_l * u_l
    B_l, C_l, grad_y_l = B.permute(2, 0, 1), C.permute(2, 0, 1), grad_y.permute(2, 0, 1)
    buffer = (CHUNK + 1, batch, inner, A.shape[1])
    states, decay, adjoint = u.new_empty(buffer), u.new_empty(buffer), u.new_zeros(buffer)
    drive, decay_grad = u.new_empty(buffer[0] - 1, *buffer[1:]), u.new_empty(buffer[0] - 1, *buffer[1:])
    decay[CHUNK] = 1.0  # decay[CHUNK], adjoint[CHUNK]: a and g_h of the first position of the later chunk
    grad_scale, grad_delta = u.new_empty(length, batch, inner, 1), u.new_empty(length, batch, inner, 1)
    grad_B, grad_C = u.new_empty(length, batch, 1, A.shape[1]), u.new_empty(length, batch, 1, A.shape[1])
    grad_A = torch.zeros_like(A)
    for chunk in range(len(checkpoints) - 1, -1, -1):
        start = chunk * CHUNK
        stop = min(length, start + CHUNK)
        size = stop - start
        torch.mul(delta_l[start:stop].unsqueeze(-1), A, out=decay[:size]).exp_()
        torch.mul(scale_l[start:stop].unsqueeze(-1), B_l[start:stop].unsqueeze(2), out=drive[:size])
        states[0] = checkpoints[chunk]  # states[i + 1] = h at position start + i
        for step in range(size):
            torch.addcmul(drive[step], decay[step], states[step], out=states[step + 1])
        # g_h_l = g_y_l C_l + a_{l+1} g_h_{l+1}, the last position taking a and g_h from the later chunk
        torch.mul(grad_y_l[start:stop].unsqueeze(-1), C_l[start:stop].unsqueeze(2), out=adjoint[:size])
        adjoint[size - 1].addcmul_(decay[CHUNK], adjoint[CHUNK])
        for step in range(size - 2, -1, -1):
            adjoint[step].addcmul_(decay[step + 1], adjoint[step + 1])
        adjoint[CHUNK], decay[CHUNK] = adjoint[0], decay[0]
        grads = adjoint[:size]
        torch.matmul(grad_y_l[start:stop].unsqueeze(-2), states[1 : size + 1], out=grad_C[start:stop])
        torch.matmul(grads, B_l[start:stop].unsqueeze(-1), out=grad_scale[start:stop])
        torch.matmul(scale_l[start:stop].unsqueeze(-2), grads, out=grad_B[start:stop])
        torch.mul(grads, states[:size], out=decay_grad[:size]).mul_(decay[:size])  # g_a_l a_l
        grad_A += (decay_grad[:size] * delta_l[start:stop].unsqueeze(-1)).sum((0, 1))
        torch.sum(decay_grad[:size].mul_(A), -1, keepdim=True, out=grad_delta[start:stop])
    grad_scale, grad_delta = grad_scale.squeeze(-1), grad_delta.squeeze(-1)
    grad_delta += grad_scale * u_l
    return ((grad_scale * delta_l).permute(1, 2, 0), grad_delta.permute(1, 2, 0), grad_A,
            grad_B.squeeze(2).permute(1, 2, 0), grad_C.squeeze(2).permute(1, 2, 0))


class ScanReplay:
    """The recurrence of one scan, run once and differentiated later without running it again.

    `record` (a `core` for selective_scan_torch, without gradients) runs the chunk-sequential scan and keeps
    its outputs and chunk checkpoints; `replay` (the same `core`, in a recomputation with gradients) returns
    the kept outputs at no cost and differentiates them from the checkpoints. So a layer can recompute its
    cheap activations in backward instead of saving them, and the scan still runs once forward and once
    backward.
    """

    def __init__(self) -> None:
        self.outputs: Tensor | None = None
        self.checkpoints: Tensor | None = None

    def record(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
        self.outputs, self.checkpoints = _chunk_scan(u, delta, A, B, C, keep_checkpoints=True)
        return self.outputs

    def replay(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
        if self.outputs is None or self.checkpoints is None:
            raise RuntimeError("ScanReplay.replay before record")
        return _ReplayedScan.apply(u, delta, A, B, C, self.outputs, self.checkpoints)


class _ReplayedScan(torch.autograd.Function):
    """Recorded outputs as a differentiable function of the scan's inputs (see ScanReplay)."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,  # type: ignore[override]
                outputs: Tensor, checkpoints: Tensor) -> Tensor:
        ctx.save_for_backward(u, delta, A, B, C, checkpoints)
        return outputs

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        u, delta, A, B, C, checkpoints = ctx.saved_tensors
        with torch.autocast(u.device.type, enabled=False):
            return *_chunk_scan_gradients(u, delta, A, B, C, grad_y.to(u.dtype), checkpoints), None, None


def selective_scan(u: Tensor, *args, **kwargs) -> Tensor:
    """mamba-ssm's fused kernel where it applies (installed, u on CUDA), else the torch scan; same arguments."""
    kernel = selective_scan_kernel() if kernels_apply(u) else None
    if kernel is not None:
        return kernel(u, *args, **kwargs)
    return selective_scan_torch(u, *args, **kwargs)

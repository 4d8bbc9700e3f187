"""What lets the GPU kernel branches run on a CPU: the kernel packages' own reference code in place of their CUDA
entry points, behind the input contract the compiled kernels enforce.

- mamba-ssm: `selective_scan_fn` becomes the package's `selective_scan_ref`; causal-conv1d: `causal_conv1d_fn`
  becomes `causal_conv1d_ref`. Their compiled modules, which the packages import at load time, are empty
  placeholders: nothing reaches them once the entry points are swapped.
- flash-attn: its Python interface (qkv packing, head-dim padding, autograd) runs unchanged; the compiled module
  `flash_attn_2_cuda` it calls is stood in for by `varlen_fwd` / `varlen_bwd` written here with SDPA, to the
  documented semantics of the varlen call.

Every stand-in first checks what the CUDA kernel would reject (dtypes, shapes, layouts, sequence offsets), so a
call that would fail or silently misread memory on a GPU fails here too. Nothing here is package code: the fixtures
in tests/test_kernel_paths.py install it with monkeypatch.

The packages come from `.ci/install-kernel-references` (sdists built without CUDA).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def import_kernel_package(name: str) -> types.ModuleType:
    """Import an installed kernel package; skip (or, where CI demands them, fail) when it is missing."""
    if os.environ.get("MDLM_BIO_REQUIRE_KERNEL_REFERENCES") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is not installed; run .ci/install-kernel-references")


def stand_in_compiled_modules(monkeypatch: pytest.MonkeyPatch, modules: dict[str, types.ModuleType]) -> None:
    """Put stand-ins for compiled extension modules in sys.modules, unless real ones are importable."""
    for name, module in modules.items():
        if importlib.util.find_spec(name) is None:
            monkeypatch.setitem(sys.modules, name, module)


@dataclass
class CallLog:
    """Input shapes of every call that reached a stand-in, by entry point."""

    calls: dict[str, list[tuple[tuple[int, ...], ...]]] = field(default_factory=dict)
    flash_offsets: list[tuple[list[int], int]] = field(default_factory=list)  # (cu_seqlens, max_seqlen) per call

    def record(self, name: str, *tensors: Tensor) -> None:
        self.calls.setdefault(name, []).append(tuple(tuple(t.shape) for t in tensors))

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"the CUDA kernel would reject this call: {message}")


# ---------------------------------------------------------------- mamba-ssm selective scan


def checked_selective_scan(reference: Callable, log: CallLog) -> Callable:
    """`selective_scan_fn`'s signature; checks the kernel's input contract, then runs mamba-ssm's reference."""

    def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
        _require(u.dtype in KERNEL_INPUT_DTYPES, f"u dtype {u.dtype}")
        _require(delta.dtype == u.dtype, f"delta dtype {delta.dtype} != u dtype {u.dtype}")
        _require(A.dtype == torch.float32, f"A must be float32, not {A.dtype}")
        batch, dim, length = u.shape
        _require(delta.shape == u.shape, f"delta shape {tuple(delta.shape)} != u shape {tuple(u.shape)}")
        _require(A.shape[0] == dim and A.dim() == 2 and A.shape[1] <= 256, f"A shape {tuple(A.shape)}")
        for name, weight in (("B", B), ("C", C)):  # input-dependent ("variable") B and C, as Mamba uses them
            _require(weight.shape == (batch, A.shape[1], length), f"{name} shape {tuple(weight.shape)}")
            _require(weight.dtype == u.dtype, f"{name} dtype {weight.dtype} != u dtype {u.dtype}")
        for name, vector in (("D", D), ("delta_bias", delta_bias)):
            if vector is not None:
                _require(vector.dtype == torch.float32 and vector.shape == (dim,), f"{name} {vector.dtype} {tuple(vector.shape)}")
        if z is not None:
            _require(z.shape == u.shape and z.dtype == u.dtype, f"z {z.dtype} {tuple(z.shape)}")
        log.record("selective_scan", u, B)
        return reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    return selective_scan_fn


# ---------------------------------------------------------------- causal-conv1d


def checked_causal_conv1d(reference: Callable, log: CallLog) -> Callable:
    """`causal_conv1d_fn`'s signature (whose order differs from the reference's); checks, then runs the reference."""

    def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                         final_states_out=None, activation=None):
        _require(x.dtype in KERNEL_INPUT_DTYPES and weight.dtype in KERNEL_INPUT_DTYPES, f"{x.dtype}, {weight.dtype}")
        _require(x.dim() == 3 and weight.dim() == 2 and weight.shape[0] == x.shape[1],
                 f"x {tuple(x.shape)}, weight {tuple(weight.shape)}")
        _require(2 <= weight.shape[1] <= 4, f"width {weight.shape[1]} outside 2..4")
        _require(x.stride(2) == 1 or x.stride(1) == 1, f"x strides {x.stride()}")
        if bias is not None:
            _require(bias.dtype == weight.dtype and bias.shape == (x.shape[1],), f"bias {bias.dtype} {tuple(bias.shape)}")
        _require(activation in (None, "silu", "swish"), f"activation {activation!r}")
        log.record("causal_conv1d", x, weight)
        return reference(x, weight, bias, initial_states, return_final_states, final_states_out, activation, seq_idx)

    return causal_conv1d_fn


# ---------------------------------------------------------------- flash-attn's compiled module


def _check_varlen(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor, max_q: int, max_k: int) -> list[tuple[int, int]]:
    """The varlen contract: half-precision [total, heads, d] inputs, int32 offsets from 0 to total, max lengths
    that cover every sequence. Returns the (start, end) of each sequence."""
    _require(q.dtype in HALF_DTYPES and k.dtype == q.dtype and v.dtype == q.dtype, f"dtypes {q.dtype}, {k.dtype}, {v.dtype}")
    _require(q.dim() == 3 and k.shape == q.shape and v.shape == q.shape, f"shapes {tuple(q.shape)}")
    _require(all(t.stride(-1) == 1 for t in (q, k, v)), "inputs need a contiguous last dimension")
    _require(q.shape[-1] % 8 == 0 and q.shape[-1] <= 256, f"head size {q.shape[-1]}")
    _require(torch.equal(cu_q, cu_k), "this stand-in implements self-attention (cu_seqlens_q == cu_seqlens_k)")
    _require(cu_q.dtype == torch.int32 and cu_q.dim() == 1 and cu_q.is_contiguous() and cu_q.numel() >= 2,
             f"cu_seqlens {cu_q.dtype} {tuple(cu_q.shape)}")
    offsets = cu_q.tolist()
    lengths = [end - start for start, end in zip(offsets, offsets[1:])]
    _require(offsets[0] == 0 and offsets[-1] == q.shape[0], f"cu_seqlens {offsets} must run from 0 to {q.shape[0]}")
    _require(min(lengths) >= 0, f"cu_seqlens {offsets} must not decrease")
    _require(max(lengths) <= min(max_q, max_k), f"max_seqlen {max_q} below the longest sequence {max(lengths)}")
    return list(zip(offsets, offsets[1:]))


def _check_unused_features(dropout: float, window: tuple[int, int], softcap: float, *absent) -> None:
    _require(dropout == 0.0, "the stand-in has no dropout (MDLM's DiT calls flash-attn with dropout_p=0)")
    _require(window == (-1, -1) and softcap == 0.0, "no sliding window or softcap")
    _require(all(item is None for item in absent), "no alibi, paged KV, left padding or seqused_k")


def _attend(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tensor:
    """One sequence, [n, heads, d] each, in float32 -> [n, heads, d]."""
    q, k, v = (t.float().transpose(0, 1) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale).transpose(0, 1)


def _scores(q: Tensor, k: Tensor, causal: bool, scale: float) -> Tensor:
    """[heads, n, n] scaled dot products in float32, -inf above the diagonal when causal."""
    scores = torch.einsum("ihd,jhd->hij", q.float(), k.float()) * scale
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return scores


def _attention_backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> tuple[Tensor, ...]:
    """Gradients of one sequence's attention in closed form (a kernel runs below autograd, so none is recorded):
    dV = P^T dO, dS = P * (dO V^T - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q."""
    probabilities = _scores(q, k, causal, scale).softmax(-1)
    dout, q, k, v = (t.float() for t in (dout, q, k, v))
    out = torch.einsum("hij,jhd->ihd", probabilities, v)
    dv = torch.einsum("hij,ihd->jhd", probabilities, dout)
    dp = torch.einsum("ihd,jhd->hij", dout, v)
    ds = probabilities * (dp - (dout * out).sum(-1).transpose(0, 1)[..., None])
    return torch.einsum("hij,jhd->ihd", ds, k) * scale, torch.einsum("hij,ihd->jhd", ds, q) * scale, dv


def flash_attn_compiled_standin(log: CallLog) -> types.ModuleType:
    """A stand-in for `flash_attn_2_cuda` with the two entry points the varlen qkv-packed function reaches."""

    def varlen_fwd(q, k, v, out, cu_seqlens_q, cu_seqlens_k, seqused_k, leftpad_k, block_table, alibi_slopes,
                   max_seqlen_q, max_seqlen_k, p_dropout, softmax_scale, zero_tensors, is_causal, window_size_left,
                   window_size_right, softcap, return_softmax, gen):
        spans = _check_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
        _check_unused_features(p_dropout, (window_size_left, window_size_right), softcap, alibi_slopes, block_table,
                               leftpad_k, seqused_k, out)
        log.record("flash_varlen_fwd", q, cu_seqlens_q)
        log.flash_offsets.append((cu_seqlens_q.tolist(), max_seqlen_q))
        result = torch.empty_like(q)
        logsumexp = torch.empty(q.shape[1], q.shape[0], dtype=torch.float32)
        for start, end in spans:
            result[start:end] = _attend(q[start:end], k[start:end], v[start:end], is_causal, softmax_scale).to(q.dtype)
            logsumexp[:, start:end] = _scores(q[start:end], k[start:end], is_causal, softmax_scale).logsumexp(-1)
        return result, logsumexp, q.new_empty(0), torch.zeros(2, dtype=torch.int64)

    def varlen_bwd(dout, q, k, v, out, softmax_lse, dq, dk, dv, cu_seqlens_q, cu_seqlens_k, alibi_slopes,
                   max_seqlen_q, max_seqlen_k, p_dropout, softmax_scale, zero_tensors, is_causal, window_size_left,
                   window_size_right, softcap, deterministic, gen, rng_state):
        spans = _check_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
        _check_unused_features(p_dropout, (window_size_left, window_size_right), softcap, alibi_slopes)
        _require(dout.shape == q.shape and dout.dtype == q.dtype, f"dout {dout.dtype} {tuple(dout.shape)}")
        log.record("flash_varlen_bwd", dout)
        for start, end in spans:
            grads = _attention_backward(*(t[start:end] for t in (dout, q, k, v)), is_causal, softmax_scale)
            for target, grad in zip((dq, dk, dv), grads):
                target[start:end] = grad.to(target.dtype)
        softmax_d = (dout.float() * out.float()).sum(-1).transpose(0, 1).contiguous()
        return dq, dk, dv, softmax_d

    def not_stood_in(*_args, **_kwargs):
        raise NotImplementedError("the flash-attn stand-in implements only the varlen calls the project makes")

    module = types.ModuleType("flash_attn_2_cuda")
    module.varlen_fwd, module.varlen_bwd = varlen_fwd, varlen_bwd
    module.fwd = module.bwd = module.fwd_kvcache = not_stood_in
    return module


def allow_flash_ops_on_cpu(interface: types.ModuleType) -> None:
    """flash-attn registers its Python wrappers as torch custom ops for CUDA only (on torch versions it
    recognises as >= 2.4); register the same Python functions for CPU so the stand-in is reached."""
    for name in ("_flash_attn_varlen_forward", "_flash_attn_varlen_backward"):
        op = getattr(interface, name)
        if hasattr(op, "register_kernel"):
            op.register_kernel("cpu")(op._init_fn)

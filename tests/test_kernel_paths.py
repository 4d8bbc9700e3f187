"""The GPU kernel branches, run on a CPU through the kernel packages' own code (tests/kernel_standins.py).

Each test drives exactly the call a backbone makes on a GPU (mamba-ssm's selective scan, causal-conv1d, flash-attn's
varlen qkv-packed attention) and compares outputs and gradients with the backbone's pure-torch path.
"""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest
import torch
from kernel_standins import (
    CallLog,
    allow_flash_ops_on_cpu,
    checked_causal_conv1d,
    checked_selective_scan,
    flash_attn_compiled_standin,
    import_kernel_package,
    stand_in_compiled_modules,
)
from test_scan import scan_inputs

from mdlm_bio.backbones import Caduceus, kernels
from mdlm_bio.backbones.dit import DiT
from mdlm_bio.backbones.mamba import Mamba
from mdlm_bio.backbones.scan import selective_scan, selective_scan_torch
from mdlm_bio.dna.tokenizer import COMPLEMENT_MAP, VOCAB_SIZE

PAD_ID = 0


def widen_kernels_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "KERNEL_DEVICE_TYPES", frozenset({"cuda", "cpu"}))
    kernels.forget_imports()


@pytest.fixture
def mamba_kernels(monkeypatch) -> CallLog:
    """mamba-ssm and causal-conv1d with their CUDA entry points replaced by the packages' reference functions."""
    log = CallLog()
    placeholders = {name: types.ModuleType(name) for name in ("selective_scan_cuda", "causal_conv1d_cuda")}
    stand_in_compiled_modules(monkeypatch, placeholders)
    interface = import_kernel_package("mamba_ssm.ops.selective_scan_interface")
    conv = import_kernel_package("causal_conv1d")
    reference_conv = import_kernel_package("causal_conv1d.causal_conv1d_interface").causal_conv1d_ref
    monkeypatch.setattr(interface, "selective_scan_fn", checked_selective_scan(interface.selective_scan_ref, log))
    monkeypatch.setattr(conv, "causal_conv1d_fn", checked_causal_conv1d(reference_conv, log))
    widen_kernels_to_cpu(monkeypatch)
    yield log
    kernels.forget_imports()


@pytest.fixture
def flash_kernels(monkeypatch) -> CallLog:
    """flash-attn's Python interface over a stand-in for its compiled module."""
    log = CallLog()
    standin = flash_attn_compiled_standin(log)
    stand_in_compiled_modules(monkeypatch, {"flash_attn_2_cuda": standin})
    interface = import_kernel_package("flash_attn.flash_attn_interface")
    monkeypatch.setattr(interface, "flash_attn_gpu", standin)  # the interface binds the module at first import
    allow_flash_ops_on_cpu(interface)
    widen_kernels_to_cpu(monkeypatch)
    yield log
    kernels.forget_imports()


def torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure-torch branch even where kernels apply, the switch a user has on a GPU."""
    monkeypatch.setenv("MDLM_BIO_KERNELS", "off")


def perturbed(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Random weights everywhere: zero-initialised gates and heads would hide the layers under test."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model


def logits_and_gradients(model: torch.nn.Module, tokens: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    weights = torch.randn(*tokens.shape, model_vocab(model), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(tokens, None)
    (logits.float() * weights).sum().backward()
    return logits.detach().float(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def model_vocab(model: torch.nn.Module) -> int:
    return model.output_layer.linear.out_features if isinstance(model, DiT) else model.embedding.num_embeddings


def assert_paths_agree(kernel_result, torch_result, tolerance: float, elementwise: bool) -> None:
    """Logits and every parameter's gradient: elementwise against each tensor's own scale (float32), or as the
    relative norm of the difference (bf16, where the two paths round differently but any real error is large)."""
    (kernel_logits, kernel_grads), (torch_logits, torch_grads) = kernel_result, torch_result
    assert kernel_grads.keys() == torch_grads.keys()
    for name, actual, expected in [("logits", kernel_logits, torch_logits),
                                   *((f"gradient of {n}", kernel_grads[n], g) for n, g in torch_grads.items())]:
        if elementwise:
            torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * expected.abs().max(),
                                       msg=lambda message, name=name: f"{name}: {message}")
        else:
            error = float((actual - expected).norm() / expected.norm().clamp_min(1e-12))
            assert error <= tolerance, f"{name}: relative error {error:.2e} above {tolerance:.0e}"


# ---------------------------------------------------------------- mamba-ssm and causal-conv1d


def caduceus(rcps: bool) -> Caduceus:
    torch.manual_seed(0)
    model = Caduceus(VOCAB_SIZE, COMPLEMENT_MAP, d_model=16, n_layer=2, rcps=rcps, bidirectional=rcps, d_state=8)
    return perturbed(model)


@pytest.mark.parametrize("autocast, tolerance", [(False, 1e-5), (True, 5e-2)], ids=["float32", "bf16-autocast"])
@pytest.mark.parametrize("batch, length", [(3, 37), (1, 64), (2, 1)], ids=["odd-length", "batch-1", "length-1"])
def test_caduceus_ps_kernel_branch_matches_torch_scan(mamba_kernels, monkeypatch, batch, length, autocast, tolerance):
    model = caduceus(rcps=True)
    tokens = torch.randint(0, 16, (batch, length), generator=torch.Generator().manual_seed(length))
    kernel_result = logits_and_gradients(model, tokens, autocast)
    # Two strands batched into one call, two directions per layer: every mixer call went through the kernels.
    layers = len(model.layers)
    assert mamba_kernels.count("selective_scan") == mamba_kernels.count("causal_conv1d") == 2 * layers
    assert all(u_shape[0] == 2 * batch for u_shape, _ in mamba_kernels.calls["selective_scan"])
    torch_path(monkeypatch)
    assert_paths_agree(kernel_result, logits_and_gradients(model, tokens, autocast), tolerance, not autocast)
    assert mamba_kernels.count("selective_scan") == 2 * layers  # the torch path made no kernel call


def test_causal_mamba_lm_kernel_branch_matches_torch_scan(mamba_kernels, monkeypatch):
    model = caduceus(rcps=False)
    tokens = torch.randint(0, 16, (2, 29), generator=torch.Generator().manual_seed(0))
    kernel_result = logits_and_gradients(model, tokens, autocast=False)
    assert mamba_kernels.count("selective_scan") == len(model.layers)
    torch_path(monkeypatch)
    assert_paths_agree(kernel_result, logits_and_gradients(model, tokens, autocast=False), 1e-5, elementwise=True)


def test_mamba_kernel_branch_takes_non_contiguous_input(mamba_kernels, monkeypatch):
    torch.manual_seed(0)
    mixer = perturbed(Mamba(d_model=12, d_state=4))
    hidden = torch.randn(21, 3, 12).transpose(0, 1)  # [B, L, D] view with batch stride 12
    assert not hidden.is_contiguous()
    kernel_out = mixer(hidden)
    torch_path(monkeypatch)
    torch.testing.assert_close(kernel_out, mixer(hidden.contiguous()), rtol=1e-5, atol=1e-6)
    assert mamba_kernels.count("selective_scan") == 1


def test_selective_scan_dispatch_passes_strided_arguments_the_kernel_accepts(mamba_kernels, monkeypatch):
    args = {k: v.float() for k, v in scan_inputs(batch=3, inner=6, state=4, length=33).items()}
    # Length-major storage, viewed as [B, E, L]: strides the kernel's wrapper must make contiguous itself.
    strided = {k: (v.transpose(-1, -2).contiguous().transpose(-1, -2) if v.dim() == 3 else v) for k, v in args.items()}
    assert not strided["u"].is_contiguous()
    for value in strided.values():
        value.requires_grad_()
    kernel_out = selective_scan(**strided, delta_softplus=True)
    kernel_grads = torch.autograd.grad(kernel_out.sum(), list(strided.values()))
    torch_out = selective_scan_torch(**strided, delta_softplus=True)
    torch_grads = torch.autograd.grad(torch_out.sum(), list(strided.values()))
    torch.testing.assert_close(kernel_out, torch_out, rtol=1e-5, atol=1e-5)
    for name, kernel_grad, torch_grad in zip(strided, kernel_grads, torch_grads):
        torch.testing.assert_close(kernel_grad, torch_grad, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
    assert mamba_kernels.count("selective_scan") == 1


def test_block_diffusion_on_mamba_takes_the_kernels_for_every_scan_from_zero(mamba_kernels, monkeypatch):
    """On CUDA, Mamba block diffusion scans with the kernel wherever a scan starts from zero (the clean sequence,
    both directions within blocks, each noisy block's forward scan before its start state's correction); the start
    states enter through the torch correction (scan_state.py), since selective_scan_fn takes none. Logits and
    gradients agree with the pure-torch path."""
    torch.manual_seed(0)
    model = perturbed(Caduceus(VOCAB_SIZE, COMPLEMENT_MAP, d_model=16, n_layer=2, rcps=False, d_state=8))
    clean = torch.randint(7, 11, (2, 22), generator=torch.Generator().manual_seed(0))
    noisy = clean.masked_fill(torch.rand(clean.shape, generator=torch.Generator().manual_seed(1)) < 0.5, 3)
    weights = torch.randn(2, 22, VOCAB_SIZE, generator=torch.Generator().manual_seed(2))

    def logits_and_gradients() -> tuple[torch.Tensor, dict]:
        model.zero_grad(set_to_none=True)
        logits = model.block_logits(noisy, clean, 4)
        (logits * weights).sum().backward()
        return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    kernel_result = logits_and_gradients()
    # per layer: the clean forward scan, the clean and the noisy backward scans of the 5 whole blocks and of the
    # partial one, and the noisy forward scans of the whole blocks and of the partial one
    assert mamba_kernels.count("selective_scan") == 7 * len(model.layers)
    torch_path(monkeypatch)
    assert_paths_agree(kernel_result, logits_and_gradients(), 1e-5, elementwise=True)


def test_kernels_off_keeps_the_torch_path(mamba_kernels, monkeypatch):
    torch_path(monkeypatch)
    caduceus(rcps=True)(torch.zeros(1, 8, dtype=torch.long))
    assert mamba_kernels.calls == {}


# ---------------------------------------------------------------- flash-attn


def test_flash_standin_implements_varlen_semantics(flash_kernels):
    """The stand-in itself, on sequences of different lengths, against attention computed one sequence at a time."""
    from flash_attn import flash_attn_varlen_qkvpacked_func

    lengths = [5, 12, 1, 9]
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    qkv = torch.randn(sum(lengths), 3, 2, 16, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for causal in (False, True):
        packed = qkv.clone().requires_grad_()
        out = flash_attn_varlen_qkvpacked_func(packed, offsets, max(lengths), causal=causal)
        (grad,) = torch.autograd.grad(out.float().square().sum(), packed)
        for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            single = qkv[start:end].float().requires_grad_()
            q, k, v = single.permute(1, 2, 0, 3)
            scores = (q @ k.transpose(-1, -2)) / 4.0
            if causal:
                scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
            expected = (scores.softmax(-1) @ v).transpose(0, 1)
            (expected_grad,) = torch.autograd.grad(expected.square().sum(), single)
            torch.testing.assert_close(out[start:end].float(), expected, rtol=2e-2, atol=2e-2)
            torch.testing.assert_close(grad[start:end].float(), expected_grad, rtol=5e-2, atol=5e-2)


def test_flash_standin_rejects_offsets_that_miss_the_end(flash_kernels):
    from flash_attn import flash_attn_varlen_qkvpacked_func

    qkv = torch.randn(10, 3, 2, 8).to(torch.bfloat16)
    with pytest.raises(AssertionError, match=r"cu_seqlens \[0, 5, 9\] must run from 0 to 10"):
        flash_attn_varlen_qkvpacked_func(qkv, torch.tensor([0, 5, 9], dtype=torch.int32), 5)


def dit(causal: bool) -> DiT:
    torch.manual_seed(0)
    model = DiT(vocab_size=40, hidden_size=64, cond_dim=32, n_blocks=2, n_heads=4, dropout=0.0, causal=causal)
    return perturbed(model.train())


def padded_batch() -> torch.Tensor:
    """Rows of 24, 17 and 9 real tokens, padded to 24: the DiT attends over padding too, as MDLM's does."""
    tokens = torch.randint(1, 40, (3, 24), generator=torch.Generator().manual_seed(0))
    for row, length in enumerate((24, 17, 9)):
        tokens[row, length:] = PAD_ID
    return tokens


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_dit_flash_branch_matches_sdpa(flash_kernels, monkeypatch, causal):
    model, tokens = dit(causal), padded_batch()
    kernel_result = logits_and_gradients(model, tokens, autocast=True)
    assert flash_kernels.count("flash_varlen_fwd") == flash_kernels.count("flash_varlen_bwd") == len(model.blocks)
    # One sequence per row: offsets 0, L, 2L, 3L and the row length as the maximum.
    assert flash_kernels.flash_offsets == [([0, 24, 48, 72], 24)] * len(model.blocks)
    torch_path(monkeypatch)
    assert_paths_agree(kernel_result, logits_and_gradients(model, tokens, autocast=True), 2e-2, elementwise=False)
    assert flash_kernels.count("flash_varlen_fwd") == len(model.blocks)


def test_dit_keeps_sdpa_in_float32(flash_kernels):
    """flash-attn has no float32 kernel: without autocast the DiT must not call it."""
    dit(causal=False)(padded_batch(), None)
    assert flash_kernels.calls == {}


def test_gpu_acceptance_kernel_checks_pass_through_the_standins(mamba_kernels, flash_kernels, tmp_path, monkeypatch):
    """bench/gpu_acceptance.py's kernel checks, at toy sizes on the CPU: the day a GPU is lent they must just run."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    acceptance = importlib.import_module("gpu_acceptance")
    context = acceptance.Context("cpu", acceptance.CPU_SIZES, tmp_path, max_length=256)
    rows = acceptance.check_flash_attention(context) + acceptance.check_mamba_kernels(context)
    assert [row["status"] for row in rows] == ["pass"] * 5, [row["detail"] for row in rows]
    assert rows[0]["kernel_calls"] == {"flash_attn_varlen_qkvpacked_func": 2}  # dit-tiny's two blocks
    assert rows[-1]["kernel_calls"]["selective_scan_fn"] > 0 and rows[-1]["kernel_calls"]["causal_conv1d_fn"] > 0

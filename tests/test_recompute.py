"""Mixers that recompute their activations in backward and replay their scans: the same values and gradients
as plain autograd, under float64 and bf16 autocast, with far less saved."""

from __future__ import annotations

import pytest
import torch

from mdlm_bio.backbones import mamba as mamba_module
from mdlm_bio.backbones import scan as scan_module
from mdlm_bio.backbones.mamba import BiMamba, Mamba
from mdlm_bio.backbones.scan import ScanReplay


@pytest.fixture(params=["compiled scan", "torch scan"])
def chunk_sequential(request, monkeypatch):
    """Mixers recompute whatever their size (as at real sizes), and every differentiated scan takes the
    chunk-sequential path, compiled or in torch."""
    monkeypatch.setattr(mamba_module, "RECOMPUTE_FROM_BYTES", 0)
    monkeypatch.setattr(scan_module, "MATERIALISE_BELOW_TRAINING", 0)
    if request.param == "torch scan":
        monkeypatch.setenv("MDLM_BIO_NATIVE_SCAN", "off")


def mixers() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"mamba": Mamba(8, d_state=4), "bimamba tied": BiMamba(8, weight_tie=True, d_state=4),
            "bimamba untied": BiMamba(8, weight_tie=False, d_state=4)}


def outputs_and_gradients(module: torch.nn.Module, hidden: torch.Tensor) -> list[torch.Tensor]:
    leaf = hidden.clone().requires_grad_()
    out = module(leaf)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grads = torch.autograd.grad((out * weights).sum(), [leaf, *module.parameters()])
    return [out.detach(), *grads]


@pytest.mark.parametrize("name", ["mamba", "bimamba tied", "bimamba untied"])
def test_recomputed_mixer_matches_plain_autograd_float64(name, chunk_sequential, monkeypatch):
    module = mixers()[name].double()
    hidden = torch.randn(3, 45, 8, dtype=torch.float64)  # a partial second chunk
    assert mamba_module.recomputes(module.mamba_fwd if name.startswith("bi") else module, hidden)
    recomputed = outputs_and_gradients(module, hidden)
    monkeypatch.setattr(mamba_module, "recomputes", lambda *args: False)
    plain = outputs_and_gradients(module, hidden)
    for got, want in zip(recomputed, plain, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_recomputed_mixer_under_bf16_autocast_matches_plain(chunk_sequential, monkeypatch):
    """Backward recomputes under the autocast setting of the forward pass, so bf16 rounding is the same."""
    module, hidden = mixers()["bimamba tied"], torch.randn(2, 40, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recomputed = outputs_and_gradients(module, hidden)
        monkeypatch.setattr(mamba_module, "recomputes", lambda *args: False)
        plain = outputs_and_gradients(module, hidden)
    for got, want in zip(recomputed, plain, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def saved_bytes(module: torch.nn.Module, hidden: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(hidden.requires_grad_())
    return sum(storages.values())


def test_recomputing_bimamba_saves_its_input_and_the_scans_outputs_only(chunk_sequential, monkeypatch):
    module, hidden = mixers()["bimamba tied"], torch.randn(2, 64, 8)
    recomputed = saved_bytes(module, hidden)
    inner, state, chunks = module.mamba_fwd.d_inner, module.mamba_fwd.d_state, 64 // scan_module.CHUNK
    per_direction = 2 * inner * 64 * 4 + chunks * 2 * inner * state * 4  # outputs and chunk checkpoints
    assert recomputed == hidden.numel() * 4 + 2 * per_direction
    monkeypatch.setattr(mamba_module, "recomputes", lambda *args: False)
    assert recomputed < 0.4 * saved_bytes(module, hidden)


def test_only_training_with_large_activations_recomputes():
    module = Mamba(32)  # d_inner 64: 12 saved [B, 64, L] float32 activations weigh 3 KiB per sequence position
    assert not mamba_module.recomputes(module, torch.randn(16, 128, 32))  # the demo's batch: 6 MiB
    assert mamba_module.recomputes(module, torch.randn(16, 1024, 32))  # 48 MiB
    with torch.no_grad():
        assert not mamba_module.recomputes(module, torch.randn(16, 1024, 32))


def test_only_mamba_ssms_fused_kernel_turns_recomputation_off(monkeypatch):
    """On a GPU without mamba-ssm the torch scan runs, and recomputes as on the CPU."""
    module, hidden = Mamba(32), torch.randn(16, 1024, 32)
    monkeypatch.setattr(mamba_module, "kernels_apply", lambda tensor: True)
    monkeypatch.setattr(mamba_module, "selective_scan_kernel", lambda: None)
    assert mamba_module.recomputes(module, hidden)
    monkeypatch.setattr(mamba_module, "selective_scan_kernel", lambda: object())
    assert not mamba_module.recomputes(module, hidden)


def test_scan_replay_refuses_to_replay_what_it_never_recorded():
    with pytest.raises(RuntimeError, match="ScanReplay.replay before record"):
        ScanReplay().replay(*(torch.zeros(1) for _ in range(5)))


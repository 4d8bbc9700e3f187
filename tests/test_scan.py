"""The chunked selective scan against a naive sequential float64 scan, values and gradients."""

from __future__ import annotations

import os

import pytest
import torch
from reference_models import naive_selective_scan

from mdlm_bio.backbones import scan as scan_module
from mdlm_bio.backbones import scan_native
from mdlm_bio.backbones.scan import linear_recurrence, selective_scan, selective_scan_torch


def sequential_recurrence(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    state, states = torch.zeros_like(inputs[0]), []
    for a, x in zip(decay, inputs):
        state = a * state + x
        states.append(state)
    return torch.stack(states)


def scan_inputs(batch=2, inner=5, state=4, length=70, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        u=torch.randn(batch, inner, length, generator=g, dtype=dtype),
        delta=torch.randn(batch, inner, length, generator=g, dtype=dtype),
        A=-torch.rand(inner, state, generator=g, dtype=dtype) * 4,
        B=torch.randn(batch, state, length, generator=g, dtype=dtype),
        C=torch.randn(batch, state, length, generator=g, dtype=dtype),
        D=torch.randn(inner, generator=g, dtype=dtype),
        z=torch.randn(batch, inner, length, generator=g, dtype=dtype),
        delta_bias=torch.randn(inner, generator=g, dtype=dtype),
    )


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("length", [1, 31, 32, 33, 100, 1025, 2500])
def test_linear_recurrence_matches_sequential_loop(length, reverse):
    g = torch.Generator().manual_seed(length)
    decay = torch.rand(length, 3, 2, generator=g, dtype=torch.float64)
    inputs = torch.randn(length, 3, 2, generator=g, dtype=torch.float64)
    if reverse:
        expected = sequential_recurrence(decay.flip(0), inputs.flip(0)).flip(0)
    else:
        expected = sequential_recurrence(decay, inputs)
    actual = linear_recurrence(decay, inputs, reverse=reverse)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)


def force_path(monkeypatch, path: str) -> None:
    """Make selective_scan_torch take one path whatever the shape: the compiled scan, or the torch scan that
    never or always materialises the states."""
    if path == "compiled":
        if not scan_native.applies(torch.zeros(1, 1, 1), torch.zeros(1, 1)):
            if os.environ.get("MDLM_BIO_REQUIRE_NATIVE_SCAN"):
                pytest.fail("the compiled selective scan did not build (MDLM_BIO_REQUIRE_NATIVE_SCAN is set)")
            pytest.skip("the compiled selective scan did not build here (no C compiler, OpenMP or libmvec)")
        return
    monkeypatch.setenv("MDLM_BIO_NATIVE_SCAN", "off")
    threshold = 2**62 if path == "materialised" else 0
    monkeypatch.setattr(scan_module, "MATERIALISE_BELOW_INFERENCE", threshold)
    monkeypatch.setattr(scan_module, "MATERIALISE_BELOW_TRAINING", threshold)
    monkeypatch.setattr(scan_module, "MATERIALISED_STATE_BYTES", 2**62)


PATHS = ["compiled", "chunk-sequential", "materialised"]


@pytest.mark.parametrize("path", PATHS)
def test_selective_scan_gradients_pass_gradcheck(path, monkeypatch):
    """The hand-written backward against finite differences (gradcheck also runs backward twice on one graph)."""
    force_path(monkeypatch, path)
    args = {k: v.requires_grad_() for k, v in scan_inputs(batch=2, inner=3, state=2, length=37).items()}
    assert torch.autograd.gradcheck(lambda *xs: selective_scan_torch(*xs, delta_softplus=True), tuple(args.values()))


@pytest.mark.parametrize("grad", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [7, 64, 300])
def test_selective_scan_matches_naive_float64(length, path, grad, monkeypatch):
    force_path(monkeypatch, path)
    args = scan_inputs(length=length)
    expected = naive_selective_scan(**args)
    args["u"].requires_grad_(grad)
    actual = selective_scan_torch(**args, delta_softplus=True)
    assert actual.requires_grad == grad
    torch.testing.assert_close(actual.detach(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [40, 96])
def test_selective_scan_gradients_match_naive_float64(path, length, monkeypatch):
    """Both backward paths, over partial and whole chunks, and again on the same graph (retain_graph)."""
    force_path(monkeypatch, path)
    args = {k: v.requires_grad_() for k, v in scan_inputs(length=length).items()}
    weights = torch.randn(2, 5, length, dtype=torch.float64)
    expected = torch.autograd.grad((naive_selective_scan(**args) * weights).sum(), list(args.values()))
    loss = (selective_scan_torch(**args, delta_softplus=True) * weights).sum()
    for _ in range(2):
        actual = torch.autograd.grad(loss, list(args.values()), retain_graph=True)
        for name, a, e in zip(args, actual, expected):
            torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")


def test_path_choice_follows_state_size(monkeypatch):
    """Tiny states per position materialise; wide ones, or too many positions, step through chunks."""
    monkeypatch.setenv("MDLM_BIO_NATIVE_SCAN", "off")
    u, A = torch.zeros(2, 64, 256), torch.zeros(64, 8)  # 1024 state elements per position
    assert scan_module._materialises(u, A, scan_module.MATERIALISE_BELOW_INFERENCE)
    assert not scan_module._materialises(torch.zeros(32, 64, 256), A, scan_module.MATERIALISE_BELOW_INFERENCE)
    assert not scan_module._materialises(torch.zeros(2, 64, 8192), A, scan_module.MATERIALISE_BELOW_INFERENCE)


def test_selective_scan_keeps_input_dtype_but_computes_in_float32():
    args = {k: v.to(torch.bfloat16) for k, v in scan_inputs(length=50).items()}
    reference = naive_selective_scan(**{k: v.double() for k, v in args.items()})
    out = selective_scan_torch(**args, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference, rtol=2e-2, atol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and mamba-ssm")
def test_mamba_ssm_kernel_matches_torch_scan():
    pytest.importorskip("mamba_ssm")
    args = {k: v.float().cuda() for k, v in scan_inputs(length=512).items()}
    torch.testing.assert_close(
        selective_scan(**args, delta_softplus=True), selective_scan_torch(**args, delta_softplus=True), rtol=1e-3, atol=1e-3
    )


def test_compiled_scan_falls_back_to_torch_with_one_warning_when_it_cannot_build(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    scan_native._library.cache_clear()
    try:
        args = scan_inputs(length=40)
        with pytest.warns(RuntimeWarning, match="compiled selective scan is unavailable.*no C compiler"):
            assert not scan_native.applies(args["u"], args["A"])
        torch.testing.assert_close(selective_scan_torch(**args, delta_softplus=True), naive_selective_scan(**args),
                                   rtol=1e-10, atol=1e-10)
    finally:
        scan_native._library.cache_clear()


def test_compiled_scan_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("MDLM_BIO_NATIVE_SCAN", "off")
    assert not scan_native.applies(torch.zeros(1, 1, 1), torch.zeros(1, 1))


def test_compiled_scan_leaves_wide_states_and_other_dtypes_to_torch():
    assert not scan_native.applies(torch.zeros(1, 1, 1), torch.zeros(1, scan_native.MAX_STATE + 1))
    assert not scan_native.applies(torch.zeros(1, 1, 1, dtype=torch.bfloat16), torch.zeros(1, 1))


def test_compiled_scan_builds_into_an_empty_cache_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    scan_native._library.cache_clear()
    try:
        force_path(monkeypatch, "compiled")  # skips (or fails under MDLM_BIO_REQUIRE_NATIVE_SCAN) if it cannot build
        built = list((tmp_path / "mdlm-bio" / "native").glob("selective_scan-*.so"))
        assert len(built) == 1 and scan_native._build() == built[0]  # a second build finds it
    finally:
        scan_native._library.cache_clear()


def test_compiled_and_torch_scans_keep_the_same_chunk_checkpoints(monkeypatch):
    """One CHUNK and one layout: either scan's checkpoints serve the other's backward."""
    force_path(monkeypatch, "compiled")
    args = scan_inputs(length=100)
    core = [args[k] for k in ("u", "delta", "A", "B", "C")]
    compiled = scan_native.chunk_scan(*core, keep_checkpoints=True)[1]
    in_torch = scan_module._chunk_scan_torch(*core, keep_checkpoints=True)[1]
    torch.testing.assert_close(compiled, in_torch, rtol=1e-12, atol=1e-12)

"""The selective scan's state (block diffusion on Mamba, issue 30): a scan started from a given state, and the
states after each block of a scan from zero, against a naive float64 loop on every scan path, with gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_scan import PATHS, force_path, scan_inputs

from mdlm_bio.backbones import scan_state
from mdlm_bio.backbones.mamba import Mamba
from mdlm_bio.backbones.scan_state import selective_scan_from, states_after_blocks, step_sizes


def naive_scan_states(u, delta, A, B, C, D, z, delta_bias, h0=None):
    """Outputs [B, E, L] and every state [B, E, L, N], position by position, from h0 (or zero)."""
    delta = F.softplus(delta + delta_bias[:, None])
    state = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype) if h0 is None else h0
    outputs, states = [], []
    for pos in range(u.shape[-1]):
        step = delta[..., pos, None]
        state = torch.exp(step * A) * state + step * B[:, None, :, pos] * u[..., pos, None]
        outputs.append((state * C[:, None, :, pos]).sum(-1) + D * u[..., pos])
        states.append(state)
    return torch.stack(outputs, dim=-1) * F.silu(z), torch.stack(states, dim=2)


def start_state(seed: int = 5) -> torch.Tensor:
    return torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [7, 64, 150])
def test_a_scan_from_a_state_is_the_sequential_scan_from_it(path, length, monkeypatch):
    force_path(monkeypatch, path)
    args, h0 = scan_inputs(length=length), start_state()
    expected, _ = naive_scan_states(**args, h0=h0)
    actual = selective_scan_from(**args, h0=h0, delta_softplus=True)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_the_start_state_gets_its_gradient():
    args = {key: value.requires_grad_() for key, value in scan_inputs(length=20).items()}
    h0 = start_state().requires_grad_()
    weights = torch.randn(2, 5, 20, dtype=torch.float64)
    inputs = [*args.values(), h0]
    expected = torch.autograd.grad((naive_scan_states(**args, h0=h0)[0] * weights).sum(), inputs)
    actual = torch.autograd.grad((selective_scan_from(**args, h0=h0, delta_softplus=True) * weights).sum(), inputs)
    for name, a, e in zip([*args, "h0"], actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("start", [False, True], ids=["from zero", "from a state"])
@pytest.mark.parametrize("block", [1, 4, 16, 48])
def test_states_after_blocks_are_the_sequential_scans_states_at_block_ends(block, start):
    args = scan_inputs(length=48)
    h0 = start_state() if start else None
    _, states = naive_scan_states(**args, h0=h0)
    delta = step_sizes(args["delta"], args["delta_bias"], True)
    actual = states_after_blocks(args["u"], delta, args["A"], args["B"], block, h0)
    torch.testing.assert_close(actual, states[:, :, block - 1 :: block], rtol=1e-10, atol=1e-10)


def test_block_end_states_get_gradients_to_every_input():
    args = {key: value.requires_grad_() for key, value in scan_inputs(length=24).items()}
    h0 = start_state().requires_grad_()
    weights = torch.randn(2, 5, 6, 4, dtype=torch.float64)
    inputs = [args["u"], args["delta"], args["A"], args["B"], args["delta_bias"], h0]
    expected = torch.autograd.grad((naive_scan_states(**args, h0=h0)[1][:, :, 3::4] * weights).sum(), inputs)
    delta = step_sizes(args["delta"], args["delta_bias"], True)
    actual = torch.autograd.grad((states_after_blocks(args["u"], delta, args["A"], args["B"], 4, h0) * weights).sum(),
                                 inputs)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9)


def test_a_block_that_does_not_divide_the_length_is_refused():
    args = scan_inputs(length=10)
    with pytest.raises(ValueError, match=r"block \(4\) must divide the length \(10\)"):
        states_after_blocks(args["u"], args["delta"], args["A"], args["B"], 4)


def test_a_mixer_fed_in_pieces_from_carried_states_mixes_as_the_whole():
    """Mamba.mix_from_state: pieces of 11, 14 and 5 positions, each from the state the last one left, give the
    whole sequence's outputs (the convolution's look-back crosses the piece boundaries), with the same gradients."""
    torch.manual_seed(0)
    mamba = Mamba(16, d_state=4).double()
    xz = torch.randn(2, 30, 2 * mamba.d_inner, dtype=torch.float64, requires_grad=True)
    whole = mamba.mix(xz)
    pieces, state = [], None
    for begin, end in ((0, 11), (11, 25), (25, 30)):
        out, state = mamba.mix_from_state(xz[:, begin:end], state)
        pieces.append(out)
    joined = torch.cat(pieces, dim=1)
    torch.testing.assert_close(joined, whole, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(whole)
    parameters = [xz, mamba.conv1d.weight, mamba.conv1d.bias, mamba.x_proj.weight, mamba.dt_proj.weight,
                  mamba.dt_proj.bias, mamba.A_log, mamba.D]  # what mixing reads (not the projections around it)
    expected = torch.autograd.grad((whole * weights).sum(), parameters)
    actual = torch.autograd.grad((joined * weights).sum(), parameters)
    for a, e in zip(actual, expected):  # A_log, D and the step bias enter as float32 (as mamba-ssm's), so do their grads
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-8)
    assert state.conv.shape == (2, mamba.d_inner, 3) and state.scan.shape == (2, mamba.d_inner, 4)


def test_in_row_chunks_recomputed_in_backward_the_results_and_gradients_are_the_same(monkeypatch):
    """With a chunk budget of one row, the start-state correction and the block-end states run a row at a time,
    each recomputed in backward (what bounds their memory at training sizes): same values and gradients."""
    args = {key: value.requires_grad_() for key, value in scan_inputs(length=24).items()}
    h0 = start_state().requires_grad_()
    inputs = [*args.values(), h0]

    def outputs():
        delta = step_sizes(args["delta"], args["delta_bias"], True)
        return (selective_scan_from(**args, h0=h0, delta_softplus=True),
                states_after_blocks(args["u"], delta, args["A"], args["B"], 6, h0))

    whole = outputs()
    monkeypatch.setattr(scan_state, "CHUNK_BYTES", 1)
    chunked = outputs()
    weights = [torch.randn_like(out) for out in whole]
    for a, e in zip(chunked, whole):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    expected = torch.autograd.grad(sum((out * w).sum() for out, w in zip(whole, weights)), inputs)
    actual = torch.autograd.grad(sum((out * w).sum() for out, w in zip(chunked, weights)), inputs)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)

"""Block diffusion on Mamba (issue 30): the one-pass training input against a naive loop over blocks, the two
limits (one block is the bidirectional Caduceus, blocks of one position an autoregressive model), sampling with
the carried state against recomputing the prefix, and what the backbone refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_kernel_paths import perturbed
from test_scan import PATHS, force_path

from mdlm_bio.backbones.caduceus import Caduceus
from mdlm_bio.backbones.mamba import Mamba, add_to_residual
from mdlm_bio.diffusion import make_sampler
from mdlm_bio.diffusion.engine import MaskedDiffusion
from mdlm_bio.diffusion.objectives import nelbo_weights
from mdlm_bio.diffusion.process import mask_where, position_draws
from mdlm_bio.diffusion.sampler_registry import samplers_for
from mdlm_bio.dna.tokenizer import BASE_IDS, COMPLEMENT_MAP, MASK, VOCAB_SIZE
from mdlm_bio.models.block_diffusion_model import BlockDiffusionModel
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings

BASES = BASE_IDS


def block_network(block_size: int, context: int = 24, **backbone) -> LanguageModel:
    torch.manual_seed(0)
    settings = {"architecture": "caduceus", "vocab_size": VOCAB_SIZE, "complement_map": list(COMPLEMENT_MAP),
                "d_model": 16, "n_layer": 2, "rcps": False, "bidirectional": True, "d_state": 4, **backbone}
    objective = ObjectiveSettings(kind="bd3", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True,
                                  block_size=block_size)
    spec = ModelSpec(settings, objective, mask_id=MASK, context=context, track="dna", output_ids=BASES)
    return perturbed(LanguageModel(spec).double())


def dna(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(BASES)[torch.randint(0, 4, (batch, length), generator=torch.Generator().manual_seed(seed))]


def naive_noisy_logits(model: Caduceus, noisy: torch.Tensor, clean: torch.Tensor, block: int) -> torch.Tensor:
    """Block by block, with no carried state: each layer's forward mixer runs over the clean prefix's hidden states
    followed by the block's (plain `Mamba.mix`), the backward one within the block; the clean prefix itself runs
    forward over all of it and backward within each of its blocks."""
    def clean_mixed(mixer, xz: torch.Tensor) -> torch.Tensor:
        backward = [mixer.mamba_rev.mix(xz[:, k : k + block], reverse=True) for k in range(0, xz.shape[1], block)]
        return mixer.mamba_fwd.mix(xz) + torch.cat(backward, dim=1)

    out = []
    for start in range(0, noisy.shape[1], block):
        hidden_clean, hidden_noisy = model.embed(clean[:, :start]), model.embed(noisy[:, start : start + block])
        residual_clean = residual_noisy = None
        for layer in model.layers:
            mixer = layer.mixer
            residual_clean = add_to_residual(residual_clean, hidden_clean)
            residual_noisy = add_to_residual(residual_noisy, hidden_noisy)
            xz_clean = mixer.mamba_fwd.in_proj(layer.norm(residual_clean))
            xz_noisy = mixer.mamba_fwd.in_proj(layer.norm(residual_noisy))
            forward = mixer.mamba_fwd.mix(torch.cat([xz_clean, xz_noisy], dim=1))[:, start:]
            hidden_noisy = mixer.mamba_fwd.out_proj(forward + mixer.mamba_rev.mix(xz_noisy, reverse=True))
            if start:
                hidden_clean = mixer.mamba_fwd.out_proj(clean_mixed(mixer, xz_clean))
        out.append(model.head(model.norm_f(residual_noisy + hidden_noisy)))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("path", PATHS)
def test_block_boundary_states_are_those_of_one_sequential_scan(path, monkeypatch):
    """Mamba.mix_with_boundaries (the scan over the whole sequence, on each scan path) against the mixer fed block
    by block from carried states: outputs, the states after every block, and gradients through those states."""
    force_path(monkeypatch, path)
    torch.manual_seed(0)
    mamba = perturbed(Mamba(16, d_state=4).double())
    xz = torch.randn(2, 24, 2 * mamba.d_inner, dtype=torch.float64, requires_grad=True)
    whole, boundaries = mamba.mix_with_boundaries(xz, 6)
    pieces, states, state = [], [], None
    for begin in range(0, 24, 6):
        out, state = mamba.mix_from_state(xz[:, begin : begin + 6], state)
        pieces.append(out)
        states.append(state)
    torch.testing.assert_close(whole, torch.cat(pieces, dim=1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(boundaries.scan, torch.stack([s.scan for s in states], dim=1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(boundaries.conv, torch.stack([s.conv for s in states], dim=1), rtol=0, atol=0)
    weights = torch.randn_like(boundaries.scan)
    expected = torch.autograd.grad((torch.stack([s.scan for s in states], dim=1) * weights).sum(), xz)[0]
    actual = torch.autograd.grad((boundaries.scan * weights).sum(), xz)[0]
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("length", [24, 22, 3], ids=["whole-blocks", "a-partial-last-block", "shorter-than-a-block"])
def test_the_one_pass_training_input_is_the_naive_loop_over_blocks(length):
    network = block_network(4)
    clean = dna(3, length)
    noisy = clean.masked_fill(torch.rand(clean.shape, generator=torch.Generator().manual_seed(2)) < 0.5, MASK)
    expected = naive_noisy_logits(network.backbone, noisy, clean, 4)
    torch.testing.assert_close(network.backbone.block_logits(noisy, clean, 4), expected, rtol=1e-10, atol=1e-10)
    positions = (noisy == MASK).nonzero(as_tuple=True)
    torch.testing.assert_close(network.backbone.block_logits(noisy, clean, 4, positions), expected[positions])


def test_the_one_pass_loss_and_its_gradients_are_the_naive_loops():
    network = block_network(4)
    tokens = dna(2, 24, seed=3)
    generator = torch.Generator().manual_seed(4)
    t = torch.rand(2, 6, generator=generator, dtype=torch.float64).float()
    draws = position_draws(tokens.shape, generator, tokens.device)

    def naive(noisy, clean, times):
        return network.restrict(naive_noisy_logits(network.backbone, noisy, clean, 4))

    def loss_and_gradients(block_network, positions):
        network.zero_grad()
        out = network.engine.loss_given_noise(block_network, tokens, t, draws, logits_at=positions)
        out.total.backward()
        return out.total.detach(), [p.grad.clone() for p in network.parameters()]

    one_pass, one_pass_grads = loss_and_gradients(network.block_network, network.block_network_at)
    looped, looped_grads = loss_and_gradients(naive, None)
    torch.testing.assert_close(one_pass, looped, rtol=1e-10, atol=0)
    assert all(g.abs().sum() > 0 for g in one_pass_grads[1:]), "every layer gets a gradient"
    for actual, expected in zip(one_pass_grads, looped_grads):  # A_log, D and the step bias enter as float32
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-8)


def test_one_block_of_the_whole_length_is_the_bidirectional_mdlm():
    """L' = L: no clean prefix, so the model is Caduceus (BiMamba, no RC sharing) as a masked diffusion model: same
    logits, and the same NELBO estimate for the same noise."""
    network = block_network(24)
    tokens = dna(3, 24, seed=5)
    generator = torch.Generator().manual_seed(6)
    t = torch.rand(3, 1, generator=generator, dtype=torch.float64).float()
    draws = position_draws(tokens.shape, generator, tokens.device)
    block = network.engine.loss_given_noise(network.block_network, tokens, t, draws)
    mdlm = MaskedDiffusion(network.engine.schedule, mask_id=MASK)
    bidirectional = mdlm.loss_given_noise(lambda z, times: network.restrict(network.backbone(z)), tokens, t[:, 0],
                                          draws)
    torch.testing.assert_close(block.total, bidirectional.total, rtol=1e-10, atol=0)
    noisy = tokens.masked_fill(draws < 0.5, MASK)
    torch.testing.assert_close(network.backbone.block_logits(noisy, tokens, 24), network.backbone(noisy),
                               rtol=1e-10, atol=1e-12)


def test_blocks_of_one_position_are_an_autoregressive_model_and_the_nelbo_its_likelihood():
    """L' = 1: a masked position is predicted from the clean ones before it and a [MASK] in its own place, whatever
    the noise, so the model is an autoregressive Mamba LM (p(x_j | x_<j) read with everything masked), and each
    position's loss is its masked indicator times the weight times that cross-entropy: in expectation over t the
    NELBO is the AR loss of the same weights, scaled by (alpha(eps) - alpha(1)) / (1 - eps), the bound's only gap."""
    network = block_network(1)
    engine, tokens = network.engine, dna(2, 12, seed=7)
    masked = torch.full_like(tokens, MASK)
    logits = network.restrict(network.backbone.block_logits(masked, tokens, 1))
    cross_entropy = -logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0].detach()
    torch.testing.assert_close(logits, network.restrict(naive_noisy_logits(network.backbone, masked, tokens, 1)),
                               rtol=1e-10, atol=1e-10)  # nothing after a position reaches it
    generator = torch.Generator().manual_seed(8)
    totals = []
    with torch.no_grad():
        for _ in range(300):
            t = engine.draw_times(2, 12, generator, tokens.device)
            draws = position_draws(tokens.shape, generator, tokens.device)
            out = engine.loss_given_noise(network.block_network, tokens, t, draws)
            z_t = mask_where(tokens, draws, engine.schedule.alpha(t, check=False), MASK)
            expected = torch.where(z_t == MASK, nelbo_weights(engine.schedule, t) * cross_entropy, 0.0)
            torch.testing.assert_close(out.token_loss, expected, rtol=1e-10, atol=1e-12)
            totals.append(float(out.total))
    eps = engine.sampling_eps
    signal = engine.schedule.alpha(torch.tensor([eps, 1.0], dtype=torch.float64))
    mean = float(cross_entropy.sum()) * float(signal[0] - signal[1]) / (1 - eps)
    assert abs(np.mean(totals) - mean) < 4 * np.std(totals) / np.sqrt(len(totals))


def tiny_mamba_block_model(block_size: int = 4, context: int = 16) -> BlockDiffusionModel:
    return BlockDiffusionModel(block_network(block_size, context).eval(), "test", "caduceus")


@pytest.mark.parametrize("name", samplers_for("masked"))
def test_sampling_with_the_carried_state_gives_the_tokens_recomputing_the_prefix_gives(name):
    """Past the training context too (48 bases from a 16-base context): a state-space model keeps the whole past."""
    model = tiny_mamba_block_model()
    sampler = make_sampler(name, **({} if name == "first-hitting" else {"steps": 5}))
    prompt = np.array(BASES)[[0, 2, 3, 1, 1, 0]]  # one whole block and half of the next

    def draw(carried: bool):
        model.kv_cache = carried
        return model.sample(sampler, num=3, length=48, seed=11, batch_size=3, prompt=prompt)

    carried, recomputed = draw(True), draw(False)
    assert torch.equal(carried.tokens, recomputed.tokens)
    assert (carried.num_calls, carried.row_calls) == (recomputed.num_calls, recomputed.row_calls)
    assert (carried.tokens[:, :6] == torch.as_tensor(prompt)).all()
    assert np.isin(carried.tokens.numpy(), BASES).all()


def test_the_carried_state_has_the_same_size_after_any_number_of_blocks():
    backbone = tiny_mamba_block_model().network.backbone
    tokens = dna(2, 64, seed=8)
    state, sizes = None, set()
    with torch.no_grad():
        for start in range(0, 64, 4):
            state = backbone.advance(tokens[:, start : start + 4], state)
            sizes.add(sum(part.numel() for layer in state.layers for part in (layer.conv, layer.scan)))
    assert len(sizes) == 1


@pytest.mark.parametrize("change, message", [
    ({"rcps": True}, "Caduceus-PS's reverse-complement parameter sharing cannot hold"),
    ({"bidirectional": False}, "block diffusion on Caduceus needs bidirectional: true"),
    ({"num_classes": 2}, "block diffusion does not take class labels"),
])
def test_caduceus_variants_block_diffusion_cannot_run_on_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        block_network(4, **change)

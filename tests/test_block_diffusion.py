"""Block diffusion (BD3-LM): the one-pass training loss over [x_t, x_0] under the block mask equals running each
block on its own clean prefix; one block of the whole length is MDLM; blocks of one token with everything masked
are an autoregressive model."""

from __future__ import annotations

import warnings

import pytest
import torch

from mdlm_bio.backbones.block_attention import (
    AttentionView,
    block_diffusion_mask,
    block_diffusion_mask_mod,
    flex_block_mask,
)
from mdlm_bio.backbones.dit import DiT
from mdlm_bio.diffusion import LogLinearSchedule, MaskedDiffusion
from mdlm_bio.diffusion.block_diffusion import BlockDiffusion
from mdlm_bio.diffusion.objectives import subs_at_masked

VOCAB, MASK, LENGTH = 12, 11, 12


def tiny_dit(causal: bool = False) -> DiT:
    torch.manual_seed(0)
    model = DiT(VOCAB, hidden_size=32, cond_dim=16, n_blocks=2, n_heads=4, dropout=0.0, causal=causal).double()
    for parameter in model.parameters():  # the zero-initialised output layer would make every logit equal
        torch.nn.init.normal_(parameter, std=0.3)
    return model.eval()


def network_of(model: DiT, block_size: int):
    return lambda noisy, clean, t: model.block_logits(noisy, clean, block_size)


def test_the_mask_keeps_noisy_blocks_to_themselves_and_the_clean_blocks_before_them():
    mask = block_diffusion_mask(4, 2).int().tolist()
    assert mask == [  # rows: x_t at 0..3, then x_0 at 0..3; columns likewise
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1, 1],
    ]


def noise(batch: int, blocks: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, MASK, (batch, LENGTH), generator=generator)
    t = torch.rand(batch, blocks, generator=generator, dtype=torch.float64).float().clamp_min(0.05)
    return tokens, t, torch.rand(batch, LENGTH, generator=generator, dtype=torch.float64)


def naive_block_losses(model: DiT, tokens, z_t, weights, block_size: int) -> torch.Tensor:
    """Each block run on its own: the input [x_0 of the blocks before, z_t of the block] under block-causal
    attention (built here, not by the package), its masked positions scored under SUBS."""
    losses = torch.zeros(tokens.shape, dtype=torch.float64)
    for start in range(0, LENGTH, block_size):
        sequence = torch.cat([tokens[:, :start], z_t[:, start : start + block_size]], dim=1)
        blocks = torch.arange(sequence.shape[1]) // block_size
        view = AttentionView(mask=blocks[None, :] <= blocks[:, None])
        logits = model.output_layer(*model.features(sequence, None, view))[:, start:]
        masked = z_t[:, start : start + block_size] == MASK
        log_probs = subs_at_masked(logits[masked], MASK)
        targets = tokens[:, start : start + block_size][masked]
        block_losses = torch.zeros(masked.shape, dtype=torch.float64)
        block_losses[masked] = -log_probs.gather(-1, targets[:, None])[:, 0] * weights[:, start : start + block_size][masked]
        losses[:, start : start + block_size] = block_losses
    return losses


@pytest.mark.parametrize("block_size", [1, 2, 4, 12])
def test_the_one_pass_loss_equals_each_block_run_on_its_clean_prefix(block_size):
    model, engine = tiny_dit(), BlockDiffusion(LogLinearSchedule(), MASK, block_size)
    tokens, t, draws = noise(3, LENGTH // block_size)
    with torch.no_grad():
        out = engine.loss_given_noise(network_of(model, block_size), tokens, t, draws)
        t_tokens = engine.per_token(t, LENGTH)
        z_t = torch.where(draws >= engine.schedule.alpha(t_tokens).double(), MASK, tokens)
        expected = naive_block_losses(model, tokens, z_t, engine.schedule.loss_weight(t_tokens).double(), block_size)
    assert (z_t == MASK).any() and (z_t != MASK).any()
    torch.testing.assert_close(out.token_loss.double(), expected, rtol=1e-9, atol=1e-9)


def test_the_loss_at_masked_positions_only_is_the_same():
    model, engine = tiny_dit(), BlockDiffusion(LogLinearSchedule(), MASK, 4)
    tokens, t, draws = noise(3, 3, seed=1)

    def logits_at(noisy, clean, t, positions):
        return model.block_logits(noisy, clean, 4, positions)

    with torch.no_grad():
        full = engine.loss_given_noise(network_of(model, 4), tokens, t, draws)
        gathered = engine.loss_given_noise(network_of(model, 4), tokens, t, draws, logits_at=logits_at)
    torch.testing.assert_close(gathered.token_loss, full.token_loss, rtol=1e-12, atol=1e-12)


def test_one_block_of_the_whole_length_is_mdlm_for_the_same_noise():
    model = tiny_dit()
    tokens, t, draws = noise(4, 1, seed=2)
    block = BlockDiffusion(LogLinearSchedule(), MASK, LENGTH)
    mdlm = MaskedDiffusion(LogLinearSchedule(), MASK)
    with torch.no_grad():
        bd = block.loss_given_noise(network_of(model, LENGTH), tokens, t, draws)
        md = mdlm.loss_given_noise(lambda z, t: model(z, None), tokens, t[:, 0], draws)
    torch.testing.assert_close(bd.token_loss, md.token_loss, rtol=1e-9, atol=1e-9)


def test_blocks_of_one_with_everything_masked_are_the_autoregressive_loss():
    """With block size 1 and every position masked (t = 1, weight 1 under the log-linear schedule), token l is
    scored from its mask and the clean tokens before it: the NLL of the next-token model that a causal network
    (the same weights, causal attention) gives on [x_<l, mask]."""
    model, causal = tiny_dit(), tiny_dit(causal=True)
    causal.load_state_dict(model.state_dict())
    tokens = torch.randint(0, MASK, (2, LENGTH), generator=torch.Generator().manual_seed(3))
    engine = BlockDiffusion(LogLinearSchedule(), MASK, 1)
    with torch.no_grad():
        out = engine.loss_given_noise(network_of(model, 1), tokens, torch.ones(2, LENGTH), torch.ones(2, LENGTH,
                                                                                                    dtype=torch.float64))
        expected = torch.stack([
            -subs_at_masked(causal(torch.cat([tokens[:, :i], torch.full((2, 1), MASK)], dim=1))[:, -1], MASK)
            .gather(-1, tokens[:, i, None])[:, 0] for i in range(LENGTH)], dim=1)
    assert engine.schedule.loss_weight(torch.ones(1)).item() == pytest.approx(1.0)
    torch.testing.assert_close(out.token_loss.double(), expected, rtol=1e-9, atol=1e-9)


def test_times_are_one_per_block_antithetic_over_batch_and_blocks_and_clipped_when_asked():
    engine = BlockDiffusion(LogLinearSchedule(), MASK, 4, clip=(0.3, 0.8))
    t = engine.draw_times(4, 8, torch.Generator().manual_seed(0), "cpu")
    gaps = torch.sort(t.flatten().double()).values.diff()
    assert t.shape == (4, 8) and torch.allclose(gaps, torch.full_like(gaps, (1 - 1e-3) / 32), atol=1e-6)
    clipped = engine.draw_times(4, 8, torch.Generator().manual_seed(0), "cpu", clipped=True)
    assert clipped.min() >= 0.3 and clipped.max() <= 0.8
    assert engine.blocks(10) == 3  # a shorter last block: the end of a record
    with pytest.raises(ValueError, match=r"the clipped schedule needs 0 <= beta < omega <= 1; got \(0.8, 0.3\)"):
        BlockDiffusion(LogLinearSchedule(), MASK, 4, clip=(0.8, 0.3))


def test_flexattentions_block_mask_is_the_dense_mask():
    """On CUDA the training pass takes FlexAttention with this mask_mod (when torch has it); here it must agree with
    the dense mask, and its eager attention with SDPA's."""
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    index = torch.arange(16)
    dense = block_diffusion_mask_mod(8, 2)(None, None, index[:, None], index[None, :])
    assert torch.equal(dense, block_diffusion_mask(8, 2))
    q, k, v = (torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(seed)) for seed in range(3))
    with warnings.catch_warnings():  # eager FlexAttention is its (exact) reference path, and says so
        warnings.simplefilter("ignore")
        out = flex.flex_attention(q, k, v, block_mask=flex_block_mask(8, 2, "cpu"))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=block_diffusion_mask(8, 2))
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)

"""Block diffusion's generation: blocks left to right with any sampler inside; with the exact conditionals it
reproduces the distribution; the key/value cache gives the tokens that recomputing the prefix gives; rules end
samples of variable length."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_distribution import chi_square_pvalue, default_toy, exact_schedule

from mdlm_bio.backbones.block_attention import KeyValueCache
from mdlm_bio.diffusion import all_masked, make_sampler
from mdlm_bio.diffusion.block_generation import generate_blocks
from mdlm_bio.diffusion.sampler_registry import samplers_for
from mdlm_bio.diffusion.stopping import StopRule
from mdlm_bio.models.block_diffusion_model import BlockDiffusionModel
from mdlm_bio.models.handle import ModelMismatchError
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings

TOY = default_toy()
P_THRESHOLD = 1e-3


class OracleBlocks:
    """The exact conditionals of the toy distribution given the blocks so far (future positions marginalised)."""

    def __init__(self, batch: int) -> None:
        self.prefix = torch.empty(batch, 0, dtype=torch.long)
        self.calls_seen: list[int] = []

    def denoiser(self):
        prefix = self.prefix

        def denoise(z, t):
            rest = all_masked(len(z), TOY.length - prefix.shape[1] - z.shape[1], TOY.mask_id)
            return TOY.oracle()(torch.cat([prefix, z, rest], dim=1), t)[:, prefix.shape[1] : prefix.shape[1] + z.shape[1]]

        return denoise

    def append(self, block):
        self.prefix = torch.cat([self.prefix, block], dim=1)


@pytest.mark.parametrize("block_size, sampler", [(2, make_sampler("first-hitting")), (2, make_sampler("ancestral",
                                                 steps=256)), (1, make_sampler("ancestral", steps=1))])
def test_blocks_from_the_exact_conditionals_reproduce_the_distribution(block_size, sampler):
    """Blocks of one token with a one-step sampler are exact too: each token drawn from its true conditional."""
    out = generate_blocks(OracleBlocks, sampler, exact_schedule(), block_size=block_size, mask_id=TOY.mask_id,
                          num=4000, length=TOY.length, seed=5, batch_size=4000)
    assert out.tokens.shape == (4000, TOY.length) and not bool((out.tokens == TOY.mask_id).any())
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD
    if sampler.name == "first-hitting" or block_size == 1:
        assert out.num_calls == TOY.length  # one call per token: first-hitting, or one step per one-token block


def tiny_block_model(block_size: int = 4, context: int = 16) -> BlockDiffusionModel:
    torch.manual_seed(0)
    backbone = {"architecture": "dit", "vocab_size": 40, "hidden_size": 32, "cond_dim": 16, "n_blocks": 2,
                "n_heads": 4, "dropout": 0.0, "causal": False, "time_conditioning": False}
    objective = ObjectiveSettings(kind="bd3", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True,
                                  block_size=block_size)
    network = LanguageModel(ModelSpec(backbone, objective, mask_id=39, context=context, track="text")).double().eval()
    for parameter in network.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    return BlockDiffusionModel(network, "test", "dit")


@pytest.mark.parametrize("name", samplers_for("masked"))
def test_the_key_value_cache_gives_the_tokens_recomputing_the_prefix_gives(name):
    model = tiny_block_model()
    sampler = make_sampler(name, **({} if name == "first-hitting" else {"steps": 6}))
    prompt = np.array([3, 7, 1, 30, 2, 9])  # one whole block and half of the next

    def draw(kv_cache: bool):
        model.kv_cache = kv_cache
        return model.sample(sampler, num=3, length=16, seed=11, batch_size=3, prompt=prompt)

    cached, recomputed = draw(True), draw(False)
    assert torch.equal(cached.tokens, recomputed.tokens)
    assert (cached.num_calls, cached.row_calls) == (recomputed.num_calls, recomputed.row_calls)
    assert (cached.tokens[:, :6] == torch.as_tensor(prompt)).all() and not (cached.tokens == 39).any()


def test_cached_block_logits_equal_the_one_pass_training_input():
    """The noisy half of [x_t, x_0] under the block mask is what block sampling computes from the cache."""
    backbone = tiny_block_model().network.backbone
    clean = torch.randint(0, 39, (2, 16), generator=torch.Generator().manual_seed(1))
    noisy = clean.clone()
    noisy[:, 8:12][torch.rand(2, 4, generator=torch.Generator().manual_seed(2)) < 0.6] = 39
    cache = KeyValueCache()
    with torch.no_grad():
        one_pass = backbone.block_logits(noisy, clean, 4)[:, 8:12]
        for start in (0, 4):  # block by block, as sampling appends them
            backbone.extend_cache(clean[:, start : start + 4], cache)
        cached = backbone.cached_logits(noisy[:, 8:12], cache)
    torch.testing.assert_close(cached, one_pass, rtol=1e-10, atol=1e-10)


def test_past_the_context_the_window_slides_by_whole_blocks():
    model = tiny_block_model(context=8)
    out = model.sample(make_sampler("first-hitting"), num=2, length=20, seed=0, batch_size=2, prompt=np.array([5]))
    assert out.tokens.shape == (2, 20) and out.num_calls == 19 and (out.tokens[:, 0] == 5).all()
    assert not (out.tokens == 39).any()


def test_stop_rules_give_each_row_its_length():
    tokens = torch.tensor([[5, 1, 2, 5, 3, 4, 6, 8], [5, 1, 2, 3, 4, 4, 4, 4], [5, 1, 2, 3, 4, 6, 7, 8]])
    assert StopRule(token=5).lengths(tokens).tolist() == [4, 8, 8]  # the first position's own 5 does not count
    assert StopRule(entropy=0.5, window=4).lengths(tokens).tolist() == [8, 4, 8]
    assert StopRule(token=5, entropy=0.5, window=4).lengths(tokens).tolist() == [4, 4, 8]
    with pytest.raises(ValueError, match="the stop entropy must be a positive number of nats; got -1"):
        StopRule(entropy=-1)


def test_block_generation_stops_once_every_row_has_stopped():
    model = tiny_block_model()
    stop = StopRule(token=0)
    out = model.sample(make_sampler("ancestral", steps=4), num=4, length=16, seed=3, batch_size=4,
                       prompt=np.array([0]), stop=stop)
    assert out.lengths is not None and out.tokens.shape == (4, 16)
    for row, length in zip(out.tokens, out.lengths.tolist()):
        assert length == 16 or (row[length - 1] == 0 and not (row[1 : length - 1] == 0).any())
    assert [len(row) for row in out.rows()] == out.lengths.tolist()


def test_a_block_model_names_its_block_size_and_refuses_what_it_cannot_do():
    model = tiny_block_model()
    assert model.describe_sampling(make_sampler("first-hitting")) == "sampler=first-hitting block_size=4"
    with pytest.raises(ModelMismatchError, match="holds a block diffusion model; infill needs a masked-diffusion"):
        model.infill(np.zeros(8, np.uint8), np.ones(8, bool), make_sampler("ancestral"), seed=0)
    with pytest.raises(ValueError, match="--class and --guidance need a class-conditional diffusion model; this one is "
                                         "block diffusion"):
        model.conditioning("a", None)


def test_a_sliding_window_re_bases_the_cached_keys_exactly():
    """Rotary at position p shifted by -d is rotary at p - d: what forgetting the oldest cached tokens relies on."""
    rotary = tiny_block_model().network.backbone.rotary_emb
    x = torch.randn(1, 2, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(10, 16)
    torch.testing.assert_close(rotary.shift(rotary(x, positions), -10), rotary(x, positions - 10), rtol=1e-6, atol=1e-6)

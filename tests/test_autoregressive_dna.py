"""The autoregressive DNA baseline: left-to-right sampling reproduces a known chain, scoring is its exact NLL,
and the CLI samples, scores and refuses to infill with an AR checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from base_tables import base_table_logits
from dna_runs import error_of

from mdlm_bio.cli import main
from mdlm_bio.dna.autoregressive import sample_autoregressive, score_autoregressive
from mdlm_bio.dna.fasta import read_fasta, write_fasta
from mdlm_bio.dna.tokenizer import BASE_IDS, N, decode
from mdlm_bio.models import load_model

# A first-order Markov chain over A, C, G, T: row = previous base, column = next base
TRANSITIONS = torch.tensor([[0.70, 0.10, 0.10, 0.10],
                            [0.10, 0.10, 0.70, 0.10],
                            [0.25, 0.25, 0.25, 0.25],
                            [0.40, 0.40, 0.10, 0.10]], dtype=torch.float64)


def chain_network(context: int | None = None):
    """A causal 'model' whose logits at position l are log P(next | token l): the chain above (uniform after N)."""

    def network(tokens: torch.Tensor) -> torch.Tensor:
        if context is not None:
            assert tokens.shape[1] <= context, "the network was given more than its context"
        return base_table_logits(tokens, TRANSITIONS)

    return network


def chain_nll(tokens: list[int], context: int) -> float:
    """log 4 for each window's first base, then -log P(next | previous) for every other base."""
    total = 0.0
    for begin in range(0, len(tokens), context):
        window = tokens[begin : begin + context]
        total += math.log(4)
        for previous, current in zip(window, window[1:]):
            total -= math.log(TRANSITIONS[previous - BASE_IDS[0], current - BASE_IDS[0]])
    return total


def test_samples_follow_the_chain_and_start_uniformly():
    drawn = sample_autoregressive(chain_network(), num=4000, length=6, context=6, seed=0, batch_size=1000)
    tokens = drawn.tokens - BASE_IDS[0]
    assert drawn.num_calls == 4 * 5 and tokens.shape == (4000, 6)
    first = torch.bincount(tokens[:, 0], minlength=4) / 4000
    torch.testing.assert_close(first, torch.full((4,), 0.25), atol=0.03, rtol=0)
    pairs = torch.zeros(4, 4, dtype=torch.float64)
    pairs.index_put_((tokens[:, :-1].flatten(), tokens[:, 1:].flatten()), torch.ones(4000 * 5, dtype=torch.float64),
                     accumulate=True)
    torch.testing.assert_close(pairs / pairs.sum(1, keepdim=True), TRANSITIONS, atol=0.03, rtol=0)


def test_sampling_keeps_the_prompt_and_slides_past_the_context():
    prompt = torch.tensor(BASE_IDS[:3])
    drawn = sample_autoregressive(chain_network(context=4), num=3, length=20, context=4, prompt=prompt, seed=1)
    assert drawn.tokens.shape == (3, 20) and (drawn.tokens[:, :3] == prompt).all()
    assert ((drawn.tokens >= BASE_IDS[0]) & (drawn.tokens <= BASE_IDS[-1])).all()
    again = sample_autoregressive(chain_network(context=4), num=3, length=20, context=4, prompt=prompt, seed=1)
    assert torch.equal(drawn.tokens, again.tokens)


@pytest.mark.parametrize("context", [12, 5])
def test_score_is_the_exact_nll_window_by_window(context):
    tokens = np.random.default_rng(0).choice(BASE_IDS, 12).astype(np.uint8)
    score = score_autoregressive(chain_network(), tokens, context)
    assert score.tokens == 12
    assert score.nats == pytest.approx(chain_nll(tokens.tolist(), context), rel=1e-12)


def test_score_leaves_n_unscored_but_in_the_context():
    tokens = np.array([N, *BASE_IDS, N, BASE_IDS[0]], np.uint8)
    score = score_autoregressive(chain_network(), tokens, context=7)
    # the first base after an N is drawn uniformly from the model's view (uniform after N): log 4 each
    expected = (math.log(4) - math.log(TRANSITIONS[0, 1]) - math.log(TRANSITIONS[1, 2]) - math.log(TRANSITIONS[2, 3])
                + math.log(4))
    assert score.tokens == 5 and score.nats == pytest.approx(expected, rel=1e-12)


def test_cli_samples_scores_and_refuses_infill_with_an_ar_checkpoint(ar_run, tmp_path, capsys):
    prompt, out = tmp_path / "prompt.fa", tmp_path / "out.fa"
    write_fasta([("p", "", "ACGTTG")], prompt)
    main(["sample", "--ckpt", str(ar_run), "--num", "3", "--length", "200", "--prompt", str(prompt), "--out", str(out)])
    records = list(read_fasta(out))
    assert [len(r.tokens) for r in records] == [200] * 3
    assert all(decode(r.tokens).startswith("ACGTTG") for r in records) and "sampler=autoregressive" in records[0].description
    capsys.readouterr()
    main(["score", str(out), "--ckpt", str(ar_run)])
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0][3] == "nll_nats"
    model = load_model(ar_run)
    expected = score_autoregressive(model.network.causal_network, records[0].tokens, model.context)
    assert float(rows[1][3]) == pytest.approx(expected.nats, abs=1e-4)
    assert ("holds an autoregressive model; infill needs a masked-diffusion (mdlm) model: a causal model conditions "
            "on the bases to the left only, so it cannot fill a gap from both sides") in error_of(
        capsys, ["infill", "--ckpt", str(ar_run), str(out), "--out", str(tmp_path / "filled.fa")])
    assert "--class and --guidance need a class-conditional diffusion model; this one is autoregressive" in error_of(
        capsys, ["sample", "--ckpt", str(ar_run), "--guidance", "2", "--out", str(tmp_path / "g.fa")])

"""Generative perplexity: exact answers for the scoring rule, and `mdlm-bio eval-genppl` end to end with a tiny
GPT-2 eval LM trained here on the test text (so that real text, trained-model samples and untrained-model
samples must come out in that order)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from text_runs import run_launcher, tiny_text_run
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from mdlm_bio.cli import main
from mdlm_bio.diffusion.stopping import unigram_entropy
from mdlm_bio.text.eval_lm import decode_samples, generative_nll, load_eval_lm, scored_positions
from mdlm_bio.text.tokenizer import load_tokenizer


def save_gpt2(folder: Path, tokenizer_dir: Path, state_edit=None, train_file: Path | None = None) -> Path:
    """A 1-layer GPT-2 with the test tokenizer, optionally trained a little on `train_file`."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    if train_file is not None:
        ids = torch.tensor(tokenizer(train_file.read_text().replace("\n\n", tokenizer.eos_token))["input_ids"])
        blocks = ids[: len(ids) // 64 * 64].view(-1, 64)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(150):
            batch = blocks[torch.randint(len(blocks), (16,), generator=generator)]
            loss = model(batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if state_edit is not None:
        state_edit(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def zero_embeddings(model: GPT2LMHeadModel) -> None:
    """Tied output embeddings of zero: every logit is 0, the eval LM is uniform over its vocabulary."""
    with torch.no_grad():
        model.transformer.wte.weight.zero_()


@pytest.fixture(scope="module")
def eval_lms(texts, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-lms")
    return {
        "random": save_gpt2(root / "random", texts / "gpt2"),
        "uniform": save_gpt2(root / "uniform", texts / "gpt2", zero_embeddings),
        "trained": save_gpt2(root / "trained", texts / "gpt2", train_file=texts / "train.txt"),
    }


# ----------------------------------------------------------------------------- the scoring rule, exactly


def test_scored_positions_keep_real_tokens_and_only_the_first_eos():
    ids = torch.tensor([[5, 0, 7, 0, 9, 0, 0], [0, 3, 4, 0, 0, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0]]).bool()
    expected = torch.tensor([[1, 1, 1, 0, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0]]).bool()
    assert torch.equal(scored_positions(ids, attention, eos_id=0), expected)


def test_a_uniform_eval_lm_gives_the_vocabulary_size_and_counts_targets_per_chunk(eval_lms):
    eval_lm = load_eval_lm(str(eval_lms["uniform"]), context=4)
    eos = eval_lm.tokenizer.eos_token
    texts = ["the model of the genome", f"a sample{eos}masked diffusion{eos}text", "it"]
    lengths = [len(eval_lm.tokenizer(text)["input_ids"]) for text in texts]
    # Each chunk of 4 loses its first position (no context); the second EOS of text 2 is not scored.
    expected = sum(n - math.ceil(n / 4) for n in lengths) - 1
    total, count = generative_nll(texts, eval_lm, batch_size=2)
    assert count == expected
    assert total / count == pytest.approx(math.log(len(eval_lm.tokenizer)), rel=1e-6)


def test_a_samples_score_does_not_depend_on_its_batch(eval_lms):
    eval_lm = load_eval_lm(str(eval_lms["random"]))
    texts = ["the model of the genome is a text", "a sample", "masked diffusion language model for the genome"]
    alone = [generative_nll([text], eval_lm) for text in texts]
    together = generative_nll(texts, eval_lm, batch_size=3)
    assert together[1] == sum(count for _, count in alone)
    assert together[0] == pytest.approx(sum(total for total, _ in alone), rel=1e-5)


def test_samples_decode_with_each_document_marker_as_the_eval_separator(texts):
    gpt2 = load_tokenizer(str(texts / "gpt2"))
    ids = [gpt2.bos_id, *gpt2.hf("the model")["input_ids"], gpt2.eos_id, *gpt2.hf(" genome")["input_ids"]]
    assert decode_samples(torch.tensor([ids]), gpt2, "<|endoftext|>") == ["<|endoftext|>the model<|endoftext|> genome"]
    bert = load_tokenizer(str(texts / "bert"))
    ids = [bert.bos_id, *bert.hf("the model", add_special_tokens=False)["input_ids"], bert.eos_id, bert.pad_id, bert.pad_id]
    assert decode_samples(torch.tensor([ids]), bert, "|") == ["|the model|"]


def test_unigram_entropy_is_exact():
    entropy = unigram_entropy(torch.tensor([[0, 0, 1, 1], [3, 3, 3, 3], [0, 1, 2, 3]]))
    assert torch.allclose(entropy, torch.tensor([math.log(2), 0.0, math.log(4)], dtype=torch.float64))


def test_an_eval_context_beyond_the_models_positions_is_refused(eval_lms):
    with pytest.raises(ValueError, match=r"eval context must lie in \[2, 128\]"):
        load_eval_lm(str(eval_lms["random"]), context=129)


# ----------------------------------------------------------------------------- mdlm-bio eval-genppl


def eval_genppl(texts: Path, ckpt: Path, eval_lm: Path, out: Path, *extra: str) -> list[dict]:
    main(["eval-genppl", "--ckpt", str(ckpt), "--eval-lm", str(eval_lm), "--num", "6", "--steps", "32",
          "--batch-size", "3", "--cache-dir", str(texts / "cache"), "--out-dir", str(out), *extra])
    return json.loads((out / "genppl.json").read_text())["rows"]


def test_real_text_beats_trained_samples_which_beat_untrained_ones(texts, mdlm_run, eval_lms, tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        main(tiny_text_run(texts, "untrained", "gpt2", 1, "trainer.val_check_interval=1", "trainer.limit_val_batches=1"))
    reference = ["--reference", "openwebtext", "--text-file", f"openwebtext={texts / 'valid.txt'}"]
    trained = eval_genppl(texts, mdlm_run[0], eval_lms["trained"], tmp_path / "trained", *reference)
    untrained = eval_genppl(texts, texts / "untrained", eval_lms["trained"], tmp_path / "untrained")
    samples, real = trained
    assert samples["source"] == "samples (sampler=cached steps=32)" and real["source"] == "real openwebtext"
    assert samples["num_samples"] == real["num_samples"] == 6 and samples["length"] == 64
    assert real["perplexity"] < samples["perplexity"] < untrained[0]["perplexity"]
    assert samples["perplexity"] == pytest.approx(math.exp(samples["nll_per_token"]))
    assert 0 < samples["entropy_mean"] <= math.log(64)
    lines = (tmp_path / "trained" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(isinstance(json.loads(line)["text"], str) for line in lines)
    assert "| real openwebtext | 6 | 64 |" in (tmp_path / "trained" / "genppl.md").read_text()


@pytest.fixture(scope="module")
def ar_run(texts) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        main(tiny_text_run(texts, "ar-genppl", "gpt2", 2, "objective.kind=ar", "model.overrides.causal=true",
                           "trainer.val_check_interval=2", "trainer.limit_val_batches=1"))
    return texts / "ar-genppl"


def test_the_autoregressive_baseline_samples_left_to_right(texts, ar_run, eval_lms, tmp_path):
    rows = eval_genppl(texts, ar_run, eval_lms["random"], tmp_path, "--length", "16")
    assert rows[0]["source"] == "samples (sampler=autoregressive)" and rows[0]["length"] == 16
    assert rows[0]["num_calls"] == 2 * 15  # two batches of 3, one call per token after the BOS
    assert all(json.loads(line)["text"].startswith("<|endoftext|>")
               for line in (tmp_path / "samples.jsonl").read_text().splitlines())


@pytest.mark.parametrize(("extra", "message"), [
    (["--num", "0"], "argument --num: must be a positive integer, not 0"),
    (["--tokenizer", "no/such/tokenizer"], "no/such/tokenizer"),
    (["--reference", "openwebtext", "--text-file", "openwebtext"], "--text-file takes CORPUS=PATH"),
])
def test_eval_genppl_errors_are_clear(ar_run, eval_lms, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        main(["eval-genppl", "--ckpt", str(ar_run), "--eval-lm", str(eval_lms["random"]), "--num", "2",
              "--out-dir", str(tmp_path), *extra])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("options, source", [
    (["--sampler", "remdm", "--steps", "16", "--remask", "rescale"],
     "samples (sampler=remdm steps=16 remask=rescale eta=0.015)"),
    (["--sampler", "confidence", "--steps", "8"], "samples (sampler=confidence steps=8 confidence=margin reveal=cosine)"),
])
def test_eval_genppl_samples_with_remdm_and_confidence_decoding(texts, mdlm_run, eval_lms, tmp_path, options, source):
    rows = eval_genppl(texts, mdlm_run[0], eval_lms["random"], tmp_path, *options)
    assert rows[0]["source"] == source and rows[0]["num_samples"] == 6


def test_genppl_launcher_runs_each_step_count_and_scores_real_text_once(texts, mdlm_run, eval_lms, tmp_path):
    result = run_launcher("eval_genppl.sh", str(mdlm_run[0]), "--eval-lm", str(eval_lms["random"]), "--num", "2",
                          "--text-file", f"openwebtext={texts / 'valid.txt'}", "--cache-dir", str(texts / "cache"),
                          env={"STEPS": "4 8", "OUT": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = (json.loads((tmp_path / f"T{t}" / "genppl.json").read_text()) for t in (4, 8))
    assert [row["source"] for row in first["rows"]] == ["samples (sampler=cached steps=4)", "real openwebtext"]
    assert [row["source"] for row in second["rows"]] == ["samples (sampler=cached steps=8)"]


def test_a_reference_too_short_for_the_samples_fails_before_sampling(texts, ar_run, eval_lms, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval-genppl", "--ckpt", str(ar_run), "--eval-lm", str(eval_lms["random"]), "--num", "5000",
              "--reference", "openwebtext", "--text-file", f"openwebtext={texts / 'valid.txt'}",
              "--cache-dir", str(texts / "cache"), "--out-dir", str(tmp_path)])
    assert "blocks of 64 tokens, fewer than the 5000 requested" in capsys.readouterr().err
    assert not (tmp_path / "samples.jsonl").exists()


def test_a_block_diffusion_text_model_is_scored_and_samples_from_bos(texts, eval_lms, tmp_path):
    """eval-ppl and eval-genppl take a block diffusion run like any other; its samples start at the BOS, as its
    training blocks do, and run past its context block by block."""
    with contextlib.redirect_stdout(io.StringIO()):
        main(tiny_text_run(texts, "bd3", "gpt2", 4, "objective.kind=bd3", "objective.block_size=8",
                           "trainer.val_check_interval=2", "trainer.limit_val_batches=1"))
    rows = eval_genppl(texts, texts / "bd3", eval_lms["random"], tmp_path, "--length", "72", "--sampler",
                       "ancestral", "--steps", "2")
    assert rows[0]["source"] == "samples (sampler=ancestral steps=2 block_size=8)" and rows[0]["length"] == 72
    assert rows[0]["num_calls"] == 2 * 9 * 2  # two batches of 3; 9 blocks (the BOS opens the first), 2 steps each
    assert all(json.loads(line)["text"].startswith("<|endoftext|>")
               for line in (tmp_path / "samples.jsonl").read_text().splitlines())
    stopped = eval_genppl(texts, texts / "bd3", eval_lms["random"], tmp_path / "eos", "--length", "72", "--sampler",
                          "ancestral", "--steps", "2", "--stop-at-eos")
    eos = load_tokenizer(str(texts / "gpt2")).eos_id
    assert stopped[0]["source"] == f"samples (sampler=ancestral steps=2 block_size=8 stop_token={eos})"
    assert 1 < stopped[0]["mean_length"] <= 72 and stopped[0]["length"] <= 72
    texts_written = [json.loads(line)["text"] for line in (tmp_path / "eos" / "samples.jsonl").read_text().splitlines()]
    assert all(text.count("<|endoftext|>") <= 2 for text in texts_written)  # the BOS, and at most one EOS: its end
    main(["eval-ppl", "--ckpt", str(texts / "bd3"), "--corpora", "ptb", "--text-file", f"ptb={texts / 'valid.txt'}",
          "--cache-dir", str(texts / "cache"), "--out-dir", str(tmp_path / "ppl")])
    assert json.loads((tmp_path / "ppl" / "perplexity.json").read_text())["rows"][0]["perplexity"] > 1


def test_a_hugging_face_encoder_samples_through_eval_genppl(texts, masked_lm, eval_lms, tmp_path):
    """A saved masked LM (BERT's tokenizer, [CLS]/[SEP] as document marks) samples like any masked diffusion model,
    at its own context, and its samples decode to text without [MASK]."""
    (samples,) = eval_genppl(texts, masked_lm, eval_lms["random"], tmp_path / "bert", "--length", "32")
    assert samples["num_samples"] == 6 and samples["length"] == 32 and math.isfinite(samples["perplexity"])
    texts_out = [json.loads(line)["text"] for line in (tmp_path / "bert" / "samples.jsonl").read_text().splitlines()]
    assert len(texts_out) == 6 and not any("[MASK]" in text for text in texts_out)

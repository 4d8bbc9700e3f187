"""The text track through `mdlm-bio train`: the tiny preset on test-written text with tokenizers trained on the
fly, wrapped (GPT-2 style) and padded (BERT style), diffusion and autoregressive."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_pretrained import mdlm_state
from text_runs import run_launcher, tiny_text_run, validation_curve

from mdlm_bio.cli import main
from mdlm_bio.models import load_model
from mdlm_bio.text.tokenizer import load_tokenizer
from mdlm_bio.training.config import ConfigError, load_config


def test_tiny_mdlm_learns_wrapped_text_and_records_its_vocabulary(texts, mdlm_run):
    curve = validation_curve(mdlm_run[1])
    assert len(curve) == 3 and curve[-1] < curve[0] - 2.0  # from ~8.4 bits/token (untrained) down
    tokenizer = load_tokenizer(str(texts / "gpt2"))
    model = load_model(mdlm_run[0])
    assert model.spec.backbone["vocab_size"] == tokenizer.vocab_size
    assert model.mask_id == tokenizer.mask_id and model.context == 64


def test_padded_blocks_and_the_autoregressive_baseline_train(texts, capsys):
    main(tiny_text_run(texts, "lm1b-like", "bert", 20, "data.corpus=lm1b", "data.wrap=false", "trainer.val_check_interval=10"))
    assert validation_curve(capsys.readouterr().out)
    main(tiny_text_run(texts, "ar", "gpt2", 20, "objective.kind=ar", "model.overrides.causal=true",
                       "trainer.val_check_interval=10"))
    curve = validation_curve(capsys.readouterr().out)
    assert curve[-1] < curve[0]
    model = load_model(texts / "lm1b-like")
    batch = torch.tensor([[model.mask_id] * 8])
    with torch.no_grad():
        logits = model.network.denoiser(batch, torch.ones(1))
    assert logits.shape[-1] == load_tokenizer(str(texts / "bert")).vocab_size


def test_bf16_mixed_text_training_tracks_float32(texts, mdlm_run, capsys):
    """The session's float32 text-tiny run against the same run under bf16 autocast."""
    main(tiny_text_run(texts, "mdlm-bf16", "gpt2", 100, "trainer.precision=bf16-mixed"))
    bf16, float32 = validation_curve(capsys.readouterr().out), validation_curve(mdlm_run[1])
    assert len(bf16) == len(float32) == 3
    assert all(math.isfinite(bits) and abs(bits - reference) < 0.01 for bits, reference in zip(bf16, float32)), (bf16, float32)
    weights = load_model(texts / "mdlm-bf16").network.state_dict().values()
    assert all(value.dtype == torch.float32 for value in weights if value.is_floating_point())


def test_the_memory_probe_before_training_leaves_the_run_unchanged(texts, tmp_path):
    """The DiT draws dropout masks from the global generator: the probe that estimates a step's memory runs before
    training and must not shift those draws, so a probed run ends with the weights of an unprobed one."""
    weights = {}
    for name, flags in (("probed", []), ("unprobed", ["--ignore-memory-limit"])):
        main(tiny_text_run(texts, f"probe-{name}", "gpt2", 6, "trainer.val_check_interval=6", "model.overrides.dropout=0.1")
             + flags)
        last = texts / f"probe-{name}" / "checkpoints" / "last.ckpt"
        weights[name] = torch.load(last, weights_only=True)["current_model_state"]
    for key, value in weights["unprobed"].items():  # equal up to CPU threads' summation order (~1e-8)
        torch.testing.assert_close(weights["probed"][key], value, rtol=0, atol=1e-6, msg=key)


def test_text_config_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="data.tokenizer must name a tokenizer"):
        load_config("text-tiny")
    with pytest.raises(ConfigError, match=r"data.dataset=text needs data keys \['corpus'"):
        load_config("demo", ["data.dataset=text"])


CPU_TINY = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto", "trainer.precision=32-true",
            "trainer.accumulate_grad_batches=1", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
            "model.preset=dit-tiny", "data.batch_size=4", "data.num_workers=0", "data.num_proc=null"]


@pytest.mark.parametrize(("script", "variant", "tokenizer", "window"), [
    ("pretrain_owt.sh", ["mdlm"], "gpt2", 32),
    ("pretrain_owt.sh", ["ar"], "gpt2", 32),
    ("pretrain_lm1b.sh", ["mdlm", "padded"], "bert", 16),
    ("pretrain_lm1b.sh", ["ar", "wrapped"], "bert", 16),
])
def test_text_launchers_run_the_paper_presets_end_to_end(texts, tmp_path, script, variant, tokenizer, window):
    local = [f"data.tokenizer={texts / tokenizer}", f"data.train_files=[{texts / 'train.txt'}]",
             f"data.valid_files=[{texts / 'valid.txt'}]", f"data.cache_dir={tmp_path / 'cache'}", f"data.window={window}",
             f"run_dir={tmp_path / 'run'}", *CPU_TINY]
    if variant[0] == "ar":
        local.append("model.overrides.causal=true")
    result = run_launcher(script, *variant, *local)
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_model(tmp_path / "run")
    assert model.spec.objective.kind == variant[0]
    assert model.config["data"]["wrap"] is (variant[-1] != "padded")


def test_launchers_reject_unknown_variants():
    result = run_launcher("pretrain_lm1b.sh", "mdlm", "sideways")
    assert result.returncode == 2 and "usage:" in result.stderr and "[padded|wrapped]" in result.stderr
    assert run_launcher("pretrain_owt.sh", "diffusion").returncode == 2


def eval_ppl(texts: Path, ckpt: Path | str, out: Path, *extra: str) -> list[dict]:
    main(["eval-ppl", "--ckpt", str(ckpt), "--corpora", "ptb", "wikitext2", "--text-file", f"ptb={texts / 'valid.txt'}",
          "--text-file", f"wikitext2={texts / 'valid.txt'}", "--cache-dir", str(texts / "cache"), "--out-dir", str(out),
          *extra])
    return json.loads((out / "perplexity.json").read_text())["rows"]


def test_eval_ppl_scores_each_corpus_continuous_and_discrete(texts, mdlm_run, tmp_path):
    continuous = eval_ppl(texts, mdlm_run[0], tmp_path / "c", "--mc", "2")
    assert [row["corpus"] for row in continuous] == ["ptb", "wikitext2"]
    assert all(row["split"] == "validation" and row["tokens"] == row["blocks"] * 64 for row in continuous)
    assert continuous[0]["perplexity"] == pytest.approx(math.exp(continuous[0]["nll_per_token"]))
    assert continuous[0]["perplexity"] < 40  # trained: the untrained model is at ~330
    discrete = eval_ppl(texts, mdlm_run[0], tmp_path / "d", "--mc", "2", "--discrete-steps", "2")
    assert discrete[0]["nll_per_token"] > continuous[0]["nll_per_token"]  # T=2 is a much looser bound
    assert "T=2" in (tmp_path / "d" / "perplexity.md").read_text()


def published_mdlm_state(texts: Path) -> dict[str, torch.Tensor]:
    """Random weights in the published MDLM key layout, over the test tokenizer's vocabulary."""
    state = mdlm_state()
    vocab = load_tokenizer(str(texts / "gpt2")).vocab_size
    hidden = state["backbone.vocab_embed.embedding"].shape[1]
    generator = torch.Generator().manual_seed(0)
    for key, shape in (("backbone.vocab_embed.embedding", (vocab, hidden)),
                       ("backbone.output_layer.linear.weight", (vocab, hidden)),
                       ("backbone.output_layer.linear.bias", (vocab,))):
        state[key] = torch.randn(shape, generator=generator) * 0.02
    return state


def test_eval_ppl_imports_the_published_mdlm_layout(texts, tmp_path):
    save_file(published_mdlm_state(texts), str(tmp_path / "model.safetensors"))
    rows = eval_ppl(texts, tmp_path / "model.safetensors", tmp_path / "out", "--tokenizer", str(texts / "gpt2"),
                    "--block", "64")
    assert all(math.isfinite(row["perplexity"]) and row["perplexity"] > 1 for row in rows)


def test_a_pickled_published_checkpoint_needs_trust(texts, tmp_path, capsys):
    """MDLM's own Lightning checkpoints pickle their hyperparameters: opened only with --trust-checkpoint."""
    lightning_file = tmp_path / "mdlm.ckpt"
    torch.save({"state_dict": published_mdlm_state(texts), "hyper_parameters": argparse.Namespace(lr=3e-4)}, lightning_file)
    with pytest.raises(SystemExit):
        eval_ppl(texts, lightning_file, tmp_path / "out", "--tokenizer", str(texts / "gpt2"), "--block", "64")
    err = capsys.readouterr().err
    assert f"{lightning_file}: holds Python objects that a weights-only read refuses" in err and "pass --trust-checkpoint" in err
    rows = eval_ppl(texts, lightning_file, tmp_path / "out", "--tokenizer", str(texts / "gpt2"), "--block", "64",
                    "--trust-checkpoint")
    assert all(math.isfinite(row["perplexity"]) for row in rows)


def test_eval_ppl_errors_are_clear(texts, mdlm_run, tmp_path, capsys):
    for extra, message in [
        (["--text-file", "ptb"], "--text-file takes CORPUS=PATH, e.g. ptb=ptb.valid.txt; got 'ptb'"),
        (["--block", "4096"], "ptb/validation has"),
    ]:
        with pytest.raises(SystemExit):
            main(["eval-ppl", "--ckpt", str(mdlm_run[0]), "--corpora", "ptb", "--text-file", f"ptb={texts / 'valid.txt'}",
                  "--cache-dir", str(tmp_path), "--out-dir", str(tmp_path), *extra])
        assert message in capsys.readouterr().err


def test_zero_shot_launcher_runs_end_to_end(texts, mdlm_run, tmp_path):
    files = [f"--text-file={name}={texts / 'valid.txt'}" for name in ("ptb", "wikitext2")]
    result = run_launcher("eval_zero_shot.sh", str(mdlm_run[0]), "--corpora", "ptb", "wikitext2", *files,
                          "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| wikitext2 | validation |" in (tmp_path / "out" / "perplexity.md").read_text()

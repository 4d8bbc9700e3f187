"""Session fixtures shared by several test files, each built once: test-written text, tokenizers trained on it and
a tiny MDLM trained on it; the converted bundled genome and a tiny DNA run trained on it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from dna_runs import train_args
from text_runs import tiny_text_run
from text_tokenizers import bert_style_tokenizer, gpt2_style_tokenizer, small_corpus

from mdlm_bio.cli import main


@pytest.fixture(scope="session")
def texts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text")
    (root / "train.txt").write_text("\n\n".join(small_corpus(600)))
    (root / "valid.txt").write_text("\n\n".join(small_corpus(60, seed=7)))
    gpt2_style_tokenizer(root / "gpt2")
    bert_style_tokenizer(root / "bert")
    return root


@pytest.fixture(scope="session")
def mdlm_run(texts) -> tuple[Path, str]:
    """A text-tiny MDLM trained 100 steps, and what it printed."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        main(tiny_text_run(texts, "mdlm", "gpt2", 100))
    return texts / "mdlm", output.getvalue()


@pytest.fixture(scope="session")
def masked_lm(tmp_path_factory) -> Path:
    """A 2-layer BERT with random weights and a WordPiece tokenizer over the test texts' words, saved as
    transformers saves models (config.json, model.safetensors, tokenizer files): a Hugging Face encoder without
    a download."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    folder = tmp_path_factory.mktemp("tiny-bert")
    bert_style_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Where the bundled genome is converted (once)."""
    return tmp_path_factory.mktemp("genome")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, data_dir) -> Path:
    """A tiny DNA MDLM trained 30 steps; tests read it and must not change it."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    main(train_args(run, data_dir, steps=30))
    return run


@pytest.fixture(scope="session")
def ar_run(tmp_path_factory, data_dir) -> Path:
    """A tiny DNA autoregressive baseline trained 4 steps; tests read it and must not change it."""
    run = tmp_path_factory.mktemp("ar") / "run"
    main(train_args(run, data_dir, steps=4, every=4, preset="demo-ar"))
    return run

"""GLUE fine-tuning on small local tables in the `glue` schema: the sweep learns an easy rule, writes each task's
published metrics and the table beside the paper's rows, resumes, frames sentence pairs as each tokenizer's
model was pretrained, and names bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from dna_runs import error_of
from text_runs import run_launcher
from text_tokenizers import WORDS

from mdlm_bio.cli import main
from mdlm_bio.tasks.glue import glue_backbone
from mdlm_bio.text.glue import encode, glue_tasks, load_split
from mdlm_bio.text.tokenizer import load_tokenizer
from mdlm_bio.training.text_classifier import TextClassifier

MARK = "genome"  # the easy rule: does the (second) sentence contain it?


def sentence(rng: random.Random, marked: bool) -> str:
    words = [rng.choice([w for w in WORDS if w != MARK]) for _ in range(rng.randint(4, 9))]
    if marked:
        words[rng.randrange(len(words))] = MARK
    return " ".join(words)


def write_table(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory) -> Path:
    """sst2 (one sentence), rte (pairs), stsb (a 0-5 score: how many marks) and mnli (3 classes, matched and
    mismatched splits), in jsonl tables named as the hub's splits."""
    root, rng = tmp_path_factory.mktemp("glue"), random.Random(0)
    for split, size in (("train", 240), ("validation", 60), ("validation_matched", 30), ("validation_mismatched", 30)):
        labels = [index % 2 for index in range(size)]
        if split in ("train", "validation"):
            write_table(root / "sst2" / f"{split}.jsonl",
                        [{"sentence": sentence(rng, bool(label)), "label": label, "idx": i} for i, label in enumerate(labels)])
            write_table(root / "rte" / f"{split}.jsonl",
                        [{"sentence1": sentence(rng, False), "sentence2": sentence(rng, bool(label)), "label": label,
                          "idx": i} for i, label in enumerate(labels)])
            write_table(root / "stsb" / f"{split}.jsonl",
                        [{"sentence1": sentence(rng, bool(label)), "sentence2": sentence(rng, False),
                          "label": 5.0 * label, "idx": i} for i, label in enumerate(labels)])
        if split != "validation":
            write_table(root / "mnli" / f"{split}.jsonl",
                        [{"premise": sentence(rng, False), "hypothesis": sentence(rng, bool(index % 3)),
                          "label": index % 3, "idx": index} for index in range(size)])
    return root


def glue_args(masked_lm: Path, glue_dir: Path, run: Path, *tasks: str) -> list[str]:
    return ["finetune", "glue", "grid.lr=[1e-3]", "epochs=4", "epochs_per_task={}", "data.batch_size=16",
            "trainer.enable_progress_bar=false", "model.dropout=0.0", "--ckpt", str(masked_lm), "--data-dir",
            str(glue_dir), "--run-dir", str(run), "--seeds", "1", "--datasets", *tasks]


def test_the_sweep_learns_easy_tasks_and_tables_every_metric_beside_the_paper(masked_lm, glue_dir, tmp_path, capsys):
    run = tmp_path / "glue"
    main(glue_args(masked_lm, glue_dir, run, "sst2", "rte", "stsb", "mnli"))
    summary = json.loads((run / "results.json").read_text())["summary"]
    assert set(summary) == {"sst2", "rte", "stsb", "mnli/validation_matched", "mnli/validation_mismatched"}
    assert summary["sst2"]["mean"] > 90 and summary["rte"]["mean"] > 80, summary  # "contains genome" is learnt
    assert summary["stsb"]["metrics"] == ["pearson", "spearman"] and summary["stsb"]["mean"] > 50
    runs = {row["task"]: row for row in json.loads((run / "results.json").read_text())["runs"]}
    assert set(runs["stsb"]["scores"]["validation"]) == {"pearson", "spearman"}
    assert set(runs["mnli"]["scores"]) == {"validation_matched", "validation_mismatched"}
    table = (run / "results.md").read_text()
    assert "| paper: BERT | 84.43 | 85.35 | 88.41 |" in table and "paper: BERT + MDLM fine-tune" in table
    capsys.readouterr()
    main(glue_args(masked_lm, glue_dir, run, "sst2"))  # finished runs are read back, not trained again
    assert "fine-tuning sst2" not in capsys.readouterr().out


def test_sentence_pairs_are_framed_as_each_tokenizer_frames_them(texts, glue_dir):
    rte = glue_tasks()["rte"]
    table = load_split(rte, "validation", glue_dir).select(range(2))
    bert = load_tokenizer(str(texts / "bert"))
    framed = encode(table, rte, bert, 128)[0]
    ids, types = framed["input_ids"], framed["token_type_ids"]
    first_sep = ids.index(bert.eos_id)
    assert ids[0] == bert.bos_id and ids[-1] == bert.eos_id and ids.count(bert.eos_id) == 2  # [CLS] a [SEP] b [SEP]
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    gpt2 = load_tokenizer(str(texts / "gpt2"))
    framed = encode(table, rte, gpt2, 128)[0]
    ids = framed["input_ids"]
    assert ids[0] == gpt2.bos_id and ids[-1] == gpt2.eos_id and ids.count(gpt2.eos_id) == 3  # BOS a EOS b EOS
    assert len(encode(table, rte, bert, 8)[0]["input_ids"]) == 8


def test_bad_glue_input_is_named(masked_lm, glue_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    write_table(broken / "rte" / "train.jsonl", [{"sentence1": "a", "label": 0}])
    cases = [
        (glue_args(masked_lm, broken, tmp_path / "r1", "rte"),
         f"{broken / 'rte' / 'train.jsonl'}: no ['sentence2'] column(s); the table needs "
         f"['sentence1', 'sentence2', 'label']"),
        (glue_args(masked_lm, glue_dir, tmp_path / "r2", "cola"),
         f"no train table in {glue_dir / 'cola'}"),
        (glue_args(masked_lm, glue_dir, tmp_path / "r3", "squad"),
         "unknown GLUE task(s) ['squad']; choose from ['mnli', 'qqp', 'qnli', 'sst2', 'cola', 'stsb', 'mrpc', 'rte']"),
        (["finetune", "glue", "--data-dir", str(glue_dir), "--run-dir", str(tmp_path / "r4")],
         "finetune glue needs --ckpt"),
        (glue_args(masked_lm, glue_dir, tmp_path / "r5", "rte") + ["--mirror", "http://x"],
         "--mirror and --no-download are Genomic Benchmarks' options"),
        (glue_args(masked_lm, glue_dir, tmp_path / "r6", "rte")[:2] + ["model.pooling=max"]
         + glue_args(masked_lm, glue_dir, tmp_path / "r6", "rte")[2:],
         "model.pooling must be one of ['auto', 'first', 'mean'], not 'max'"),
    ]
    for argv, message in cases:
        assert message in error_of(capsys, argv)


def test_the_comparison_script_runs_before_and_after_on_local_data(masked_lm, texts, glue_dir, tmp_path):
    run = tmp_path / "mlm-mdlm"
    local_text = (f"data.tokenizer={masked_lm} data.train_files=[{texts / 'train.txt'}] "
                  f"data.valid_files=[{texts / 'valid.txt'}] data.cache_dir={texts / 'cache'} data.window=64 "
                  "data.batch_size=8 trainer.max_steps=20 trainer.val_check_interval=20 trainer.accelerator=cpu "
                  "trainer.devices=1 trainer.strategy=auto trainer.precision=32-true trainer.accumulate_grad_batches=1 "
                  "trainer.enable_progress_bar=false data.num_workers=0 data.num_proc=null")
    result = run_launcher("glue_comparison.sh", str(masked_lm), str(run), env={
        "TRAIN_ARGS": local_text, "PPL_ARGS": f"--corpora ptb --text-file ptb={texts / 'valid.txt'} --cache-dir "
                                              f"{texts / 'cache'} --block 64",
        "GLUE_ARGS": f"--data-dir {glue_dir} --datasets rte --seeds 1"})
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = (run / "comparison.md").read_text()
    assert comparison.count("| ptb | validation |") == 2 and comparison.count("| paper: BERT |") == 2


def test_our_dit_fine_tunes_on_glue_with_mean_pooling(mdlm_run, glue_dir, tmp_path):
    """A text-tiny MDLM run (GPT-2-style tokenizer, no pair template, no padding mask) through the same sweep."""
    run = tmp_path / "dit"
    main(["finetune", "glue", "grid.lr=[1e-3]", "epochs=2", "epochs_per_task={}", "data.batch_size=16",
          "trainer.enable_progress_bar=false", "--ckpt", str(mdlm_run[0]), "--data-dir", str(glue_dir), "--run-dir",
          str(run), "--seeds", "1", "--datasets", "rte"])
    summary = json.loads((run / "results.json").read_text())["summary"]
    assert set(summary) == {"rte"} and 0 <= summary["rte"]["mean"] <= 100
    (backbone, _), _ = glue_backbone(str(mdlm_run[0]), False)
    classifier = TextClassifier({"model": {"pooling": "auto", "dropout": 0.0}}, backbone, 2)
    assert classifier.pooling == "mean"

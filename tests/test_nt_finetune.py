"""The Nucleotide Transformer fine-tuning sweep (issue 32): stratified, seeded cross-validation folds; the task's
metric over each evaluation epoch against scikit-learn; the CLI end to end on local tables in the hub's schema
(train, best checkpoint by the task's metric, table beside the published numbers, resume), and its refusals."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from benchmark_data import biased_dna
from dna_runs import error_of
from sklearn.metrics import f1_score, matthews_corrcoef

from mdlm_bio.cli import main
from mdlm_bio.dna.benchmarks import LabelledSequences, fold_split, stratified_folds
from mdlm_bio.dna.nt_tasks import nt_tasks
from mdlm_bio.dna.tokenizer import encode
from mdlm_bio.tasks.classifier_runs import scratch_backbone
from mdlm_bio.training.classifier import SequenceClassifier, load_classifier
from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.data.labelled import LabelledDataModule, collate

TINY = ["--preset", "nucleotide-transformer-tiny"]
QUIET = "trainer.enable_progress_bar=false"


def labelled(counts: list[int]) -> LabelledSequences:
    labels = np.repeat(np.arange(len(counts)), counts)
    sequences = [np.full(3, 7 + index % 4, dtype=np.uint8) for index in range(labels.size)]
    return LabelledSequences(sequences, labels, tuple(str(c) for c in range(len(counts))))


def test_folds_are_stratified_balanced_disjoint_and_seeded():
    data = labelled([23, 7, 40])
    folds = stratified_folds(data.labels, 10, seed=3)
    sizes = np.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 70
    for label, count in enumerate([23, 7, 40]):
        per_fold = np.bincount(folds[data.labels == label], minlength=10)
        assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == count  # each class in proportion
    np.testing.assert_array_equal(folds, stratified_folds(data.labels, 10, seed=3))
    assert not np.array_equal(folds, stratified_folds(data.labels, 10, seed=4))
    validation = [fold_split(data, fold, 10, seed=3)[1] for fold in range(10)]
    assert sum(len(v) for v in validation) == 70  # the ten validation folds partition the training set
    train, valid = fold_split(data, 2, 10, seed=3)
    assert len(train) + len(valid) == 70 and np.bincount(valid.labels).tolist() == np.bincount(
        data.labels[folds == 2]).tolist()
    with pytest.raises(ValueError, match="cross-validation needs at least 2 folds, not 1"):
        stratified_folds(data.labels, 1, seed=0)
    with pytest.raises(ValueError, match="3 training examples cannot make 10 folds"):
        stratified_folds(np.array([0, 1, 0]), 10, seed=0)


@pytest.mark.parametrize(("metric", "reference"), [("matthews", matthews_corrcoef), ("f1", f1_score)])
def test_the_epoch_metric_is_scikit_learns_on_all_the_epochs_predictions(metric, reference):
    """Matthews correlation and F1 are not means of per-batch values: the classifier scores the whole epoch."""
    config = {**to_plain(load_config("nucleotide-transformer-tiny", kind="finetune")), "seed": 0, "metric": metric}
    torch.manual_seed(0)
    model = SequenceClassifier(config, scratch_backbone(config["model"]), ["0", "1"])
    rng = np.random.default_rng(0)
    data = labelled([30, 21])
    data = LabelledSequences([rng.integers(7, 11, 12).astype(np.uint8) for _ in data.labels], data.labels, data.classes)
    batch = collate([(sequence, 0) for sequence in data.sequences], max_length=12)
    with torch.no_grad():  # move the untrained head's threshold to the median, so it predicts both classes
        margins = model(batch["tokens"], batch["attention_mask"], conjoin=model.conjoin).diff(dim=-1)[:, 0]
        model.head.bias[1] -= margins.median() + 1e-4
        predictions = model(batch["tokens"], batch["attention_mask"], conjoin=model.conjoin).argmax(-1).numpy()
    assert 15 < predictions.sum() < 36
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    loaded = LabelledDataModule(data, data, None, batch_size=8, max_length=12, seed=0)
    (logged,) = trainer.validate(model, datamodule=loaded, verbose=False)
    assert logged[f"val/{metric}"] == pytest.approx(reference(data.labels, predictions), abs=1e-6)
    assert logged["val/acc"] == pytest.approx(np.mean(predictions == data.labels), abs=1e-6)


def write_task(root, name: str, classes: int, train: int, test: int, seed: int) -> None:
    """root/name/{train,test}.jsonl in the hub's schema: class 0 GC-rich, class 1 AT-rich, class 2 neither."""
    rng = np.random.default_rng(seed)
    kinds = [("GC", 0.85), ("AT", 0.85), ("GC", 0.5)][:classes]
    (root / name).mkdir(parents=True)
    for split, count in (("train", train), ("test", test)):
        rows = [{"sequence": biased_dna(rng, 48, rich, bias), "label": label, "name": f"{split}_{label}_{index}"}
                for label, (rich, bias) in enumerate(kinds) for index in range(count)]
        (root / name / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def nt_sweep(tmp_path_factory):
    """Two tasks (binary F1, three-class Matthews) x 2 seeds of the tiny preset, checkpoints kept."""
    root = tmp_path_factory.mktemp("nt")
    write_task(root / "data", "promoter_tata", 2, train=45, test=20, seed=0)
    write_task(root / "data", "enhancers_types", 3, train=30, test=15, seed=1)
    argv = ["finetune", "nucleotide-transformer", QUIET, "keep_checkpoints=true", *TINY, "--data-dir",
            str(root / "data"), "--datasets", "promoter_tata", "enhancers_types", "--seeds", "2", "--run-dir",
            str(root / "run")]
    main(argv)
    return root, argv


def test_the_sweep_tests_each_fold_with_its_best_checkpoint_and_tables_it(nt_sweep, capsys):
    root, argv = nt_sweep
    results = json.loads((root / "run" / "results.json").read_text())
    summary, scores = results["summary"], [r["test_score"] for r in results["runs"] if r["task"] == "promoter_tata"]
    assert len(results["runs"]) == 4 and sorted(r["fold"] for r in results["runs"]) == [0, 0, 1, 1]
    assert summary["promoter_tata"]["mean"] == pytest.approx(np.mean(scores))
    assert summary["promoter_tata"]["spread"] == pytest.approx(max(scores) - min(scores))
    assert summary["promoter_tata"]["mean"] > 0.8  # GC-rich vs AT-rich is easy
    assert summary["enhancers_types"]["metric"] == "matthews" and results["published"]["columns"]["NT-v2"] == "500M"
    run = next(r for r in results["runs"] if r["task"] == "enhancers_types" and r["seed"] == 2)
    assert (run["fold"], run["num_train"], run["num_valid"], run["num_test"]) == (1, 60, 30, 45)  # 3 folds of 90
    model = load_classifier(run["checkpoint"])
    assert model.metric == "matthews" and model.classes == ["0", "1", "2"]
    test = [json.loads(line) for line in (root / "data" / "enhancers_types" / "test.jsonl").read_text().splitlines()]
    batch = collate([(encode(row["sequence"]), row["label"]) for row in test], max_length=200)
    with torch.no_grad():
        predicted = model(batch["tokens"], batch["attention_mask"], conjoin=model.conjoin).argmax(-1).numpy()
    assert run["test_score"] == pytest.approx(matthews_corrcoef(batch["labels"].numpy(), predicted), abs=1e-6)

    markdown = (root / "run" / "results.md").read_text()
    assert "| promoter_tata | f1 | **" in markdown and "0.953 ± 0.016" in markdown  # Caduceus-Ph, published
    assert "| enhancers_types | matthews | **" in markdown and "(n=2, lr 0.003, batch 32)" in markdown

    stamp = (root / "run" / "promoter_tata" / "lr_0.003_bs_32" / "seed_1" / "result.json").stat().st_mtime_ns
    main(argv)  # every run is done: nothing retrains
    assert (root / "run" / "promoter_tata" / "lr_0.003_bs_32" / "seed_1" / "result.json").stat().st_mtime_ns == stamp
    assert "fine-tuning" not in capsys.readouterr().out


def test_bad_sweep_settings_are_refused(tmp_path, capsys):
    write_task(tmp_path / "data", "H3", 2, train=4, test=2, seed=0)

    def argv(*settings: str, task: str = "H3") -> list[str]:
        return ["finetune", "nucleotide-transformer", QUIET, *settings, *TINY, "--data-dir", str(tmp_path / "data"),
                "--datasets", task, "--run-dir", str(tmp_path / "run")]

    cases = [
        (argv("grid.batch_size=[0]"), "grid.batch_size must list positive integers, not [0]"),
        (argv("data.folds=0"), "data.folds must be a positive integer, not 0"),
        (argv(task="H5"), "unknown Nucleotide Transformer task(s) ['H5']"),
        (argv() + ["--no-download"], "--mirror and --no-download are Genomic Benchmarks' options; "
                                     "nucleotide-transformer is read from the hub"),
        (argv("data.folds=20"), "8 training examples cannot make 20 folds"),
    ]
    for arguments, message in cases:
        assert message in error_of(capsys, arguments)
    assert not (tmp_path / "run" / "H3" / "lr_0.003_bs_32").exists() and "H3" in nt_tasks()

"""Genomic Benchmarks: the folder layout, download through the package, classifier, and the finetune CLI."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from benchmark_data import write_benchmark
from dna_runs import train_args
from safetensors.torch import save_file
from test_pretrained import D_MODEL, LAYERS, caduceus_state
from text_runs import run_launcher

from mdlm_bio.backbones import build_backbone
from mdlm_bio.backbones.pretrained import CheckpointError
from mdlm_bio.cli import main
from mdlm_bio.dna.benchmarks import (
    STANDARD_DATASETS,
    carve_validation,
    download,
    ensure_present,
    read_split,
)
from mdlm_bio.dna.strands import other_strand
from mdlm_bio.dna.tokenizer import PAD, SequenceError, decode
from mdlm_bio.tasks.classifier_runs import pretrained_backbone
from mdlm_bio.tasks.finetune import select_datasets
from mdlm_bio.training.classifier import SequenceClassifier, load_classifier, mean_pool
from mdlm_bio.training.config import ConfigError, load_config
from mdlm_bio.training.data import preset_backbone
from mdlm_bio.training.data.labelled import collate, random_reverse_complement

TINY_RUN = ["--preset", "genomic-benchmarks-tiny"]


def test_read_split_numbers_classes_in_sorted_order_and_reads_iupac_as_n(tmp_path):
    folder = tmp_path / "demo_human_or_worm"
    for split in ("train", "test"):
        for label, sequence in (("worm", "ACGTR\n"), ("human", "ggcc")):
            (folder / split / label).mkdir(parents=True)
            (folder / split / label / "1.txt").write_text(sequence)
    data = read_split(folder, "train")
    assert data.classes == ("human", "worm")
    assert data.labels.tolist() == [0, 1]
    assert data.sequences[0].tolist() == [9, 9, 8, 8]
    assert data.sequences[1].tolist() == [7, 8, 9, 10, 11]


def test_read_split_errors_name_the_file_and_the_mismatch(tmp_path):
    folder = write_benchmark(tmp_path, "demo_human_or_worm", train=2, test=2)
    bad = folder / "train" / "gc_rich" / "0.txt"
    bad.write_text("ACGX")
    with pytest.raises(SequenceError, match=f"^{bad}: illegal character 'X' at position 4"):
        read_split(folder, "train")
    (folder / "test" / "extra").mkdir()
    with pytest.raises(ValueError, match=r"train classes \['at_rich', 'gc_rich'\] differ from test classes"):
        read_split(folder, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        read_split(folder, "valid")


def test_missing_dataset_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"human_ocr_ensembl has no train/ and test/ folders; download it"):
        ensure_present("human_ocr_ensembl", tmp_path, allow_download=False)
    with pytest.raises(ValueError, match="the genomic-benchmarks cloud cache has no dataset 'nope'"):
        download("nope", tmp_path)


def test_carve_validation_is_stratified_disjoint_and_seeded(tmp_path):
    data = read_split(write_benchmark(tmp_path, "toy", train=50, test=1), "train")
    train, valid = carve_validation(data, 0.1, seed=3)
    assert len(train) + len(valid) == 100
    assert np.bincount(valid.labels).tolist() == [5, 5]
    train_keys = {s.tobytes() for s in train.sequences}
    assert not train_keys & {s.tobytes() for s in valid.sequences}
    again = carve_validation(data, 0.1, seed=3)[1]
    other = carve_validation(data, 0.1, seed=4)[1]
    assert [s.tobytes() for s in again.sequences] == [s.tobytes() for s in valid.sequences]
    assert [s.tobytes() for s in other.sequences] != [s.tobytes() for s in valid.sequences]
    with pytest.raises(ValueError, match=r"validation fraction must be in \(0, 1\); got 1.0"):
        carve_validation(data, 1.0, seed=0)


def test_download_goes_through_the_package_cloud_cache(tmp_path):
    """The package's own zip download, pointed at a local mirror with Zenodo's URL layout."""
    source = write_benchmark(tmp_path / "source", "human_nontata_promoters", train=3, test=2)
    served = tmp_path / "served"
    (served / "files").mkdir(parents=True)
    shutil.make_archive(str(served / "files" / "human_nontata_promoters_v0"), "zip", source.parent, source.name)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        mirror = f"http://127.0.0.1:{httpd.server_address[1]}/"
        folder = ensure_present("human_nontata_promoters", tmp_path / "data", allow_download=True, mirror=mirror)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(read_split(folder, "train")) == 6 and len(read_split(folder, "test")) == 4
    assert not (tmp_path / "data" / "human_nontata_promoters.zip").exists()


def test_select_datasets_defaults_to_the_eight_plus_drosophila_when_present(tmp_path):
    assert select_datasets(None, tmp_path) == list(STANDARD_DATASETS)
    write_benchmark(tmp_path, "drosophila_enhancers_stark", train=1, test=1)
    write_benchmark(tmp_path, "my_own", train=1, test=1)
    assert select_datasets(["all"], tmp_path) == [*STANDARD_DATASETS, "drosophila_enhancers_stark"]
    assert select_datasets(["my_own", "demo_human_or_worm"], tmp_path) == ["my_own", "demo_human_or_worm"]
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['typo'\]: not in Genomic Benchmarks"):
        select_datasets(["typo"], tmp_path)


def test_mean_pool_ignores_padding():
    features = torch.arange(12.0).reshape(1, 4, 3)
    mask = torch.tensor([[True, True, False, False]])
    torch.testing.assert_close(mean_pool(features, mask), torch.tensor([[1.5, 2.5, 3.5]]))


def classifier(rcps: bool, conjoin: bool | str) -> SequenceClassifier:
    config = load_config("genomic-benchmarks-tiny", [f"model.conjoin={str(conjoin).lower()}"], kind="finetune")
    backbone = preset_backbone("caduceus-tiny", [f"rcps={rcps}"])
    torch.manual_seed(0)
    return SequenceClassifier({"seed": 0, **config}, backbone, ["a", "b", "c"]).double().eval()


@pytest.mark.parametrize(("rcps", "conjoin"), [(True, "auto"), (False, "auto"), (False, True)])
def test_predictions_are_reverse_complement_invariant_for_ps_and_conjoined_ph(rcps, conjoin):
    model = classifier(rcps, conjoin)
    batch = collate([(np.array([7, 8, 9, 9, 10, 11, 7]), 0), (np.array([10, 10, 8]), 1)], max_length=16)
    flipped = other_strand(batch["tokens"])
    with torch.no_grad():
        torch.testing.assert_close(
            model.predict_proba(batch["tokens"], batch["attention_mask"]), model.predict_proba(flipped, flipped != PAD)
        )


def test_unconjoined_ph_is_not_invariant():
    """The check above can fail: without conjoining, a Ph model sees the two strands differently."""
    model = classifier(rcps=False, conjoin=False)
    batch = collate([(np.array([7, 8, 9, 9, 10, 11, 7]), 0)], max_length=16)
    flipped = other_strand(batch["tokens"])
    with torch.no_grad():
        forward = model.predict_proba(batch["tokens"], batch["attention_mask"])
        assert not torch.allclose(forward, model.predict_proba(flipped, flipped != PAD))


def test_pretrained_backbone_reads_published_caduceus_and_our_runs(tmp_path):
    save_file(caduceus_state(rcps=False), str(tmp_path / "ph.safetensors"))
    config, weights = pretrained_backbone(tmp_path / "ph.safetensors")
    assert config["architecture"] == "caduceus" and config["rcps"] is False and config["d_model"] == 16
    build_backbone(config).load_state_dict(weights)

    main(train_args(tmp_path / "run", tmp_path / "genome", steps=2, every=2))
    config, weights = pretrained_backbone(tmp_path / "run")
    assert config["d_model"] == 32 and config["n_layer"] == 2
    build_backbone(config).load_state_dict(weights)


def test_finetune_config_rejects_bad_values():
    with pytest.raises(ConfigError, match=r"model.conjoin must be one of \['auto', True, False\], not 'sometimes'"):
        load_config("genomic-benchmarks", ["model.conjoin=sometimes"], kind="finetune")
    with pytest.raises(ConfigError, match="epochs must be a positive integer, not 0"):
        load_config("genomic-benchmarks", ["epochs=0"], kind="finetune")
    with pytest.raises(ConfigError, match="unknown fine-tuning preset 'nope'"):
        load_config("nope", kind="finetune")


def test_finetune_cli_trains_tests_summarises_and_resumes(tmp_path, capsys):
    data = tmp_path / "data"
    write_benchmark(data, "demo_human_or_worm", classes=("human", "worm"))
    run = tmp_path / "run"
    options = [*TINY_RUN, "--data-dir", str(data), "--datasets", "demo_human_or_worm", "--seeds", "2", "--run-dir",
               str(run), "--no-download"]
    argv = ["finetune", "genomic-benchmarks", "trainer.enable_progress_bar=false", *options]
    main(argv)
    results = json.loads((run / "results.json").read_text())
    per_seed = [r["test_accuracy"] for r in results["runs"]]
    summary = results["summary"]["demo_human_or_worm"]
    assert summary["seeds"] == [1, 2] and len(per_seed) == 2
    assert summary["mean"] == pytest.approx(np.mean(per_seed)) and summary["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert summary["mean"] > 0.9  # GC-rich vs AT-rich is easy; chance is 0.5
    assert results["runs"][0]["num_train"] == 116 and results["runs"][0]["num_valid"] == 12
    markdown = (run / "results.md").read_text()
    assert "| demo_human_or_worm | **" in markdown and "0.973 ± 0.001" in markdown  # Caduceus-Ph, published

    best = load_classifier(results["runs"][0]["checkpoint"])
    assert best.classes == ["human", "worm"]

    before = (run / "demo_human_or_worm" / "seed_1" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    main(argv)  # every seed is done: nothing retrains
    assert (run / "demo_human_or_worm" / "seed_1" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == before

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["finetune", "genomic-benchmarks", "optim.lr=1.0e-4", *options])
    assert "holds results made with optim={" in capsys.readouterr().err


def test_collate_pads_right_and_crops_to_max_length():
    batch = collate([(np.array([7, 8, 9, 10, 7, 8]), 1), (np.array([9, 9]), 0)], max_length=4)
    assert batch["tokens"].tolist() == [[7, 8, 9, 10], [9, 9, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert batch["labels"].tolist() == [1, 0]


def test_rc_augmentation_flips_whole_sequences_with_their_padding():
    batch = collate([(np.array([7, 7, 8]), 0)] * 400 + [(np.array([7, 7, 8, 9]), 1)], max_length=8)
    never = random_reverse_complement(batch, 0.0, torch.Generator().manual_seed(0))
    assert never["tokens"] is batch["tokens"]
    out = random_reverse_complement(batch, 0.5, torch.Generator().manual_seed(0))
    flipped = (out["tokens"][:400] != batch["tokens"][:400]).any(-1)
    assert flipped.float().mean().item() == pytest.approx(0.5, abs=0.08)
    assert out["tokens"][:400][flipped][0].tolist() == [PAD, 9, 10, 10]  # RC of AAC, padding now in front
    assert out["attention_mask"].sum().item() == batch["attention_mask"].sum().item()


class _Pickled:
    """Stands in for the hyperparameter objects a published Lightning checkpoint pickles."""


def test_a_pickled_published_checkpoint_is_refused_unless_trusted(tmp_path):
    torch.save({"state_dict": caduceus_state(rcps=False), "hyper_parameters": _Pickled()}, tmp_path / "published.ckpt")
    with pytest.raises(CheckpointError,
                       match=r"holds Python objects that a weights-only read refuses.*pass --trust-checkpoint"):
        pretrained_backbone(tmp_path / "published.ckpt")
    architecture, weights = pretrained_backbone(tmp_path / "published.ckpt", trusted=True)
    assert architecture["rcps"] is False and weights


def test_our_reader_agrees_with_the_packages_own_loader(tmp_path):
    """The package's GenomicClfDataset reads ~/.genomic_benchmarks (HOME points at tmp_path here); it must see
    the same (class, sequence) pairs as read_split, whatever class numbering each uses."""
    folder = write_benchmark(tmp_path / ".genomic_benchmarks", "human_enhancers_cohn", train=5, test=3)
    script = (
        "import json\nfrom genomic_benchmarks.dataset_getters.pytorch_datasets import get_dataset\n"
        "data = get_dataset('human_enhancers_cohn', 'test')\n"
        "names = {i: p.parent.name for i, p in zip(data.all_labels, data.all_paths)}\n"
        "print(json.dumps(sorted([names[y], x] for x, y in (data[i] for i in range(len(data))))))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    output = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    ours = read_split(folder, "test")
    expected = sorted([ours.classes[y], decode(s)] for s, y in zip(ours.sequences, ours.labels))
    assert json.loads(output) == expected and len(expected) == 6


def test_an_unreachable_mirror_is_a_clear_cli_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "genomic-benchmarks", "--datasets", "human_ocr_ensembl", "--data-dir", str(tmp_path),
              "--mirror", "http://127.0.0.1:9/", "--run-dir", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert error.startswith("mdlm-bio finetune: error: could not download human_ocr_ensembl from http://127.0.0.1:9:")
    assert error.endswith(f"retry, pass --mirror URL, or copy the dataset folder into {tmp_path}\n")


def test_the_caduceus_mlm_to_mdlm_comparison_runs_before_and_after_on_local_data(data_dir, tmp_path):
    """bench/caduceus_mlm_to_mdlm.sh end to end: a "published" Caduceus-PS (random weights in the hub layout), MDLM
    fine-tuning on the bundled genome instead of hg38, and a local Genomic Benchmarks dataset before and after."""
    save_file(caduceus_state(True), str(tmp_path / "model.safetensors"))
    write_benchmark(tmp_path / "gb", "demo_human_or_worm", classes=("human", "worm"))
    run = tmp_path / "mlm-to-mdlm"
    train = (f"data.dataset=bundled data.data_dir={data_dir} data.valid_records=[CHROMOSOME_II] "
             f"model.overrides.d_model={D_MODEL} model.overrides.n_layer={LAYERS} data.window=64 data.batch_size=8 "
             "data.valid_windows=16 data.num_workers=0 trainer.limit_val_batches=2 trainer.max_steps=4 "
             "checkpoint_every_n_steps=4 trainer.val_check_interval=4 trainer.precision=32-true trainer.devices=1 "
             "trainer.enable_progress_bar=false")
    finetune = (f"--preset genomic-benchmarks-tiny --data-dir {tmp_path / 'gb'} --datasets demo_human_or_worm "
                "--seeds 1 --no-download")
    result = run_launcher("caduceus_mlm_to_mdlm.sh", str(tmp_path / "model.safetensors"), str(run), folder="bench",
                          env={"TRAIN_ARGS": train, "FINETUNE_ARGS": finetune})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "comparison.md").read_text().count("| demo_human_or_worm | **") == 2
    assert f"initialised the backbone from {tmp_path / 'model.safetensors'}" in result.stdout

"""Class-conditional MDLM with classifier-free guidance, and classifier-based guidance by a noisy-input classifier:
backbone conditioning, label dropout, and a toy problem (GC-rich vs AT-rich DNA) where guidance must move samples
toward the requested class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_data import AT_RICH, GC_RICH, write_benchmark
from presets import dna_module

from mdlm_bio.backbones import build_backbone
from mdlm_bio.backbones.caduceus import reverse_complement_logits
from mdlm_bio.cli import main
from mdlm_bio.diffusion import guided_denoiser
from mdlm_bio.dna.fasta import read_fasta
from mdlm_bio.dna.metrics import gc_content
from mdlm_bio.dna.strands import other_strand
from mdlm_bio.dna.tokenizer import COMPLEMENT_MAP
from mdlm_bio.models import load_model
from mdlm_bio.models.diffusion_model import DiffusionModel
from mdlm_bio.training.config import ConfigError, load_config
from mdlm_bio.training.data import preset_backbone

DATASET = "gc_vs_at"


def conditional_caduceus(rcps: bool = True):
    torch.manual_seed(0)
    return build_backbone(preset_backbone("caduceus-tiny", [f"rcps={rcps}", "num_classes=3"])).double().eval()


def test_conditional_caduceus_ps_stays_reverse_complement_equivariant():
    model = conditional_caduceus()
    tokens = torch.randint(7, 12, (4, 19), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        logits = model(tokens, labels=labels)
        flipped = model(other_strand(tokens), labels=labels)
    torch.testing.assert_close(flipped, reverse_complement_logits(logits, torch.tensor(COMPLEMENT_MAP)))


def test_labels_condition_the_output_and_none_means_the_null_label():
    model = conditional_caduceus(rcps=False)
    tokens = torch.randint(7, 12, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first, second = model(tokens, labels=torch.tensor([0, 0])), model(tokens, labels=torch.tensor([1, 1]))
        torch.testing.assert_close(model(tokens), model(tokens, labels=torch.tensor([3, 3])))
    assert not torch.allclose(first, second)
    with pytest.raises(ValueError, match=r"labels must have shape \[2\], got \(3,\)"):
        model(tokens, labels=torch.tensor([0, 1, 2]))
    plain = build_backbone(preset_backbone("caduceus-tiny"))
    with pytest.raises(ValueError, match="labels given to a Caduceus built without num_classes"):
        plain(tokens, labels=torch.tensor([0, 1]))


def test_label_dropout_replaces_labels_by_the_null_label_at_its_rate():
    module = dna_module("conditional", ["data.label_dropout=0.25"], classes=("a", "b"))
    labels = torch.zeros(20_000, dtype=torch.long)
    dropped = module.drop_labels(labels, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0, 2}
    assert (dropped == 2).float().mean().item() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ConfigError, match=r"data.label_dropout must lie in \[0, 1\), not 1.0"):
        load_config("conditional", ["data.label_dropout=1.0"])


def test_class_lookup_errors_are_clear():
    unconditional = DiffusionModel(dna_module(), "run/last.ckpt", "demo")
    with pytest.raises(ValueError, match=r"run/last.ckpt holds an unconditional model; --class needs one trained"):
        unconditional.class_index("gc_rich")
    conditional = DiffusionModel(dna_module("conditional", classes=("a", "b")), "x", "conditional")
    assert conditional.class_index("b") == 1 and conditional.class_index("0") == 0
    with pytest.raises(ValueError, match=r"unknown class 'c'; this model knows \['a', 'b'\]"):
        conditional.class_index("c")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A conditional caduceus-tiny trained on GC-rich vs AT-rich sequences, with 30% label dropout."""
    root = tmp_path_factory.mktemp("conditional")
    write_benchmark(root / "data", DATASET, train=256, test=64, length=32)
    main(["train", "conditional", f"run_dir={root / 'run'}", f"data.data_dir={root / 'data'}", f"data.benchmark={DATASET}",
          "data.window=32", "data.label_dropout=0.3", "trainer.max_steps=150", "trainer.val_check_interval=50",
          "trainer.limit_val_batches=2", "trainer.log_every_n_steps=10", "trainer.enable_progress_bar=false"])
    return root


def gc_fraction(path: Path) -> float:
    return float(np.mean(gc_content([record.tokens for record in read_fasta(path)]).per_sequence))


def test_checkpoint_knows_its_classes(toy):
    model = load_model(toy / "run")
    assert model.classes == [AT_RICH, GC_RICH] and model.network.num_classes == 2


def test_guidance_moves_samples_toward_the_class(toy, capsys):
    """Unguided (w=0) samples mix both classes (GC ~0.5); w=1 and w=2 give the class's GC (0.85 or 0.15)."""
    gc = {}
    for label in (GC_RICH, AT_RICH):
        for weight in (0, 1, 2):
            out = toy / f"{label}_{weight}.fa"
            main(["sample", "--ckpt", str(toy / "run"), "--class", label, "--guidance", str(weight), "--num", "32",
                  "--out", str(out)])
            gc[label, weight] = gc_fraction(out)
    assert 0.3 < gc[GC_RICH, 0] < 0.7 and gc[GC_RICH, 0] == gc[AT_RICH, 0]  # w=0 ignores the class
    assert gc[GC_RICH, 1] > 0.75 and gc[GC_RICH, 2] > 0.75
    assert gc[AT_RICH, 1] < 0.25 and gc[AT_RICH, 2] < 0.25
    assert "class=gc_rich guidance=2" in (toy / f"{GC_RICH}_2.fa").read_text().splitlines()[0]

    capsys.readouterr()
    for argv, message in [
        (["--guidance", "2"], "--guidance needs --class: guidance steers toward a class"),
        (["--class", "nope"], "unknown class 'nope'; this model knows ['at_rich', 'gc_rich']"),
    ]:
        with pytest.raises(SystemExit):
            main(["sample", "--ckpt", str(toy / "run"), "--num", "2", "--out", str(toy / "x.fa"), *argv])
        assert capsys.readouterr().err == f"mdlm-bio sample: error: {message}\n"


@pytest.mark.parametrize("sampler", [["--sampler", "remdm", "--steps", "32"], ["--sampler", "confidence", "--steps", "16"]])
def test_guidance_steers_the_fewer_call_samplers_too(toy, sampler):
    for label, high in ((GC_RICH, True), (AT_RICH, False)):
        out = toy / f"{label}_{sampler[1]}.fa"
        main(["sample", "--ckpt", str(toy / "run"), "--class", label, "--guidance", "2", "--num", "32", "--out", str(out),
              *sampler])
        assert (gc_fraction(out) > 0.75) if high else (gc_fraction(out) < 0.25)


@pytest.fixture(scope="module")
def oracle(toy) -> Path:
    """A classifier of clean sequences fine-tuned on the toy: the judge of guided samples."""
    main(["finetune", "genomic-benchmarks", "trainer.enable_progress_bar=false", "--preset", "genomic-benchmarks-tiny",
          "--data-dir", str(toy / "data"), "--datasets", DATASET, "--seeds", "1", "--run-dir", str(toy / "finetune")])
    return toy / "finetune" / DATASET / "seed_1" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def noisy_classifier(toy) -> Path:
    """A noisy-input classifier of the toy run's masked noise (train-classifier), as its run folder."""
    main(["train-classifier", "--generator", str(toy / "run"), "--run-dir", str(toy / "noisy"), "epochs=3",
          "trainer.enable_progress_bar=false"])
    return toy / "noisy"


def test_oracle_accuracy_rises_with_guidance(toy, oracle):
    main(["evaluate-guidance", "--ckpt", str(toy / "run"), "--classifier", str(oracle), "--guidance", "0", "2",
          "--num", "16", "--out-dir", str(toy / "eval")])
    rows = {(row["class"], row["guidance"]): row for row in json.loads((toy / "eval" / "summary.json").read_text())["rows"]}
    for label in (GC_RICH, AT_RICH):
        assert rows[label, 2.0]["real_test_oracle_accuracy"] > 0.95
        assert rows[label, 2.0]["oracle_accuracy"] >= 0.9 > rows[label, 0.0]["oracle_accuracy"]
        assert rows[label, 2.0]["js_distance"]["3"] < rows[label, 0.0]["js_distance"]["3"]
        assert rows[label, 0.0]["discriminator_auroc"] > 0.9  # unguided samples give themselves away
        assert (toy / "eval" / f"class_{label}" / "guidance_2_report" / "report.md").is_file()
    assert "| gc_rich | 2 |" in (toy / "eval" / "summary.md").read_text()


def test_batched_guidance_equals_the_engines_two_call_guidance_everywhere_and_at_positions():
    module = dna_module("conditional", classes=("a", "b")).double().eval()
    z = torch.randint(3, 11, (5, 17), generator=torch.Generator().manual_seed(0))
    t = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    positions = (torch.tensor([0, 0, 2, 4]), torch.tensor([1, 16, 0, 7]))
    with torch.no_grad():
        for weight in (0.0, 1.0, 2.5, -0.5):
            two_calls = guided_denoiser(module.sampling_denoiser(1), module.sampling_denoiser(None), weight)
            batched = module.sampling_denoiser(1, weight)
            torch.testing.assert_close(batched(z, t).double().log_softmax(-1), two_calls(z, t).double())
            torch.testing.assert_close(batched.at(z, t, positions).double().log_softmax(-1),
                                       two_calls.at(z, t, positions).double())
    with pytest.raises(ValueError, match="class index 2 is out of range for 2 classes"):
        module.sampling_denoiser(2, 2.0)


def test_a_uniform_noise_model_is_guided_toward_the_class_too(tmp_path):
    """objective.kind=udlm on the same toy, with time conditioning: D-CFG (tempered reverse steps) at weights 1 and
    2 gives the class's GC, where the unguided samples mix both."""
    write_benchmark(tmp_path / "data", DATASET, train=256, test=64, length=32)
    run = tmp_path / "udlm"
    main(["train", "conditional", f"run_dir={run}", f"data.data_dir={tmp_path / 'data'}", f"data.benchmark={DATASET}",
          "data.window=32", "data.label_dropout=0.3", "trainer.max_steps=150", "trainer.val_check_interval=150",
          "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false", "objective.kind=udlm",
          "model.overrides.time_conditioning=true", "model.overrides.cond_dim=32"])
    gc = {}
    for label, weight in ((GC_RICH, 0), (GC_RICH, 2), (AT_RICH, 2)):
        out = tmp_path / f"{label}_{weight}.fa"
        main(["sample", "--ckpt", str(run), "--sampler", "udlm", "--steps", "64", "--class", label, "--guidance",
              str(weight), "--num", "32", "--out", str(out)])
        gc[label, weight] = gc_fraction(out)
    assert 0.3 < gc[GC_RICH, 0] < 0.7 and gc[GC_RICH, 2] > 0.75 and gc[AT_RICH, 2] < 0.25
    # ... and classifier-based guidance by a noisy-input classifier of its uniform noise (exact change scores),
    # through the same command
    main(["train-classifier", "--generator", str(run), "--run-dir", str(tmp_path / "noisy"), "epochs=3",
          "trainer.enable_progress_bar=false"])
    for label in (GC_RICH, AT_RICH):
        out = tmp_path / f"cbg_{label}.fa"
        main(["sample", "--ckpt", str(run), "--sampler", "udlm", "--steps", "16", "--class", label, "--guidance", "cbg",
              "--weight", "3", "--noisy-classifier", str(tmp_path / "noisy"), "--num", "8", "--out", str(out)])
        gc[label, "cbg"] = gc_fraction(out)
    assert gc[GC_RICH, "cbg"] > 0.7 and gc[AT_RICH, "cbg"] < 0.3


def test_classifier_based_guidance_moves_a_masked_models_samples_toward_the_class(toy, noisy_classifier, capsys):
    """The unconditional branch guided by the noisy-input classifier (exact change scores): weight 0 mixes both
    classes, weight 3 gives the class's GC."""
    gc = {}
    for label, weight in ((GC_RICH, 0), (GC_RICH, 3), (AT_RICH, 3)):
        out = toy / f"cbg_{label}_{weight}.fa"
        main(["sample", "--ckpt", str(toy / "run"), "--class", label, "--guidance", "cbg", "--weight", str(weight),
              "--noisy-classifier", str(noisy_classifier), "--sampler", "ancestral", "--steps", "16", "--num", "16",
              "--out", str(out)])
        gc[label, weight] = gc_fraction(out)
    assert 0.3 < gc[GC_RICH, 0] < 0.7 and gc[GC_RICH, 3] > 0.7 and gc[AT_RICH, 3] < 0.3
    assert "class=gc_rich guidance=cbg weight=3 model=" in (toy / f"cbg_{GC_RICH}_3.fa").read_text().splitlines()[0]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", str(toy / "run"), "--class", GC_RICH, "--guidance", "cbg", "--out", str(toy / "x.fa")])
    assert capsys.readouterr().err == ("mdlm-bio sample: error: --guidance cbg needs --noisy-classifier (mdlm-bio "
                                       "train-classifier --generator MODEL makes one)\n")


def test_evaluate_guidance_judges_classifier_based_guidance_too(toy, oracle, noisy_classifier):
    main(["evaluate-guidance", "--ckpt", str(toy / "run"), "--classifier", str(oracle), "--guidance", "cbg",
          "--weight", "0", "3", "--noisy-classifier", str(noisy_classifier), "--first-order", "--sampler", "ancestral",
          "--steps", "16", "--num", "16", "--out-dir", str(toy / "eval-cbg")])
    summary = json.loads((toy / "eval-cbg" / "summary.json").read_text())
    rows = {(row["class"], row["guidance"]): row for row in summary["rows"]}
    assert summary["method"] == "cbg-first-order"
    for label in (GC_RICH, AT_RICH):
        assert rows[label, 3.0]["oracle_accuracy"] >= 0.8 and rows[label, 3.0]["oracle_accuracy"] > rows[label, 0.0][
            "oracle_accuracy"]
    assert (toy / "eval-cbg" / "summary.md").read_text().startswith("# Classifier-based guidance")

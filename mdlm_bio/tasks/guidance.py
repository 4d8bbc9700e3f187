"""`mdlm-bio evaluate-guidance`: how well guidance hits each class of a model trained on labelled sequences,
classifier-free (its conditional branches) or classifier-based (its unconditional branch, guided by a noisy-input
classifier).

For every class and guidance weight: sample, ask a fine-tuned classifier (the oracle) which class each
sample belongs to, and compare the samples with that class's real test sequences through the
generation report (k-mer spectra, GC, diversity). The oracle accuracy of real test sequences is the
ceiling to read the generated rows against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..diffusion.sampler import Sampler
from ..dna.benchmarks import ensure_present, read_split, resolve_data_dir
from ..dna.fasta import write_fasta
from ..dna.report import GENERATED, generation_report
from ..dna.tokenizer import decode
from ..io import write_json_and_markdown
from ..models.handle import Model
from ..training.classifier import SequenceClassifier, load_classifier
from ..training.data.labelled import collate
from .common import load_for
from .guidance_choice import guidance_choice

if TYPE_CHECKING:
    from ..training.noisy_classifier import NoisyInputClassifier

DEFAULT_WEIGHTS = (0.0, 1.0, 2.0)


@torch.no_grad()
def predict_classes(classifier: SequenceClassifier, sequences: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """The oracle's top-1 class index for each sequence (cropped to the classifier's fine-tuning length)."""
    max_length = int(classifier.config["data"]["max_length"])
    device = classifier.head.weight.device
    predictions = []
    for start in range(0, len(sequences), batch_size):
        batch = collate([(sequence, 0) for sequence in sequences[start : start + batch_size]], max_length)
        probabilities = classifier.predict_proba(batch["tokens"].to(device), batch["attention_mask"].to(device))
        predictions.append(probabilities.argmax(-1).cpu().numpy())
    return np.concatenate(predictions)


def oracle_label_map(classifier: SequenceClassifier, model: Model) -> list[int]:
    """For each class index of the generator, the classifier's index of the same class name."""
    if sorted(classifier.classes) != sorted(model.classes):
        raise ValueError(f"the classifier knows classes {classifier.classes} but the generator {model.classes}; "
                         f"fine-tune the classifier on the generator's dataset")
    return [classifier.classes.index(name) for name in model.classes]


def evaluate_guidance(
    model: Model,
    classifier: SequenceClassifier,
    weights: Sequence[float],
    sampler: Sampler,
    *,
    num: int,
    length: int,
    out_dir: Path,
    batch_size: int,
    seed: int,
    data_dir: Path | None,
    max_reference: int = 2000,
    guide: NoisyInputClassifier | None = None,
    first_order: bool = False,
) -> dict[str, Any]:
    """Sample `num` sequences per (class, weight), guided classifier-free or, with a noisy-input `guide`,
    classifier-based; write FASTA, reports, summary.json and summary.md."""
    label_map = oracle_label_map(classifier, model)
    method = "cfg" if guide is None else "cbg-first-order" if first_order else "cbg"
    data = model.config["data"]
    folder = ensure_present(data["benchmark"], resolve_data_dir(data_dir or data["data_dir"]), allow_download=False)
    test = read_split(folder, "test")
    rows = []
    for label, name in enumerate(model.classes):
        class_dir = out_dir / f"class_{name}"
        real = test.of_class(test.classes.index(name))[:max_reference]
        reference = class_dir / "reference.fa"
        write_fasta(((f"{name}_{i}", f"{name}_{i} real test sequence", decode(s)) for i, s in enumerate(real)), reference)
        real_accuracy = float(np.mean(predict_classes(classifier, real) == label_map[label]))
        for weight in weights:
            condition = model.conditioning(name, weight, guide, first_order)
            out = model.sample(sampler, num=num, length=length, seed=seed, batch_size=batch_size, condition=condition)
            sequences = list(out.tokens.numpy())
            samples = class_dir / f"guidance_{weight:g}.fa"
            header = f"{condition.words.strip()} seed={seed}"
            write_fasta(((f"sample_{i}", f"sample_{i} {header}", decode(s)) for i, s in enumerate(sequences)), samples)
            report = generation_report(samples, reference, class_dir / f"guidance_{weight:g}_report")
            rows.append({
                "class": name, "method": method, "guidance": weight,
                "oracle_accuracy": float(np.mean(predict_classes(classifier, sequences) == label_map[label])),
                "real_test_oracle_accuracy": real_accuracy,
                "js_distance": report["js_distance"][GENERATED],
                "discriminator_auroc": (report["discriminator"][GENERATED] or {}).get("auroc"),
                "gc_mean": report["gc"][GENERATED]["mean"], "reference_gc_mean": report["gc"]["reference"]["mean"],
                "samples": str(samples),
            })
    summary = {"generator": model.source, "sampler": model.describe_sampling(sampler), "method": method, "num": num,
               "length": length, "rows": rows}
    write_json_and_markdown(out_dir, "summary", summary, _markdown(rows))
    return summary


def _markdown(rows: list[dict[str, Any]]) -> str:
    ks = list(rows[0]["js_distance"]) if rows else []
    header = ["class", "guidance", "oracle accuracy", "real test (ceiling)", *(f"JS k={k}" for k in ks),
              "discriminator AUROC", "GC mean", "real GC"]
    title = "Classifier-free" if rows and rows[0]["method"] == "cfg" else "Classifier-based"
    lines = [f"# {title} guidance: oracle accuracy and k-mer fit per class", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["class"], f"{row['guidance']:g}", f"{row['oracle_accuracy']:.3f}", f"{row['real_test_oracle_accuracy']:.3f}",
                 *(f"{row['js_distance'][k]:.4f}" for k in ks), _auroc(row["discriminator_auroc"]), f"{row['gc_mean']:.3f}",
                 f"{row['reference_gc_mean']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Oracle accuracy: the fraction of samples the fine-tuned classifier assigns to the requested class.",
              "JS: Jensen-Shannon distance between the samples' k-mer spectrum and the class's real test sequences.",
              "Discriminator AUROC: how well a k-mer logistic regression tells the samples from windows of the class's "
              "real test sequences, held out (0.5: indistinguishable; - where there are too few).", ""]
    return "\n".join(lines)


def _auroc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def evaluate(
    ckpt: str, *, classifier: Path, out_dir: Path, guidance: list[str | float] | None, weight: list[float] | None,
    noisy_classifier: Path | None, first_order: bool, num: int, length: int | None, batch_size: int,
    data_dir: Path | None, sampler: Sampler, seed: int, device: str,
) -> None:
    """`mdlm-bio evaluate-guidance`: sample every class at every guidance weight, judge the samples with a
    fine-tuned classifier and the k-mer report; summary.md/.json in `out_dir`."""
    choice = guidance_choice(guidance or [], weight, noisy_classifier, first_order)
    model = load_for(ckpt, device, "dna", "guidance evaluation")
    oracle = load_classifier(classifier, device)
    evaluate_guidance(model, oracle, choice.weights or DEFAULT_WEIGHTS, sampler, num=num,
                      length=length or model.context, out_dir=out_dir, batch_size=batch_size, seed=seed,
                      data_dir=data_dir, guide=choice.load_classifier(device), first_order=first_order)
    print((out_dir / "summary.md").read_text())

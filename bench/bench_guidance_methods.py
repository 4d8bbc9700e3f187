"""Which noise and which guidance for conditional DNA design (issue 31): MDLM + CFG, MDLM + CBG, UDLM + CFG and
UDLM + CBG at equal model size, data, training steps and sampling steps, judged by oracle accuracy against guidance
weight, with the k-mer Jensen-Shannon distance to the class's real sequences and a discriminator's AUROC beside it.

The labelled task is built here from the bundled genomes: 64-base windows of C. elegans ("worm") and of phage
lambda ("phage"), the first 80% of each record for training and the rest for testing, so no test window overlaps a
training one (a small cousin of Genomic Benchmarks' demo_human_or_worm). Everything runs through the command line:

1. `mdlm-bio train conditional` twice, objective mdlm and udlm, the same time-conditioned Caduceus-PS
   (caduceus-tiny + adaLN), window 64, label dropout 0.1;
2. `mdlm-bio train-classifier` for each (its own noise), a 2-layer time-conditioned Caduceus-PS;
3. `mdlm-bio finetune genomic-benchmarks` once for the oracle (a clean classifier, caduceus-tiny);
4. `mdlm-bio evaluate-guidance` for the four pairs: MDLM with the ancestral sampler, UDLM with its own, both at
   --sampling-steps steps; CBG with exact change scores.

Runs already in --out are reused, so a rerun only re-evaluates what is missing. Writes results.json and
guidance_methods.png (oracle accuracy against weight, and against 3-mer JS: with 32 samples of 64 bases, 6-mer
spectra are too sparse to rank methods) to --out.

    python bench/bench_guidance_methods.py --out bench/bench-results/guidance_methods   # ~1 h on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
from Bio import SeqIO
from harness import device_description, write_json

from mdlm_bio.cli import main

DATASET = "worm_or_phage"
GENOMES = {"worm": "c_elegans_1mb.fa.gz", "phage": "lambda_virus.fa.gz"}
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "mdlm_bio" / "data"
WINDOW = 64
TRAIN_FRACTION = 0.8
METHODS = {("mdlm", "cfg"): "MDLM + CFG", ("mdlm", "cbg"): "MDLM + CBG", ("udlm", "cfg"): "UDLM + CFG",
           ("udlm", "cbg"): "UDLM + CBG"}


def windows(sequence: str, stride: int) -> list[str]:
    """Windows of WINDOW bases every `stride` bases, without N."""
    found = (sequence[start : start + WINDOW] for start in range(0, len(sequence) - WINDOW + 1, stride))
    return [window for window in found if "N" not in window]


def write_dataset(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> Path:
    """root/worm_or_phage/{train,test}/{worm,phage}/<i>.txt; each class's windows drawn from the training or test
    part of every record."""
    rng = np.random.default_rng(seed)
    for label, file in GENOMES.items():
        with gzip.open(PACKAGE_DATA / file, "rt") as handle:
            records = [str(record.seq).upper() for record in SeqIO.parse(handle, "fasta")]
        splits = {"train": [], "test": []}
        for sequence in records:
            cut = int(len(sequence) * TRAIN_FRACTION)
            splits["train"] += windows(sequence[:cut], 8)
            splits["test"] += windows(sequence[cut:], 16)
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            folder = root / DATASET / split / label
            folder.mkdir(parents=True, exist_ok=True)
            chosen = rng.choice(len(splits[split]), size=min(count, len(splits[split])), replace=False)
            for index, position in enumerate(chosen):
                (folder / f"{index}.txt").write_text(splits[split][position])
    return root / DATASET


def train_generators(out: Path, steps: int) -> None:
    for process in ("mdlm", "udlm"):
        if (out / process / "checkpoints" / "last.ckpt").is_file():
            continue
        main(["train", "conditional", f"run_dir={out / process}", f"data.data_dir={out / 'data'}",
              f"data.benchmark={DATASET}", f"data.window={WINDOW}", "data.batch_size=32", "data.label_dropout=0.1",
              f"objective.kind={process}", "model.overrides.time_conditioning=true", "model.overrides.cond_dim=32",
              f"trainer.max_steps={steps}", "trainer.val_check_interval=500", "trainer.limit_val_batches=8",
              "trainer.enable_progress_bar=false"])


def train_classifiers(out: Path, epochs: int) -> None:
    for process in ("mdlm", "udlm"):
        if not list((out / f"noisy-{process}").glob("**/best.ckpt")):
            main(["train-classifier", "--generator", str(out / process), "--run-dir", str(out / f"noisy-{process}"),
                  f"epochs={epochs}", "model.overrides.n_layer=2", "trainer.enable_progress_bar=false"])
    if not list((out / "oracle").glob("**/best.ckpt")):
        main(["finetune", "genomic-benchmarks", f"epochs={epochs}", "trainer.enable_progress_bar=false", "--preset",
              "genomic-benchmarks-tiny", "--data-dir", str(out / "data"), "--datasets", DATASET, "--seeds", "1",
              "--run-dir", str(out / "oracle")])


def evaluate(out: Path, weights: list[float], num: int, sampling_steps: int) -> list[dict[str, Any]]:
    oracle = next((out / "oracle").glob("**/best.ckpt"))
    rows = []
    for (process, method), name in METHODS.items():
        eval_dir = out / f"eval-{process}-{method}"
        if not (eval_dir / "summary.json").is_file():
            guide = ["--noisy-classifier", str(out / f"noisy-{process}")] if method == "cbg" else []
            main(["evaluate-guidance", "--ckpt", str(out / process), "--classifier", str(oracle), "--guidance", method,
                  "--weight", *map(str, weights), *guide, "--sampler", "ancestral" if process == "mdlm" else "udlm",
                  "--steps", str(sampling_steps), "--num", str(num), "--length", str(WINDOW), "--out-dir",
                  str(eval_dir)])
        summary = json.loads((eval_dir / "summary.json").read_text())
        rows += [{**row, "method": name} for row in summary["rows"]]
    return rows


def by_method_and_weight(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method and weight averaged over the classes."""
    table = []
    for name in METHODS.values():
        for weight in sorted({row["guidance"] for row in rows if row["method"] == name}):
            group = [row for row in rows if row["method"] == name and row["guidance"] == weight]
            table.append({"method": name, "weight": weight,
                          **{key: float(np.mean([_value(row, key) for row in group])) for key in
                             ("oracle_accuracy", "real_test_oracle_accuracy", "js_3", "js_6", "discriminator_auroc")}})
    return table


def _value(row: dict[str, Any], key: str) -> float:
    if key.startswith("js_"):
        return row["js_distance"][key.removeprefix("js_")]
    value = row[key]
    return float("nan") if value is None else value


def plot(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_weight, frontier) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in METHODS.values():
        points = [row for row in table if row["method"] == name]
        style = "-" if name.startswith("MDLM") else "--"
        marker = "o" if name.endswith("CFG") else "s"
        by_weight.plot([p["weight"] for p in points], [p["oracle_accuracy"] for p in points], style, marker=marker,
                       label=name)
        frontier.plot([p["js_3"] for p in points], [p["oracle_accuracy"] for p in points], style, marker=marker,
                      label=name)
        for point in points:
            frontier.annotate(f"{point['weight']:g}", (point["js_3"], point["oracle_accuracy"]), fontsize=7,
                              xytext=(3, 3), textcoords="offset points")
    ceiling = table[0]["real_test_oracle_accuracy"]
    for axes in (by_weight, frontier):
        axes.axhline(ceiling, color="grey", lw=0.8, ls=":", label="real test sequences")
        axes.set_ylabel("oracle accuracy (mean over classes)")
        axes.grid(alpha=0.3)
    by_weight.set_xlabel("guidance weight")
    frontier.set_xlabel("3-mer JS distance to the class's real sequences (lower is closer)")
    by_weight.legend(fontsize=8)
    by_weight.set_title("oracle accuracy against guidance weight")
    frontier.set_title("accuracy against k-mer fit (labels: weight)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/bench-results/guidance_methods"))
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each generator")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each classifier")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--num", type=int, default=32, help="samples per class and weight")
    parser.add_argument("--sampling-steps", type=int, default=32)
    parser.add_argument("--train-per-class", type=int, default=3000)
    parser.add_argument("--test-per-class", type=int, default=300)
    args = parser.parse_args()
    if not (args.out / "data" / DATASET).is_dir():
        write_dataset(args.out / "data", args.train_per_class, args.test_per_class)
    train_generators(args.out, args.steps)
    train_classifiers(args.out, args.epochs)
    rows = evaluate(args.out, args.weights, args.num, args.sampling_steps)
    table = by_method_and_weight(rows)
    print(f"{'method':<12}{'weight':>7}{'oracle acc':>12}{'JS k=3':>9}{'JS k=6':>9}{'disc. AUROC':>13}")
    for row in table:
        print(f"{row['method']:<12}{row['weight']:>7g}{row['oracle_accuracy']:>12.3f}{row['js_3']:>9.4f}"
              f"{row['js_6']:>9.4f}{row['discriminator_auroc']:>13.3f}")
    print(f"oracle accuracy on real test sequences: {table[0]['real_test_oracle_accuracy']:.3f}")
    plot(table, args.out / "guidance_methods.png")
    write_json(args.out / "results.json", {"device": device_description("cpu"), "settings": vars(args) | {
        "out": str(args.out)}, "table": table, "rows": rows})


if __name__ == "__main__":
    main_bench()

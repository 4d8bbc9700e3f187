"""The DNA evaluation suite (issue 32) end to end at small scale, on fixtures built here from the bundled genomes,
since the hub is out of reach: every command of the suite runs as a user would run it, ending in `mdlm-bio benchmark`.

1. `mdlm-bio train demo`: a tiny Caduceus-PS MDLM pretrained on the bundled C. elegans DNA (the model under test);
2. `finetune genomic-benchmarks` on worm_or_phage (64-base windows of C. elegans vs phage lambda, as
   bench_guidance_methods.py builds them), from the pretrained model and from scratch;
3. `finetune nucleotide-transformer` on two tasks whose local folders hold the same worm-or-phage proxy (H3 scored
   by Matthews correlation, promoter_tata by F1), with the tiny preset's 3-fold cross-validation;
4. `evaluate-eqtl` on synthetic "eQTLs" placed on the C. elegans records: a variant is "causal" when its
   neighbourhood (the SNP +- 32 bases) is GC-richer than the median, a rule the embeddings can carry; distances to
   the "TSS" are drawn across the three buckets; the held-out records are the test split (a quarter of the rows);
5. `benchmark` over all of it.

The task names of steps 3 and 4 are placeholders for proxies: their published columns are the real tasks' numbers
and are not comparable with ours. What the run shows is that the suite works end to end and ranks what it should
(pretrained above scratch, GC-rich above chance). Runs already in --out are reused.

    python bench/bench_dna_suite.py --out bench/bench-results/dna_suite      # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
from bench_guidance_methods import DATASET, PACKAGE_DATA, write_dataset
from Bio import SeqIO

from mdlm_bio.cli import main
from mdlm_bio.dna.genome import BUNDLED_FASTA, BUNDLED_VALID_RECORDS

QUIET = "trainer.enable_progress_bar=false"
NT_PROXIES = ("H3", "promoter_tata")
DISTANCES = (5_000, 20_000, 50_000, 80_000, 150_000, 400_000)


def nt_tables(gb_folder: Path, root: Path) -> None:
    """The worm-or-phage windows as NT task tables (label 1: worm), one folder per proxy task."""
    for task in NT_PROXIES:
        for split in ("train", "test"):
            rows = [{"sequence": path.read_text(), "label": int(label == "worm")}
                    for label in ("phage", "worm") for path in sorted((gb_folder / split / label).glob("*.txt"))]
            (root / task).mkdir(parents=True, exist_ok=True)
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def eqtl_fixture(out: Path, variants: int, seed: int = 0) -> tuple[Path, Path]:
    """(reference FASTA, variant table) in the benchmark's columns, from the bundled C. elegans records."""
    with gzip.open(PACKAGE_DATA / BUNDLED_FASTA, "rt") as handle:
        records = {record.id: str(record.seq).upper() for record in SeqIO.parse(handle, "fasta")}
    reference = out / "c_elegans.fa"
    reference.write_text("".join(f">{name}\n{bases}\n" for name, bases in records.items()))
    rng, rows = np.random.default_rng(seed), []
    held_out = [name for name in records if name in BUNDLED_VALID_RECORDS]
    training = [name for name in records if name not in held_out]
    for _ in range(variants):
        name = str(rng.choice(held_out if rng.random() < 0.25 else training))  # a quarter for test
        bases = records[name]
        position = int(rng.integers(600, len(bases) - 600))
        if bases[position - 1] not in "ACGT":
            continue
        around = bases[position - 33 : position + 32]
        rows.append({"CHROM": name, "POS": position, "ALT": rng.choice([b for b in "ACGT" if b != bases[position - 1]]),
                     "gc": (around.count("G") + around.count("C")) / len(around), "tissue": rng.choice(["Liver", "Lung"]),
                     "distance_to_nearest_TSS": int(rng.choice(DISTANCES)),
                     "split": "test" if name in BUNDLED_VALID_RECORDS else "train"})
    median = float(np.median([row["gc"] for row in rows]))
    table = out / "All_Tissues.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["CHROM", "POS", "ALT", "label", "tissue",
                                                    "distance_to_nearest_TSS", "split"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{key: value for key, value in row.items() if key != "gc"}, "label": int(row["gc"] > median)})
    return reference, table


def run_suite(out: Path, steps: int, variants: int) -> None:
    model = out / "pretrained"
    if not (model / "checkpoints" / "last.ckpt").is_file():
        main(["train", "demo", f"run_dir={model}", f"data.data_dir={out / 'genome'}", f"trainer.max_steps={steps}", QUIET])
    data = out / "data"
    if not (data / DATASET).is_dir():
        write_dataset(data, train_per_class=400, test_per_class=200)
        nt_tables(data / DATASET, out / "nt_tables")
    for name, init in (("gb-pretrained", ["--ckpt", str(model)]), ("gb-scratch", [])):
        main(["finetune", "genomic-benchmarks", "epochs=4", QUIET, "--preset", "genomic-benchmarks-tiny", "--data-dir",
              str(data), "--datasets", DATASET, "--seeds", "3", "--run-dir", str(out / name), *init])
    for name, init in (("nt-pretrained", ["--ckpt", str(model)]), ("nt-scratch", [])):
        main(["finetune", "nucleotide-transformer", "epochs=4", QUIET, "--preset", "nucleotide-transformer-tiny",
              "--data-dir", str(out / "nt_tables"), "--datasets", *NT_PROXIES, "--run-dir", str(out / name), *init])
    reference, table = eqtl_fixture(out, variants)
    main(["evaluate-eqtl", "--ckpt", str(model), "--reference", str(reference), "--variants", str(table),
          "--window", "512", "--batch-size", "16", "--out-dir", str(out / "eqtl-pretrained")])
    main(["benchmark", *(str(out / name) for name in ("gb-pretrained", "gb-scratch", "nt-pretrained", "nt-scratch",
                                                     "eqtl-pretrained")), "--out", str(out / "suite.md")])


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/bench-results/dna_suite"))
    parser.add_argument("--steps", type=int, default=400, help="pretraining steps of the tiny model (default: 400)")
    parser.add_argument("--variants", type=int, default=1200, help="synthetic eQTL rows (default: 1200)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    options = parser.parse_args()
    if options.fresh:
        shutil.rmtree(options.out, ignore_errors=True)
    options.out.mkdir(parents=True, exist_ok=True)
    run_suite(options.out, options.steps, options.variants)


if __name__ == "__main__":
    main_bench()

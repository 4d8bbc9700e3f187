"""Zero-shot variant scores on real held-out DNA: do random substitutions score below the reference bases?

Draws random SNVs in the bundled genome's held-out records (the 25 kb of chromosomes II-X that `demo` and
`demo-ar` never train on), with the ALT uniform among the three other bases, scores them with
`mdlm-bio score-variants` for each model given, and prints per model: the mean score (log p(alt) - log p(ref),
nats), the AUROC of telling the reference base from the substitution at each site (the chance that the
substitution scores below its reference; 0.5 is chance), and alleles per second. A composition-only baseline
(the training record's base frequencies, no context) shows how much of the figure context earns.

For diffusion models it also scores random single-base deletions and compares the standard error of the paired
NELBO difference (both windows share their noise, what score-variants does) with that of independent draws.

    mdlm-bio demo --out-dir DEMO                      # the demo model (DEMO/run)
    mdlm-bio train demo-ar run_dir=AR                 # the AR baseline
    python bench/bench_variant_scores.py --ckpt DEMO/run AR --num 2000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from importlib.resources import as_file, files
from pathlib import Path

import torch
from harness import write_json
from sklearn.metrics import roc_auc_score

from mdlm_bio.dna.fasta import read_fasta, write_fasta
from mdlm_bio.dna.genome import BUNDLED_FASTA, BUNDLED_VALID_RECORDS
from mdlm_bio.dna.tokenizer import N, decode, encode
from mdlm_bio.dna.variant_plan import AlleleWindows, allele_windows, plan_record
from mdlm_bio.dna.vcf import Reference, VcfReader
from mdlm_bio.models import load_model
from mdlm_bio.models.handle import Model
from mdlm_bio.tasks.score_variants import score_variants

VCF_HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def bundled_sequences() -> dict[str, str]:
    with as_file(files("mdlm_bio") / "data" / BUNDLED_FASTA) as bundled:
        return {record.name: decode(record.tokens) for record in read_fasta(bundled)}


def random_substitutions(sequences: dict[str, str], num: int, seed: int) -> list[tuple[str, int, str, str]]:
    """(contig, 1-based position, ref, alt), sorted, at distinct sites with an A, C, G or T."""
    rng = random.Random(seed)
    sites = [(name, pos) for name in BUNDLED_VALID_RECORDS for pos in range(1, len(sequences[name]) + 1)
             if sequences[name][pos - 1] in "ACGT"]
    chosen = sorted(rng.sample(sites, num), key=lambda site: (BUNDLED_VALID_RECORDS.index(site[0]), site[1]))
    return [(name, pos, sequences[name][pos - 1], rng.choice([b for b in "ACGT" if b != sequences[name][pos - 1]]))
            for name, pos in chosen]


def random_deletions(sequences: dict[str, str], num: int, seed: int) -> list[tuple[str, int, str, str]]:
    """(contig, position, REF = anchor + deleted base, ALT = anchor), sorted, VCF-style."""
    return [(name, pos - 1, sequences[name][pos - 2] + ref, sequences[name][pos - 2])
            for name, pos, ref, _ in random_substitutions(sequences, num, seed + 1)
            if pos > 1 and sequences[name][pos - 2] in "ACGT"]


def write_vcf(path: Path, variants: list[tuple[str, int, str, str]]) -> None:
    path.write_text(VCF_HEADER + "".join(f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t.\n" for c, p, r, a in variants))


def independent_standard_error(model: Model, windows: AlleleWindows, mc: int) -> float:
    """The standard error of the NELBO difference had each window drawn its own noise."""
    def draws(bases: str, seed: int) -> torch.Tensor:
        batch = torch.as_tensor(encode(bases), dtype=torch.long).expand(mc, -1)
        out = model.network.engine.loss(model.network.denoiser, batch, batch != N, torch.Generator().manual_seed(seed))
        return out.per_sequence.double()

    with torch.no_grad():
        return float((draws(windows.ref, 0) - draws(windows.alt, 1)).std() / math.sqrt(mc))


def deletion_errors(ckpt: str, reference: Path, vcf: Path, folder: Path, mc: int) -> dict:
    """Median paired (score-variants) and independent standard errors over the deletions of `vcf`."""
    tsv = folder / "deletions.tsv"
    with contextlib.redirect_stderr(io.StringIO()):
        run_score_variants(vcf, reference, ckpt, folder / "deletions.vcf", tsv, mc)
    with open(tsv) as handle:
        paired = [float(row["standard_error"]) for row in csv.DictReader(handle, delimiter="\t")
                  if row["standard_error"] != "."]
    model, genome = load_model(ckpt), Reference(reference)
    with VcfReader(vcf) as reader:
        alleles = [a for record, _ in reader for a in plan_record(record, genome, model.context, False, vcf) if a.kind]
    independent = [independent_standard_error(model, allele_windows(a, genome), mc) for a in alleles]
    return {"model": ckpt, "deletions": len(paired), "mc": mc, "paired_se_median": statistics.median(paired),
            "independent_se_median": statistics.median(independent)}


def run_score_variants(vcf: Path, reference: Path, ckpt: str, out: Path, tsv: Path, mc: int) -> None:
    """`mdlm-bio score-variants` with its defaults, but `mc`."""
    score_variants(vcf, reference, ckpt, out=out, tsv=tsv, window=None, mc=mc, batch_size=64, seed=0,
                   skip_mismatches=False, devices=["cpu"], trust_checkpoint=False, ignore_memory_limit=False)


def auroc(scores: list[float]) -> float:
    """Reference (score 0 against itself) vs substitution, one pair per site."""
    return float(roc_auc_score([1] * len(scores) + [0] * len(scores), [0.0] * len(scores) + scores))


def summary(name: str, scores: list[float], seconds: float | None) -> dict:
    return {"model": name, "scored": len(scores), "mean_score_nats": sum(scores) / len(scores),
            "auroc": auroc(scores), "alleles_per_second": None if seconds is None else len(scores) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", nargs="+", required=True, help="run folders or .ckpt files (demo, demo-ar, ...)")
    parser.add_argument("--num", type=int, default=2000, help="random substitutions (default: 2000)")
    parser.add_argument("--deletions", type=int, default=200, help="random single-base deletions (default: 200)")
    parser.add_argument("--mc", type=int, default=8, help="draws per deletion (default: 8, score-variants' default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/bench-results/variant_scores.json"))
    options = parser.parse_args()
    sequences = bundled_sequences()
    variants = random_substitutions(sequences, options.num, options.seed)
    training = Counter(sequences["CHROMOSOME_I"])
    composition = [math.log(training[alt] / training[ref]) for _, _, ref, alt in variants]
    rows = [summary("base composition of the training record (no context)", composition, None)]
    with tempfile.TemporaryDirectory() as folder:
        reference, vcf = Path(folder) / "heldout.fa", Path(folder) / "random.vcf"
        write_fasta([(name, "", sequences[name]) for name in BUNDLED_VALID_RECORDS], reference)
        write_vcf(vcf, variants)
        write_vcf(Path(folder) / "deletions.vcf", random_deletions(sequences, options.deletions, options.seed))
        errors = [deletion_errors(ckpt, reference, Path(folder) / "deletions.vcf", Path(folder), options.mc)
                  for ckpt in options.ckpt if load_model(ckpt).kind == "mdlm"]  # NELBO differences: diffusion
        for ckpt in options.ckpt:
            tsv = Path(folder) / "scores.tsv"
            begin = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                run_score_variants(vcf, reference, ckpt, Path(folder) / "scores.vcf", tsv, options.mc)
            seconds = time.perf_counter() - begin
            with open(tsv) as handle:
                scores = [float(row["score_nats"]) for row in csv.DictReader(handle, delimiter="\t")
                          if row["score_nats"] != "."]
            rows.append(summary(ckpt, scores, seconds))
    print(f"{options.num} random substitutions in the held-out records, seed {options.seed}\n")
    print("| model | scored | mean score (nats) | AUROC ref vs substitution | alleles/s |\n| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        speed = "" if row["alleles_per_second"] is None else f"{row['alleles_per_second']:.0f}"
        print(f"| {row['model']} | {row['scored']} | {row['mean_score_nats']:.3f} | {row['auroc']:.3f} | {speed} |")
    print("\n| model | deletions | draws | median s.e., paired (nats) | median s.e., independent | ratio |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in errors:
        print(f"| {row['model']} | {row['deletions']} | {row['mc']} | {row['paired_se_median']:.3f} | "
              f"{row['independent_se_median']:.3f} | {row['independent_se_median'] / row['paired_se_median']:.1f}x |")
    write_json(options.out, {"num": options.num, "seed": options.seed, "rows": rows, "deletions": errors})


if __name__ == "__main__":
    main()

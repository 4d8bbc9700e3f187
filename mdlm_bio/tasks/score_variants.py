"""`mdlm-bio score-variants`: zero-shot effect scores for the variants of a VCF, as a VCF with INFO fields and a TSV.

The score of an allele is log p(alt) - log p(ref) in nats (negative: the model finds the alternative less
likely). SNVs under a diffusion model: the masked-marginal ratio, one batched call per batch of variants. MNVs and
indels: the difference of window NELBOs with its Monte-Carlo standard error. Under an autoregressive model: the
exact difference of window NLLs, for every kind. Models that are not reverse-complement equivariant are scored
on both strands and averaged, so the score does not depend on which strand the reference is written on.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from ..dna.tokenizer import encode
from ..dna.variant_plan import SKIP_REASONS, SNV, Allele, AlleleWindows, allele_windows, plan_alleles, summary
from ..dna.vcf import Reference, VcfContents, info_header_lines, read_vcf, write_annotated_vcf
from ..io import atomic_output, check_writable
from ..likelihood import Estimate
from .common import load_for

if TYPE_CHECKING:
    from ..models.handle import Model

METHODS = "masked-marginal, nelbo-difference or nll-difference"
INFO_FIELDS = {
    "MDLM_BIO_SCORE": ("A", "Float", "log p(alt) - log p(ref) in nats under the model, per ALT"),
    "MDLM_BIO_SE": ("A", "Float", "Monte-Carlo standard error of MDLM_BIO_SCORE (missing where exact)"),
    "MDLM_BIO_METHOD": ("A", "String", METHODS),
    "MDLM_BIO_SKIPPED": ("A", "String", "why an ALT was not scored: " + ", ".join(SKIP_REASONS)),
}


@dataclass(frozen=True)
class Scored:
    estimate: Estimate
    method: str


def score_variants(vcf: Path, reference: Path, ckpt: str, *, out: Path, tsv: Path | None, window: int | None, mc: int,
                   batch_size: int, seed: int, skip_mismatches: bool, device: str, trust_checkpoint: bool,
                   ignore_memory_limit: bool) -> None:
    """Score every ALT of `vcf` against `reference` and write `out` (VCF, bgzip + tabix index when .gz) and
    `tsv` (default: next to `out`)."""
    tsv = tsv or out.with_name(out.name.removesuffix(".gz").removesuffix(".vcf") + ".tsv")
    for path in (out, tsv):
        check_writable(path)
    contents, genome = read_vcf(vcf), Reference(reference)
    model = load_for(ckpt, device, "dna", "score-variants", trust_checkpoint)
    window = window or model.context
    alleles = plan_alleles(contents, genome, window, skip_mismatches, vcf)
    both_strands = not model.strand_symmetric
    rows = max(batch_size, mc) * (2 if both_strands else 1)
    model.check_memory(rows, window, 0, f"scoring {rows} windows of {window} bases at once",
                       "lower --batch-size or --mc, or pass a shorter --window", ignore_memory_limit)
    scores: dict[Allele, Scored] = {}
    scorable = [allele for allele in alleles if allele.kind]
    with tqdm(total=len(scorable), desc="scoring variants", unit="allele") as progress:
        for allele, scored in _scores(model, genome, scorable, mc, batch_size, seed, both_strands):
            scores[allele] = scored
            progress.update()
    genome.close()
    _write_tsv(tsv, alleles, scores)
    strands = "both strands, averaged" if both_strands else "one strand (the model is RC-equivariant)"
    header = [*info_header_lines(INFO_FIELDS),
              f'##mdlm_bio_score_variants=<Model="{model.description}",Window={window},MC={mc},Seed={seed},'
              f'Strands="{strands}">']
    write_annotated_vcf(vcf, contents, out, header, _info_columns(contents, alleles, scores))
    print(f"{summary(alleles)}\nwrote {out} and {tsv}", file=sys.stderr)


def _scores(model: Model, genome: Reference, alleles: list[Allele], mc: int, batch_size: int, seed: int,
            both_strands: bool) -> Iterator[tuple[Allele, Scored]]:
    """Each allele's score: SNVs in batches of one call each, the rest one by one."""
    snvs = [allele for allele in alleles if allele.kind == SNV]
    for begin in range(0, len(snvs), batch_size):
        batch = snvs[begin : begin + batch_size]
        windows: list[AlleleWindows] = [allele_windows(allele, genome) for allele in batch]
        ratios = model.snv_log_ratios(np.stack([encode(w.ref) for w in windows]), np.array([w.left for w in windows]),
                                      encode("".join(w.alt[w.left] for w in windows)), both_strands)
        for allele, ratio in zip(batch, ratios.tolist()):
            yield allele, Scored(Estimate(ratio, None), model.snv_method)
    for allele in alleles:
        if allele.kind != SNV:
            windows = allele_windows(allele, genome)
            yield allele, Scored(model.window_log_ratio(encode(windows.ref), encode(windows.alt),
                                                        (windows.left, windows.right), mc, seed, both_strands),
                                 model.window_method)


def _number(value: float | None) -> str:
    return "." if value is None or not math.isfinite(value) else f"{value:.4f}"


def _write_tsv(path: Path, alleles: list[Allele], scores: dict[Allele, Scored]) -> None:
    with atomic_output(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["chrom", "pos", "id", "ref", "alt", "kind", "method", "score_nats", "standard_error",
                         "skipped"])
        for allele in alleles:
            record, scored = allele.record, scores.get(allele)
            estimate = scored.estimate if scored else None
            writer.writerow([record.contig, record.pos, record.id or ".", record.ref, allele.alt, allele.kind or ".",
                             scored.method if scored else ".", _number(estimate and estimate.value),
                             _number(estimate and estimate.standard_error), allele.skip or "."])


def _info_columns(contents: VcfContents, alleles: list[Allele], scores: dict[Allele, Scored]) -> dict[int, str]:
    """INFO additions per record index; one value per ALT ('.' where missing)."""
    per_record: dict[int, list[Allele]] = {}
    for allele in alleles:
        per_record.setdefault(allele.record.index, []).append(allele)
    columns = {}
    for index, members in per_record.items():
        if not contents.records[index].alts:
            continue
        found = [scores.get(allele) for allele in members]
        values = {
            "MDLM_BIO_SCORE": [_number(s and s.estimate.value) for s in found],
            "MDLM_BIO_SE": [_number(s and s.estimate.standard_error) for s in found],
            "MDLM_BIO_METHOD": [s.method if s else "." for s in found],
            "MDLM_BIO_SKIPPED": [allele.skip or "." for allele in members],
        }
        columns[index] = ";".join(f"{key}={','.join(items)}" for key, items in values.items()
                                  if any(item != "." for item in items))
    return {index: text for index, text in columns.items() if text}

"""`mdlm-bio score-variants`: zero-shot effect scores for the variants of a VCF, as a VCF with INFO fields and a TSV.

The score of an allele is log p(alt) - log p(ref) in nats (negative: the model finds the alternative less
likely). SNVs under a diffusion model: the masked-marginal ratio, one batched call per batch of variants. MNVs and
indels: the difference of window NELBOs with its Monte-Carlo standard error. Under an autoregressive model: the
exact difference of window NLLs, for every kind. Models that are not reverse-complement equivariant are scored
on both strands and averaged, so the score does not depend on which strand the reference is written on.
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..dna.tokenizer import encode
from ..dna.variant_plan import (
    SKIP_REASONS,
    SNV,
    Allele,
    AlleleWindows,
    PlannedRecord,
    allele_windows,
    check_variants,
    planned_chunks,
)
from ..dna.vcf import Reference, VcfReader, annotated_line, header_with, info_header_lines, publish_vcf
from ..io import check_writable, file_identity
from ..likelihood import Estimate
from ..resumable import ResumableOutputs
from ..sources import source_identity
from ..workers import ordered_map
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
                   batch_size: int, seed: int, skip_mismatches: bool, devices: list[str], trust_checkpoint: bool,
                   ignore_memory_limit: bool) -> None:
    """Score every ALT of `vcf` against `reference` and write `out` (VCF, bgzip + tabix index when .gz) and
    `tsv` (default: next to `out`). Records stream through scoring into the outputs in constant memory; a run
    that is stopped resumes from its last committed group of records when the same command is run again. With
    several `devices`, each holds a copy of the model and scores whole groups of records, written in file order,
    so the outputs are those of one device."""
    tsv = tsv or out.with_name(out.name.removesuffix(".gz").removesuffix(".vcf") + ".tsv")
    for path in (out, tsv):
        check_writable(path)
    genome = Reference(reference)
    model = load_for(ckpt, devices[0], "dna", "score-variants", trust_checkpoint)
    window = window or model.context
    plan = check_variants(vcf, genome, window, skip_mismatches)
    both_strands = not model.strand_symmetric
    rows = max(batch_size, mc) * (2 if both_strands else 1)
    models = [model, *(model.on(device) for device in devices[1:])]
    for each in models:
        each.check_memory(rows, window, 0, f"scoring {rows} windows of {window} bases at once on {each.device}",
                          "lower --batch-size or --mc, or pass a shorter --window", ignore_memory_limit)
    strands = "both strands, averaged" if both_strands else "one strand (the model is RC-equivariant)"
    header = [*info_header_lines(INFO_FIELDS),
              f'##mdlm_bio_score_variants=<Model="{model.description}",Window={window},MC={mc},Seed={seed},'
              f'Strands="{strands}">']
    job = {"command": "score-variants", "vcf": file_identity(vcf), "reference": file_identity(reference),
           "model": source_identity(ckpt), "window": window, "mc": mc, "batch_size": batch_size, "seed": seed,
           "skip_mismatches": skip_mismatches, "version": __version__}
    with ResumableOutputs([out, tsv], job if job["vcf"] else None) as outputs, VcfReader(vcf) as reader:
        vcf_file, tsv_file = outputs.files
        table = csv.writer(tsv_file, delimiter="\t", lineterminator="\n")
        if outputs.resumed:
            print(f"resuming: {outputs.done:,} of {plan.records:,} records were scored", file=sys.stderr)
        else:
            vcf_file.write(header_with(plan.header, header))
            table.writerow(TSV_COLUMNS)
            outputs.commit(0, {"alleles": 0})
        records = itertools.islice(reader, outputs.done, None)
        with tqdm(total=plan.counts.scorable, initial=outputs.extra["alleles"], desc="scoring variants",
                  unit="allele") as progress:
            def scored(on: Model, job: Job) -> tuple[list[PlannedRecord], dict[Allele, Scored]]:
                chunk, windows = job
                return chunk, dict(_scores(on, windows, mc, batch_size, seed, both_strands))

            chunks = planned_chunks(records, genome, window, skip_mismatches, vcf, batch_size)
            for chunk, scores in ordered_map(scored, models, (_job(chunk, genome) for chunk in chunks)):
                for _, line, members in chunk:
                    vcf_file.write(annotated_line(line, _info(members, scores)) + "\n")
                    table.writerows(_tsv_row(allele, scores.get(allele)) for allele in members)
                outputs.commit(outputs.done + len(chunk), {"alleles": outputs.extra["alleles"] + len(scores)})
                progress.update(len(scores))
        outputs.finish({out: publish_vcf})
    genome.close()
    print(f"{plan.counts.summary()}\nwrote {out} and {tsv}", file=sys.stderr)


Job = tuple[list[PlannedRecord], list[tuple[Allele, AlleleWindows]]]


def _job(chunk: list[PlannedRecord], genome: Reference) -> Job:
    """A group of records with the windows of its scorable alleles, read from the reference here, in the thread
    that reads the VCF, since the indexed FASTA reader is not safe to share between threads."""
    return chunk, [(allele, allele_windows(allele, genome)) for _, _, members in chunk for allele in members
                   if allele.kind]


def _scores(model: Model, alleles: list[tuple[Allele, AlleleWindows]], mc: int, batch_size: int, seed: int,
            both_strands: bool) -> Iterator[tuple[Allele, Scored]]:
    """Each allele's score: SNVs in batches of one call each, the rest one by one."""
    snvs = [(allele, windows) for allele, windows in alleles if allele.kind == SNV]
    for begin in range(0, len(snvs), batch_size):
        batch = snvs[begin : begin + batch_size]
        ratios = model.snv_log_ratios(np.stack([encode(w.ref) for _, w in batch]), np.array([w.left for _, w in batch]),
                                      encode("".join(w.alt[w.left] for _, w in batch)), both_strands)
        for (allele, _), ratio in zip(batch, ratios.tolist()):
            yield allele, Scored(Estimate(ratio, None), model.snv_method)
    for allele, windows in alleles:
        if allele.kind != SNV:
            yield allele, Scored(model.window_log_ratio(encode(windows.ref), encode(windows.alt),
                                                        (windows.left, windows.right), mc, seed, both_strands),
                                 model.window_method)


def _number(value: float | None) -> str:
    return "." if value is None or not math.isfinite(value) else f"{value:.4f}"


TSV_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "kind", "method", "score_nats", "standard_error", "skipped"]


def _tsv_row(allele: Allele, scored: Scored | None) -> list[object]:
    record, estimate = allele.record, scored.estimate if scored else None
    return [record.contig, record.pos, record.id or ".", record.ref, allele.alt, allele.kind or ".",
            scored.method if scored else ".", _number(estimate and estimate.value),
            _number(estimate and estimate.standard_error), allele.skip or "."]


def _info(alleles: list[Allele], scores: dict[Allele, Scored]) -> str:
    """One record's INFO additions, one value per ALT ('.' where missing); empty for a record without ALT."""
    if not alleles[0].record.alts:
        return ""
    found = [scores.get(allele) for allele in alleles]
    values = {
        "MDLM_BIO_SCORE": [_number(s and s.estimate.value) for s in found],
        "MDLM_BIO_SE": [_number(s and s.estimate.standard_error) for s in found],
        "MDLM_BIO_METHOD": [s.method if s else "." for s in found],
        "MDLM_BIO_SKIPPED": [allele.skip or "." for allele in alleles],
    }
    return ";".join(f"{key}={','.join(items)}" for key, items in values.items() if any(item != "." for item in items))

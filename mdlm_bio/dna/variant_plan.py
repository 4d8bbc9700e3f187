"""Which alleles of a VCF can be scored, how, and on which stretch of reference.

Each ALT of a record is one allele (a multi-allelic record gives one score per ALT). An allele is an SNV when REF
and ALT have the same length and differ at one base (so `AC>GC`, written against a longer REF, is the SNV A>G),
an MNV when they differ at several, and an indel when the lengths differ. Alleles that cannot be scored are kept
with the reason, so the output still has one entry per ALT and the counts can be reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .vcf import Reference, VariantInputError, VcfReader, VcfRecord

SNV, MNV, INDEL = "SNV", "MNV", "indel"
# why an allele was not scored: slug (as written to the VCF and TSV) -> what the summary says
SKIP_REASONS = {
    "no-alt": "no ALT allele ('.')",
    "symbolic": "symbolic or structural allele (<DEL>, breakends, '*')",
    "non-acgt": "allele with bases other than A, C, G and T",
    "alt-is-ref": "ALT equal to REF",
    "ref-mismatch": "REF disagrees with the reference (--skip-mismatches)",
    "contig-end": "too close to a contig end for a centred window",
    "too-long": "allele longer than half the window",
}
_BASES = frozenset("ACGT")


@dataclass(frozen=True, slots=True)
class Allele:
    record: VcfRecord
    alt_index: int  # which ALT of the record; 0 for a record without one
    kind: str | None  # SNV, MNV or indel; None when skipped
    skip: str | None = None  # a key of SKIP_REASONS
    offset: int = 0  # an SNV's differing base within REF
    start: int = 0  # the reference stretch [start, end) (0-based) its windows cover
    end: int = 0

    @property
    def alt(self) -> str:
        return self.record.alts[self.alt_index] if self.record.alts else "."


def _classify(ref: str, alt: str) -> tuple[str, int] | str:
    """(kind, offset of an SNV's base) or the slug of why it cannot be scored."""
    if alt.startswith("<") or "[" in alt or "]" in alt or alt == "*":
        return "symbolic"
    if not set(ref) <= _BASES or not set(alt) <= _BASES:
        return "non-acgt"
    if len(ref) != len(alt):
        return INDEL, 0
    differing = [index for index, (a, b) in enumerate(zip(ref, alt)) if a != b]
    if not differing:
        return "alt-is-ref"
    return (SNV, differing[0]) if len(differing) == 1 else (MNV, 0)


def _span(record: VcfRecord, kind: str, offset: int, alt: str, window: int) -> tuple[int, int]:
    """The reference stretch the allele's windows read: `window` bases centred on an SNV's site; for MNVs and
    indels, flanks that make the longer of the two allele windows `window` long, the same flanks for both."""
    start = record.pos - 1
    if kind == SNV:
        begin = start + offset - window // 2
        return begin, begin + window
    flank = window - max(len(record.ref), len(alt))
    return start - flank // 2, start + len(record.ref) + flank - flank // 2


def plan_record(record: VcfRecord, reference: Reference, window: int, skip_mismatches: bool,
                vcf: Path) -> list[Allele]:
    """The alleles of one record, classified and placed; a REF that disagrees with the reference is an error
    naming the record unless `skip_mismatches`."""
    reference.require_contig(record, vcf)
    if not record.alts:
        return [Allele(record, 0, None, "no-alt")]
    found = reference.fetch(record.contig, record.pos - 1, record.pos - 1 + len(record.ref))
    if found != record.ref:
        if not skip_mismatches:
            raise VariantInputError(
                f"{vcf} {record.where}: REF {record.ref!r} disagrees with {reference.path}, which has "
                f"{found or 'nothing (past the end)'!r} there; is it the same assembly? --skip-mismatches skips "
                f"such records and counts them")
        return [Allele(record, index, None, "ref-mismatch") for index in range(len(record.alts))]
    alleles = []
    for index, alt in enumerate(record.alts):
        classified = _classify(record.ref, alt)
        if isinstance(classified, str):
            alleles.append(Allele(record, index, None, classified))
            continue
        kind, offset = classified
        if kind != SNV and 2 * max(len(record.ref), len(alt)) > window:
            alleles.append(Allele(record, index, None, "too-long"))
            continue
        start, end = _span(record, kind, offset, alt, window)
        skip = "contig-end" if start < 0 or end > reference.lengths[record.contig] else None
        alleles.append(Allele(record, index, None if skip else kind, skip, offset, start, end))
    return alleles


@dataclass(frozen=True)
class AlleleWindows:
    """The reference and alternative windows of an allele: the same `left` and `right` flanking bases around
    REF and ALT (an SNV's site is at index `left`)."""

    ref: str
    alt: str
    left: int
    right: int


def allele_windows(allele: Allele, reference: Reference) -> AlleleWindows:
    record = allele.record
    ref = reference.fetch(record.contig, allele.start, allele.end)
    left = record.pos - 1 - allele.start
    if allele.kind == SNV:
        site = left + allele.offset
        return AlleleWindows(ref, ref[:site] + allele.alt[allele.offset] + ref[site + 1 :], site, len(ref) - site - 1)
    right = len(ref) - left - len(record.ref)
    return AlleleWindows(ref, ref[:left] + allele.alt + ref[left + len(record.ref) :], left, right)


@dataclass
class AlleleCounts:
    """How many alleles of each kind will be scored and why the others will not: all a summary needs, so a
    whole-genome VCF is planned without holding its alleles."""

    kinds: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)

    def add(self, alleles: list[Allele]) -> None:
        self.kinds.update(allele.kind for allele in alleles if allele.kind)
        self.skips.update(allele.skip for allele in alleles if allele.skip)

    @property
    def scorable(self) -> int:
        return sum(self.kinds.values())

    def summary(self) -> str:
        """'scored 10 alleles (8 SNV, 2 indel); skipped 3: 2 symbolic ..., 1 too close ...'"""
        kinds = ", ".join(f"{self.kinds[kind]} {kind}" for kind in (SNV, MNV, INDEL) if self.kinds[kind])
        text = f"scored {self.scorable} alleles" + (f" ({kinds})" if kinds else "")
        if self.skips:
            text += f"; skipped {sum(self.skips.values())}: " + ", ".join(
                f"{count} {SKIP_REASONS[reason]}" for reason, count in self.skips.most_common())
        return text


@dataclass(frozen=True)
class VcfPlan:
    header: str  # as htslib holds it after every record
    records: int
    counts: AlleleCounts


def check_variants(vcf: Path, reference: Reference, window: int, skip_mismatches: bool) -> VcfPlan:
    """One pass over the VCF in constant memory before any scoring: every error its records can raise, a
    malformed or unsorted record anywhere before a record that disagrees with the reference, and the counts for
    the progress bar and the summary."""
    counts, records = AlleleCounts(), 0
    disagreement: VariantInputError | None = None
    with VcfReader(vcf) as reader:
        for record, _ in reader:
            records += 1
            if disagreement is None:
                try:
                    counts.add(plan_record(record, reference, window, skip_mismatches, vcf))
                except VariantInputError as error:
                    disagreement = error
        if disagreement is not None:
            raise disagreement
        return VcfPlan(reader.header, records, counts)


PlannedRecord = tuple[VcfRecord, str, list[Allele]]  # a record, its line, its alleles


def planned_chunks(records: Iterable[tuple[VcfRecord, str]], reference: Reference, window: int,
                   skip_mismatches: bool, vcf: Path, size: int) -> Iterator[list[PlannedRecord]]:
    """Records with their alleles, in groups of `size` scorable alleles (or 4 x `size` records): the units of
    work a resumable run commits. The groups depend only on the file and `size`, so a run resumed after a whole
    group scores the same batches as one that never stopped."""
    chunk: list[PlannedRecord] = []
    scorable = 0
    for record, line in records:
        alleles = plan_record(record, reference, window, skip_mismatches, vcf)
        chunk.append((record, line, alleles))
        scorable += sum(1 for allele in alleles if allele.kind)
        if scorable >= size or len(chunk) >= 4 * size:
            yield chunk
            chunk, scorable = [], 0
    if chunk:
        yield chunk

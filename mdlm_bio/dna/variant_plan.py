"""Which alleles of a VCF can be scored, how, and on which stretch of reference.

Each ALT of a record is one allele (a multi-allelic record gives one score per ALT). An allele is an SNV when REF
and ALT have the same length and differ at one base (so `AC>GC`, written against a longer REF, is the SNV A>G),
an MNV when they differ at several, and an indel when the lengths differ. Alleles that cannot be scored are kept
with the reason, so the output still has one entry per ALT and the counts can be reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .vcf import Reference, VariantInputError, VcfContents, VcfRecord

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


def plan_alleles(contents: VcfContents, reference: Reference, window: int, skip_mismatches: bool,
                 vcf: Path) -> list[Allele]:
    """Every allele, classified and placed; a REF that disagrees with the reference is an error naming the
    record unless `skip_mismatches`."""
    alleles: list[Allele] = []
    for record in contents.records:
        reference.require_contig(record, vcf)
        if not record.alts:
            alleles.append(Allele(record, 0, None, "no-alt"))
            continue
        found = reference.fetch(record.contig, record.pos - 1, record.pos - 1 + len(record.ref))
        if found != record.ref:
            if not skip_mismatches:
                raise VariantInputError(
                    f"{vcf} {record.where}: REF {record.ref!r} disagrees with {reference.path}, which has "
                    f"{found or 'nothing (past the end)'!r} there; is it the same assembly? --skip-mismatches skips "
                    f"such records and counts them")
            alleles.extend(Allele(record, index, None, "ref-mismatch") for index in range(len(record.alts)))
            continue
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


def summary(alleles: list[Allele]) -> str:
    """'scored 10 alleles (8 SNV, 2 indel); skipped 3: 2 symbolic ..., 1 too close ...'"""
    scored = Counter(allele.kind for allele in alleles if allele.kind)
    skipped = Counter(allele.skip for allele in alleles if allele.skip)
    kinds = ", ".join(f"{scored[kind]} {kind}" for kind in (SNV, MNV, INDEL) if scored[kind])
    text = f"scored {sum(scored.values())} alleles" + (f" ({kinds})" if kinds else "")
    if skipped:
        text += f"; skipped {sum(skipped.values())}: " + ", ".join(
            f"{count} {SKIP_REASONS[reason]}" for reason, count in skipped.most_common())
    return text

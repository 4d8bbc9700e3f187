"""Variants in, annotated variants out: VCF / VCF.gz read with pysam, the reference read as indexed FASTA (plain
or bgzip), and the scores written back as INFO fields of the same records.

Every problem with the input is an error that names the file and the line (a malformed or unsorted record, a
contig the reference lacks, with a hint when only a 'chr' prefix differs), found before any scoring starts.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pysam

from ..io import GZIP_MAGIC, check_input_path, open_input


class VariantInputError(ValueError):
    """A VCF or reference that cannot be read, or that disagrees with the other."""


@dataclass(frozen=True, slots=True)
class VcfRecord:
    """One VCF line, reduced to what scoring needs (the full line is re-read from the file for the output)."""

    index: int  # 0-based among the records
    line: int  # 1-based line of the file
    contig: str
    pos: int  # 1-based, as in the VCF
    id: str | None
    ref: str
    alts: tuple[str, ...]  # empty when ALT is '.'

    @property
    def site(self) -> str:
        return f"{self.contig}:{self.pos}"

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.site})"


@contextmanager
def _quiet_htslib() -> Iterator[None]:
    """htslib prints its own warnings and errors to stderr; ours, naming the line, replace them."""
    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def _header_lines(path: Path) -> int:
    with open_input(path, "VCF") as stream:
        count = 0
        for line in stream:
            if not line.startswith(b"#"):
                break
            count += 1
        return count


def _line_text(path: Path, number: int) -> str:
    with open_input(path, "VCF") as stream:
        for index, line in enumerate(stream, start=1):
            if index == number:
                text = line.decode("utf-8", "replace").rstrip("\r\n").replace("\t", " ")
                return text if len(text) <= 80 else text[:77] + "..."
    return "(end of file)"


def _open_vcf(path: Path) -> pysam.VariantFile:
    check_input_path(path, "VCF")
    try:
        vcf = pysam.VariantFile(str(path))
    except (ValueError, OSError) as error:
        raise VariantInputError(f"{path}: not a readable VCF ({error})") from None
    if vcf.format != "VCF":
        raise VariantInputError(f"{path} is {vcf.format}, not VCF; convert it with `bcftools view -Oz`")
    return vcf


class VcfReader:
    """A VCF or VCF.gz read record by record, in constant memory, checked as it goes to parse and to be sorted
    (contigs in blocks, positions rising). Iterating yields each record and its line as htslib writes it back;
    `header` is the header as htslib holds it after the records read so far (tags it had to add included)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._first_line = _header_lines(self.path) + 1
        self._stack = ExitStack()

    def __enter__(self) -> VcfReader:
        with ExitStack() as stack:
            stack.enter_context(_quiet_htslib())
            self._vcf = stack.enter_context(_open_vcf(self.path))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @property
    def header(self) -> str:
        return str(self._vcf.header)

    def __iter__(self) -> Iterator[tuple[VcfRecord, str]]:
        finished: set[str] = set()  # contigs whose block has ended
        previous: VcfRecord | None = None
        iterator = iter(self._vcf)
        for index in itertools.count():
            line = self._first_line + index
            try:
                record = next(iterator)
            except StopIteration:
                return
            except (OSError, ValueError):
                raise VariantInputError(f"{self.path} line {line} is not a valid VCF record: "
                                        f"{_line_text(self.path, line)!r}") from None
            current = VcfRecord(index, line, record.chrom, record.pos, record.id, record.ref.upper(),
                                tuple(alt.upper() for alt in record.alts or ()))
            if previous is not None and current.contig != previous.contig:
                finished.add(previous.contig)
            if current.contig in finished or (previous is not None and current.contig == previous.contig
                                              and current.pos < previous.pos):
                raise VariantInputError(f"{self.path} line {line}: {current.site} comes after {previous.site}; the "
                                        f"VCF is not sorted (sort it with `bcftools sort`)")
            previous = current
            yield current, str(record).rstrip("\n")


def _is_plain_gzip(path: Path) -> bool:
    """gzip but not BGZF (whose first member carries a 'BC' extra field): random access is impossible."""
    with open(path, "rb") as handle:
        head = handle.read(14)
    return head[:2] == GZIP_MAGIC and not (len(head) == 14 and head[3] & 4 and head[12:14] == b"BC")


class Reference:
    """An indexed FASTA (plain or bgzip; the .fai, and .gzi for bgzip, are made next to it on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_input_path(self.path, "reference FASTA")
        if _is_plain_gzip(self.path):
            raise VariantInputError(f"{self.path} is gzip-compressed but not with bgzip, so it cannot be read at "
                                    f"random positions; recompress it (`gunzip -c {self.path.name} | bgzip > "
                                    f"{self.path.name.removesuffix('.gz')}.bgz`) or decompress it")
        try:
            with _quiet_htslib():
                self._fasta = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as error:
            raise VariantInputError(f"{self.path}: cannot open as an indexed FASTA ({error}); the index "
                                    f"({self.path.name}.fai) is made next to it on first use, so the folder must be "
                                    f"writable, or make it with `samtools faidx`") from None
        self.lengths: dict[str, int] = dict(zip(self._fasta.references, self._fasta.lengths))

    def require_contig(self, record: VcfRecord, vcf: Path) -> None:
        """An error naming the line when the reference has no such contig, with the fix when only a 'chr' prefix
        differs (UCSC's 'chr1' against Ensembl's '1')."""
        if record.contig in self.lengths:
            return
        other = record.contig[3:] if record.contig.startswith("chr") else f"chr{record.contig}"
        hint = (f"; the reference calls it {other!r}: the VCF and the FASTA name contigs differently (rename the "
                f"VCF's with `bcftools annotate --rename-chrs`)" if other in self.lengths else "")
        names = ", ".join(list(self.lengths)[:5]) + (", ..." if len(self.lengths) > 5 else "")
        raise VariantInputError(f"{vcf} {record.where}: contig {record.contig!r} is not in {self.path} (which has "
                                f"{names}){hint}")

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases [start, end) (0-based), upper case."""
        return self._fasta.fetch(contig, start, end).upper()

    def close(self) -> None:
        self._fasta.close()


def info_header_lines(fields: Mapping[str, tuple[str, str, str]]) -> list[str]:
    """##INFO lines for {id: (Number, Type, Description)}."""
    return [f'##INFO=<ID={key},Number={number},Type={kind},Description="{text}">'
            for key, (number, kind, text) in fields.items()]


def annotated_line(line: str, info: str) -> str:
    """A record's line with `info` appended to its INFO column."""
    if not info:
        return line
    columns = line.split("\t")
    columns[7] = info if columns[7] == "." else f"{columns[7]};{info}"
    return "\t".join(columns)


def header_with(header: str, extra: Sequence[str]) -> str:
    """The header text with `extra` lines before #CHROM, ending in a newline."""
    lines = header.rstrip("\n").split("\n")
    lines[-1:-1] = extra
    return "\n".join(lines) + "\n"


def publish_vcf(part: Path, out: Path) -> None:
    """Move a complete plain-text VCF under `out`: bgzip-compressed and tabix-indexed when `out` ends in .gz."""
    if out.suffix != ".gz":
        os.replace(part, out)
        return
    descriptor, compressed = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".gz")
    os.close(descriptor)
    try:
        pysam.tabix_compress(str(part), compressed, force=True)
        os.replace(compressed, out)
    finally:
        Path(compressed).unlink(missing_ok=True)
    pysam.tabix_index(str(out), preset="vcf", force=True)

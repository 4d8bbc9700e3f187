"""FASTA reading and writing through biopython, plain or gzip, with errors that name the file and record."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqIO.FastaIO import FastaWriter
from Bio.SeqRecord import SeqRecord

from ..io import atomic_output, open_input
from .tokenizer import AmbiguityPolicy, SequenceError, encode


class FastaError(ValueError):
    """A FASTA file that cannot be read as DNA."""


@dataclass(frozen=True)
class Record:
    name: str
    description: str
    tokens: np.ndarray  # uint8 Caduceus ids


BYTE_ORDER_MARK = b"\xef\xbb\xbf"


def _skip_to_first_header(stream: IO[bytes], path: str | Path) -> None:
    """Skip a UTF-8 byte-order mark and blank lines; what follows must be a '>' header (or nothing). Biopython
    reports text before the first header without naming the file, so it is said here, with the line."""
    if stream.peek(3)[:3] == BYTE_ORDER_MARK:
        stream.read(3)
    while blank := len(head := stream.peek(4096)) - len(head.lstrip()):
        stream.read(blank)
    if head and not head.startswith(b">"):
        try:
            first = head.split(b"\n", 1)[0].decode("utf-8").strip()
        except UnicodeDecodeError:
            first = "\x00"
        if not first.isprintable():  # undecodable, or control characters: binary, not text
            raise FastaError(f"{path}: not a text FASTA file")
        raise FastaError(f"{path}: text before the first '>' header ({first[:60]!r}); a FASTA file starts with '>name'")


def read_fasta(path: str | Path, policy: AmbiguityPolicy = "n") -> Iterator[Record]:
    """Records of a FASTA, tokenised. `path` may be '-' (standard input) or a pipe; gzip is detected from the
    bytes and a UTF-8 byte-order mark is skipped. An empty or damaged file, text before the first header and a
    record without bases are errors naming the file (and the record); blank lines before the first header are not."""
    count = 0
    try:
        with open_input(path, "FASTA file") as stream:
            _skip_to_first_header(stream, path)
            for record in SeqIO.parse(io.TextIOWrapper(stream, encoding="utf-8-sig"), "fasta"):
                count += 1
                try:
                    tokens = encode(bytes(record.seq), policy)
                except SequenceError as error:
                    raise FastaError(f"{path}: record {record.id!r}: {error}") from None
                if len(tokens) == 0:
                    raise FastaError(f"{path}: record {record.id!r} has no bases")
                yield Record(record.id, record.description, tokens)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise FastaError(f"{path}: damaged or truncated gzip ({error})") from None
    except UnicodeDecodeError:
        raise FastaError(f"{path}: not a text FASTA file") from None
    if count == 0:
        raise FastaError(f"{path}: no FASTA records (a FASTA file starts with '>name')")


LINE_WIDTH = 80


def append_fasta(handle: IO[str], records: Iterable[tuple[str, str, str]], line_width: int = LINE_WIDTH) -> None:
    """Append (name, description, bases) records to an open text file."""
    FastaWriter(handle, wrap=line_width).write_records(
        SeqRecord(Seq(bases), id=name, description=description) for name, description, bases in records)


def publish_fasta(part: Path, out: Path) -> None:
    """Move a complete plain FASTA under `out`, gzip-compressed (with no timestamp, so the bytes are
    reproducible) when `out` ends in .gz."""
    if out.suffix != ".gz":
        os.replace(part, out)
        return
    with open(part, "rb") as source, atomic_output(out, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed:
        shutil.copyfileobj(source, packed)


def write_fasta(records: Iterable[tuple[str, str, str]], path: str | Path, line_width: int = LINE_WIDTH) -> int:
    """Write (name, description, bases) records atomically; gzip when the name ends in .gz. Returns the count."""
    path, records = Path(path), list(records)
    if path.suffix == ".gz":
        with atomic_output(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed, \
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as handle:
            append_fasta(handle, records, line_width)
    else:
        with atomic_output(path) as handle:
            append_fasta(handle, records, line_width)
    return len(records)

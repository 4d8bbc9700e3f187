"""Regions to infill: from a BED file (`record start end` per line, 0-based and end-exclusive), or the runs of N."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import open_input
from .tokenizer import N


class RegionError(ValueError):
    """A BED line that does not describe a region of a known record."""


def record_lengths(records: Iterable[tuple[str, int]], fasta: str | Path, bed: str | Path) -> dict[str, int]:
    """Record name -> length, for a BED that names records; a name used twice is an error, since the BED
    could not say which of the two records it means."""
    lengths: dict[str, int] = {}
    for name, length in records:
        if name in lengths:
            raise RegionError(f"{fasta}: record name {name!r} appears more than once, so {bed} cannot say which "
                              f"record it means; give the records distinct names")
        lengths[name] = length
    return lengths


def read_regions(path: str | Path, lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """One boolean mask per record (all False where no region is listed); errors name the file and line.
    `path` may be '-' (standard input) or a pipe."""
    masks = {name: np.zeros(length, dtype=bool) for name, length in lengths.items()}
    for number, line, fields in _bed_lines(path):
        if len(fields) < 3:
            raise RegionError(f"{path}:{number}: expected 'record start end', got {line!r}")
        name = fields[0]
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise RegionError(f"{path}:{number}: start and end must be integers, got {fields[1]!r} {fields[2]!r}") from None
        if name not in masks:
            raise RegionError(f"{path}:{number}: record {name!r} is not in the FASTA")
        if not 0 <= start < end <= lengths[name]:
            raise RegionError(f"{path}:{number}: region {start}-{end} is outside {name!r} (length {lengths[name]})")
        masks[name][start:end] = True
    return masks


def n_runs(tokens: np.ndarray, min_length: int = 1) -> np.ndarray:
    """Boolean mask of runs of N at least `min_length` long: the default infilling target."""
    is_n = np.concatenate([[False], tokens == N, [False]])
    edges = np.flatnonzero(np.diff(is_n.astype(np.int8)))
    mask = np.zeros(tokens.shape, dtype=bool)
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start >= min_length:
            mask[start:end] = True
    return mask


@dataclass(frozen=True)
class NamedInterval:
    """[start, end) on `chrom`, 0-based, with the BED name column or, without one, chrom:start-end."""

    chrom: str
    start: int
    end: int
    name: str


def read_bed_intervals(path: str | Path) -> list[NamedInterval]:
    """The intervals of a BED file with 3 or more columns (chrom start end [name ...]); blank, '#', 'track' and
    'browser' lines are skipped; errors name the file and line."""
    intervals = []
    for number, line, fields in _bed_lines(path):
        if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()) or int(fields[2]) <= int(fields[1]):
            raise RegionError(f"{path}, line {number}: expected 'chrom start end [name]' with 0 <= start < end, "
                              f"found {line.strip()!r}")
        chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        name = fields[3] if len(fields) > 3 and fields[3] else f"{chrom}:{start}-{end}"
        intervals.append(NamedInterval(chrom, start, end, name))
    return intervals


def _bed_lines(path: str | Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, line, fields) of a BED file's region lines; `path` may be '-' (standard input) or a pipe."""
    with open_input(path, "BED file") as stream:
        try:
            lines = io.TextIOWrapper(stream, encoding="utf-8-sig").read().splitlines()
        except UnicodeDecodeError:
            raise RegionError(f"{path}: not a text BED file") from None
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith(("#", "track", "browser")):
            yield number, line, line.split("\t") if "\t" in line else line.split()

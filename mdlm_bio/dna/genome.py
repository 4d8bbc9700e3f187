"""Prepared genome folders: FASTA converted once to memory-mapped token arrays, split intervals, random windows.

A prepared folder holds
    index.json    record names, lengths and array files, the source FASTA, the format version. It is written
                  last, so its presence means the conversion finished.
    <record>.npy  one uint8 array of Caduceus token ids per FASTA record, opened with np.load(mmap_mode="r"),
                  so that a window costs a slice, not a parse.
    splits.bed    `chrom start end split` lines (the HyenaDNA/Caduceus layout), splits train/valid/test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from ..io import atomic_output
from .fasta import FastaError, read_fasta, write_fasta
from .tokenizer import PAD, AmbiguityPolicy, N, decode, reverse_complement

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SPLITS_NAME = "splits.bed"
BUNDLED_FASTA = "c_elegans_1mb.fa.gz"
BUNDLED_VALID_RECORDS = ("CHROMOSOME_II", "CHROMOSOME_III", "CHROMOSOME_IV", "CHROMOSOME_V", "CHROMOSOME_X")


class BedError(ValueError):
    """A bed file that is malformed or does not fit the converted genome."""


@dataclass(frozen=True)
class Interval:
    """Half-open [start, end) on `chrom`, from line `line` of its bed file (kept for error messages)."""

    chrom: str
    start: int
    end: int
    split: str
    line: int


class Genome:
    """A converted genome folder: record lengths from index.json, sequences as read-only memory maps.

    The maps open on first use in each process and are left out when pickled, because a memmap pickled into
    a DataLoader worker is copied whole, gigabytes for hg38.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index_path = self.directory / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(
                f"no converted genome in {self.directory} ({INDEX_NAME} is missing); "
                "make one with convert_fasta or prepare_fasta_genome"
            )
        index = json.loads(index_path.read_text())
        if index.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{index_path}: format version {index.get('format_version')}, this code reads {FORMAT_VERSION}; "
                "convert the FASTA again"
            )
        self.lengths: dict[str, int] = {record["name"]: record["length"] for record in index["records"]}
        self._files: dict[str, str] = {record["name"]: record["file"] for record in index["records"]}
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.directory / self._files[name], mmap_mode="r")
        return self._arrays[name]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}


def convert_fasta(fasta_path: str | Path, out_dir: str | Path, policy: AmbiguityPolicy = "n") -> Genome:
    """Convert a (gzipped) FASTA into `out_dir` once; a later call with the same unchanged file is a no-op.

    Each array is written to a temporary file and renamed, and the index goes last, so an interrupted
    conversion leaves no index and is redone in full by the next call.
    """
    fasta_path, out_dir = Path(fasta_path), Path(out_dir)
    if not fasta_path.is_file():
        raise FileNotFoundError(f"FASTA file not found: {fasta_path}")
    header = {"format_version": FORMAT_VERSION, "source": _source_identity(fasta_path), "policy": policy}
    if _is_current(out_dir, header):
        return Genome(out_dir)
    (out_dir / INDEX_NAME).unlink(missing_ok=True)  # an old index must not vouch for half-replaced arrays
    records, owners = [], {}
    for record in tqdm(read_fasta(fasta_path, policy), desc=f"converting {fasta_path.name}", unit=" records"):
        file = re.sub(r"[^A-Za-z0-9._-]", "_", record.name) + ".npy"
        if file in owners:
            raise FastaError(f"{fasta_path}: records {owners[file]!r} and {record.name!r} would share {file}; rename one")
        owners[file] = record.name
        with atomic_output(out_dir / file, "wb") as handle:
            np.save(handle, record.tokens)
        records.append({"name": record.name, "length": int(record.tokens.size), "file": file})
    with atomic_output(out_dir / INDEX_NAME) as handle:
        json.dump({**header, "records": records}, handle, indent=1)
    return Genome(out_dir)


def _source_identity(path: Path) -> dict[str, Any]:
    """What tells a re-run that the FASTA is the one already converted, without reading 3 GB again."""
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_current(out_dir: Path, header: dict[str, Any]) -> bool:
    try:
        index = json.loads((out_dir / INDEX_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if any(index.get(key) != value for key, value in header.items()):
        return False
    return all(_array_is_whole(out_dir / record["file"], record["length"]) for record in index["records"])


def _array_is_whole(path: Path, length: int) -> bool:
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return array.shape == (length,) and array.dtype == np.uint8


def read_bed(path: str | Path) -> list[Interval]:
    """Intervals of a 4-column `chrom start end split` bed file (blank, '#', 'track' and 'browser' lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bed file not found: {path}")
    with open(path) as handle:
        return [
            _parse_bed_line(path, number, line)
            for number, line in enumerate(handle, 1)
            if line.strip() and not line.startswith(("#", "track", "browser"))
        ]


def _parse_bed_line(path: Path, number: int, line: str) -> Interval:
    where = f"{path}, line {number}"
    fields = line.split()
    if len(fields) != 4:
        raise BedError(f"{where}: expected 4 columns 'chrom start end split', found {len(fields)}: {line.strip()!r}")
    chrom, start, end, split = fields
    if not all(value.isascii() and value.isdigit() for value in (start, end)):
        raise BedError(f"{where}: start and end must be non-negative integers, found {start!r} and {end!r}")
    if int(end) <= int(start):
        raise BedError(f"{where}: end {end} must be greater than start {start}")
    return Interval(chrom, int(start), int(end), split, number)


def load_intervals(genome: Genome, split: str | None = None) -> list[Interval]:
    """The splits.bed intervals of a prepared folder (only `split`'s when given), checked against its genome."""
    bed = genome.directory / SPLITS_NAME
    intervals = read_bed(bed)
    for interval in intervals:
        length = genome.lengths.get(interval.chrom)
        if length is None:
            raise BedError(
                f"{bed}, line {interval.line}: chromosome {interval.chrom!r} is not in the converted genome at "
                f"{genome.directory}, which has {_preview(genome.lengths)}"
            )
        if interval.end > length:
            raise BedError(
                f"{bed}, line {interval.line}: end {interval.end} is past the end of {interval.chrom!r} "
                f"({length} bases in {genome.directory}); are the bed and the FASTA the same assembly?"
            )
    if split is None:
        return intervals
    chosen = [interval for interval in intervals if interval.split == split]
    if not chosen:
        present = sorted({interval.split for interval in intervals})
        raise BedError(f"{bed}: no intervals for split {split!r}; the splits there are {present}")
    return chosen


def _preview(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} records ({shown})"


def prepare_fasta_genome(
    fasta: str | Path, out_dir: str | Path, splits: Mapping[str, Sequence[str]], policy: AmbiguityPolicy = "n"
) -> Genome:
    """Convert any FASTA and write a splits.bed in which each listed record is one whole interval of its split:
    the way to train on a genome that comes without a bed file."""
    genome = convert_fasta(fasta, out_dir, policy)
    split_of: dict[str, str] = {}
    for split, names in splits.items():
        if not re.fullmatch(r"\S+", split):
            raise ValueError(f"split name {split!r} must be one word, as it becomes a bed column")
        for name in names:
            if name not in genome.lengths:
                raise ValueError(f"{fasta}: split {split!r} lists record {name!r}, not among its {_preview(genome.lengths)}")
            if name in split_of:
                raise ValueError(f"record {name!r} is in split {split_of[name]!r} and split {split!r}; splits must not overlap")
            if genome.lengths[name] == 0:
                raise ValueError(f"{fasta}: record {name!r} is empty and cannot be an interval")
            split_of[name] = split
    with atomic_output(genome.directory / SPLITS_NAME) as handle:
        handle.writelines(f"{name}\t0\t{genome.lengths[name]}\t{split}\n" for name, split in split_of.items())
    return genome


def prepare_held_out_genome(
    fasta: str | Path, out_dir: str | Path, valid_records: Sequence[str], policy: AmbiguityPolicy = "n"
) -> Genome:
    """`valid_records` form the valid split and every other record trains: validation then measures
    generalisation to sequence the model never saw."""
    if not valid_records:
        raise ValueError(f"{fasta}: name at least one record to hold out for validation")
    names = convert_fasta(fasta, out_dir, policy).lengths
    train = [name for name in names if name not in valid_records]
    if not train:
        raise ValueError(f"{fasta}: all {len(names)} records are held out, none is left to train on")
    return prepare_fasta_genome(fasta, out_dir, {"train": train, "valid": list(valid_records)}, policy)


def prepare_bundled_genome(out_dir: str | Path, valid_records: Sequence[str] = BUNDLED_VALID_RECORDS) -> Genome:
    """The shipped ~1 Mb of C. elegans: chromosome I (1.01 Mb) trains; by default the five 5 kb nuclear records
    (II to X) are held out for validation, and the 5 kb of mitochondrial DNA trains."""
    with as_file(files("mdlm_bio") / "data" / BUNDLED_FASTA) as fasta:
        return prepare_held_out_genome(fasta, out_dir, valid_records)


def split_sequences(directory: str | Path, split: str = "valid") -> list[tuple[str, np.ndarray]]:
    """(chrom:start-end, tokens) of every interval of one split: the real DNA to compare samples with."""
    genome = Genome(directory)
    return [(f"{i.chrom}:{i.start}-{i.end}", genome[i.chrom][i.start : i.end]) for i in load_intervals(genome, split)]


def held_out_reference(directory: str | Path, out: str | Path, split: str = "valid") -> Path:
    """Write the intervals of one split as FASTA records named chrom:start-end (see `split_sequences`)."""
    write_fasta(((name, f"{split} split", decode(tokens)) for name, tokens in split_sequences(directory, split)), out)
    return Path(out)


class GenomeWindows(Dataset):
    """Random windows of `length` tokens from the intervals of one split of a prepared genome folder.

    An interval is drawn with probability proportional to its length, then a start uniformly inside it, so each
    base of the split has about the same chance to be seen. An interval shorter than the window is used whole
    and padded on the right with PAD (attention_mask False there) rather than skipped, so no sequence is lost.
    A window with more than `max_n_fraction` N among its bases is redrawn, up to `max_retries` times, after which
    the draw with the fewest N is kept: gap-heavy splits slow nothing down. With probability `rc_augment` the
    window is reverse-complemented (before padding). A window is a pure function of (seed, epoch, index), so
    it is reproducible whatever the worker layout: `dataset[index]` is epoch 0 (validation), and
    `dataset[epoch, index]` gives training fresh windows each epoch.
    """

    def __init__(
        self,
        directory: str | Path,
        split: str,
        length: int,
        *,
        windows: int | None = None,
        rc_augment: float = 0.0,
        max_n_fraction: float = 1.0,
        max_retries: int = 8,
        seed: int = 0,
    ) -> None:
        _check_arguments(length, windows, rc_augment, max_n_fraction, max_retries, seed)
        self.genome = Genome(directory)
        intervals = load_intervals(self.genome, split)
        self.length, self.rc_augment, self.max_n_fraction = length, rc_augment, max_n_fraction
        self.max_retries, self.seed = max_retries, seed
        self._chroms = [interval.chrom for interval in intervals]
        self._starts = np.array([interval.start for interval in intervals], dtype=np.int64)
        self._spans = np.array([interval.end - interval.start for interval in intervals], dtype=np.int64)
        self._cumulative = np.cumsum(self._spans)
        self.usable_bases = int(self._cumulative[-1])
        self.windows = windows if windows is not None else max(1, self.usable_bases // length)

    def __len__(self) -> int:
        return self.windows

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < self.windows or epoch < 0:
            raise IndexError(f"window {key} out of range for {self.windows} windows per epoch")
        rng = np.random.default_rng([self.seed, epoch, index])
        bases = self._draw_filtered(rng)
        if rng.random() < self.rc_augment:
            bases = reverse_complement(bases)
        tokens = np.full(self.length, PAD, dtype=np.int64)
        tokens[: bases.size] = bases
        return {"tokens": torch.from_numpy(tokens), "attention_mask": torch.arange(self.length) < bases.size}

    def _draw_filtered(self, rng: np.random.Generator) -> np.ndarray:
        fewest_n, best = None, None
        for _ in range(self.max_retries + 1):
            bases = self._draw(rng)
            n_count = int(np.count_nonzero(bases == N))
            if n_count <= self.max_n_fraction * bases.size:
                return bases
            if fewest_n is None or n_count < fewest_n:
                fewest_n, best = n_count, bases
        return best

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        k = int(np.searchsorted(self._cumulative, rng.integers(self.usable_bases), side="right"))
        span = int(self._spans[k])
        start = int(self._starts[k]) + int(rng.integers(max(span - self.length, 0) + 1))
        return np.asarray(self.genome[self._chroms[k]][start : start + min(span, self.length)])


def _check_arguments(
    length: int, windows: int | None, rc_augment: float, max_n_fraction: float, max_retries: int, seed: int
) -> None:
    if length < 1:
        raise ValueError(f"window length must be positive, not {length}")
    if windows is not None and windows < 1:
        raise ValueError(f"windows must be positive, not {windows}")
    if not 0.0 <= rc_augment <= 1.0:
        raise ValueError(f"rc_augment is a probability in [0, 1], not {rc_augment}")
    if not 0.0 <= max_n_fraction <= 1.0:
        raise ValueError(f"max_n_fraction must be in [0, 1], not {max_n_fraction}")
    if max_retries < 0 or seed < 0:
        raise ValueError(f"max_retries and seed must be non-negative, not {max_retries} and {seed}")

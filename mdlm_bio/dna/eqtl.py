"""The causal-eQTL variants of the Genomics Long-Range Benchmark (configs/benchmarks/eqtl.yaml) and their windows.

The benchmark's own table (`All_Tissues.csv`: CHROM, POS 1-based, ALT, label, tissue, distance_to_nearest_TSS,
split) comes from the hub with huggingface_hub, or from a local copy; the sequences are cut here from an hg38 FASTA
the way the benchmark's loader cuts them: `window` bases with the SNP at index window // 2, the ALT base written
there (the loader checks no REF; a REF column, where a table has one, is checked against the genome), upper case and
anything but ACGT read as N. The loader's dataset script needs a `datasets` older than 4.0, so it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..tables import LOCAL_FORMATS, benchmark_settings, read_table
from .tokenizer import BASE_IDS, N, encode
from .vcf import Reference

SPLITS = ("train", "test")


def eqtl_settings() -> dict[str, Any]:
    return benchmark_settings("eqtl")


@dataclass(frozen=True)
class EqtlVariants:
    """One row per (variant, tissue) of the table, as numpy columns."""

    chrom: np.ndarray
    position: np.ndarray  # 1-based
    alt: np.ndarray
    ref: np.ndarray | None
    label: np.ndarray
    tissue: np.ndarray
    distance: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def hub_table(cache_dir: Path | None = None) -> Path:
    """The benchmark's table, downloaded from the hub once (huggingface_hub's cache)."""
    from huggingface_hub import hf_hub_download

    dataset = eqtl_settings()["dataset"]
    return Path(hf_hub_download(dataset["repo"], dataset["file"], repo_type="dataset", cache_dir=cache_dir))


def read_variants(path: Path) -> EqtlVariants:
    """The table (CSV as published, or TSV, JSON lines, Parquet with the same columns), checked."""
    path = Path(path)
    if path.suffix not in LOCAL_FORMATS:
        raise ValueError(f"{path}: a variant table must end in one of {sorted(LOCAL_FORMATS)}")
    table = read_table(path, "variants", tuple(eqtl_settings()["dataset"]["columns"]))
    columns = {name: np.asarray(table[name]) for name in table.column_names}
    split = columns["split"].astype(str)
    present = set(split.tolist())
    unknown = sorted(present - set(SPLITS))
    if unknown or not len(split):
        raise ValueError(f"{path}: the split column must hold train or test, found {unknown or 'no rows'}")
    label = columns["label"]
    if label.dtype.kind not in "iub" or not set(np.unique(label).tolist()) <= {0, 1}:
        raise ValueError(f"{path}: labels must be 0 or 1 (causal: SuSiE probability > 0.9)")
    alt = np.char.upper(columns["ALT"].astype(str))
    bad = sorted(set(alt.tolist()) - set("ACGT"))
    if bad:
        raise ValueError(f"{path}: ALT must be one base A, C, G or T (the benchmark holds SNPs); found {bad[:5]}")
    missing = [name for name in SPLITS if name not in present]
    if missing:
        raise ValueError(f"{path}: no {missing[0]} rows; the probe trains on train rows and scores test rows")
    return EqtlVariants(columns["CHROM"].astype(str), columns["POS"].astype(np.int64), alt,
                        np.char.upper(columns["REF"].astype(str)) if "REF" in columns else None,
                        label.astype(np.int64), columns["tissue"].astype(str),
                        columns["distance_to_nearest_TSS"].astype(np.float64), split)


class VariantWindows:
    """Reference and alternative windows of `length` bases around SNPs, cut from an indexed FASTA."""

    def __init__(self, reference: Path, length: int, max_n_fraction: float) -> None:
        self.genome, self.length, self.max_n_fraction = Reference(reference), length, max_n_fraction
        self.site = length // 2

    def contig(self, chrom: str) -> str:
        """The FASTA's name for a chromosome, with or without UCSC's 'chr' prefix."""
        for name in (chrom, chrom.removeprefix("chr"), f"chr{chrom}"):
            if name in self.genome.lengths:
                return name
        raise ValueError(f"chromosome {chrom!r} is not in {self.genome.path} (an hg38 FASTA, e.g. from "
                         f"`mdlm-bio data hg38`, holds chr1 ... chrX)")

    def cut(self, chrom: str, position: int, alt: str, ref: str | None) -> tuple[np.ndarray, np.ndarray] | str:
        """(ref tokens, alt tokens) of one SNP, or why it is left out: its window runs off the chromosome (as the
        loader drops it), or holds too many N (as Caduceus drops it)."""
        name = self.contig(chrom)
        start = position - 1 - self.site
        end = start + self.length
        if start < 0 or end >= self.genome.lengths[name]:
            return "window off the chromosome"
        ref_tokens = encode(self.genome.fetch(name, start, end))
        if ref is not None and ref_tokens[self.site] != encode(ref)[0]:
            raise ValueError(f"{chrom}:{position}: the table's REF {ref} differs from {self.genome.path} there "
                             f"(is the FASTA hg38?)")
        if np.count_nonzero(ref_tokens == N) >= self.max_n_fraction * self.length:
            return "too many N in the window"
        alt_tokens = ref_tokens.copy()
        alt_tokens[self.site] = BASE_IDS["ACGT".index(alt)]
        return ref_tokens, alt_tokens

    def pooled_positions(self, width: int) -> np.ndarray:
        """The window positions embeddings are averaged over: SNP - width//2 .. SNP + width//2, clamped to the
        window (so a short window repeats its edge positions, as the published code's clamp does)."""
        return np.clip(self.site + np.arange(-(width // 2), width // 2 + 1), 0, self.length - 1)

    def close(self) -> None:
        self.genome.close()

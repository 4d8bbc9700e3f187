"""`mdlm-bio train` and `mdlm-bio data`: a run from a preset, and the genome it trains on."""

from __future__ import annotations

from pathlib import Path

from ..dna.hg38 import prepare_hg38
from ..training.callbacks import ValidationLog
from ..training.config import load_config
from ..training.run import train as fit


def train(preset: str, overrides: list[str], *, ignore_memory_limit: bool) -> ValidationLog:
    """Train the preset (configs/train, or a .yaml) with `key=value` overrides; resumes an existing run folder."""
    return fit(load_config(preset, list(overrides)), ignore_memory_limit)


def data(dataset: str, *, data_dir: Path, fasta_url: str | None, bed_url: str | None) -> None:
    """Download and convert a genome for training (hg38: UCSC's FASTA and the Basenji split)."""
    if dataset != "hg38":
        raise ValueError(f"mdlm-bio data knows hg38, not {dataset!r}")
    genome = prepare_hg38(data_dir, fasta_url, bed_url)
    print(f"hg38 ready in {genome.directory}: {len(genome.lengths)} sequences, {sum(genome.lengths.values()):,} bases")

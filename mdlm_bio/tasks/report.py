"""`mdlm-bio report` and `mdlm-bio describe`: what generated DNA looks like, and what a backbone holds."""

from __future__ import annotations

from pathlib import Path

from ..backbones import build_backbone
from ..backbones import describe as parameter_table
from ..dna.report import generation_report
from ..training.data import preset_backbone


def report(generated: Path, *, reference: Path, out_dir: Path, k: list[int]) -> None:
    """k-mer spectra, GC content and diversity of generated DNA against a reference, in out_dir."""
    generation_report(generated, reference, out_dir, ks=tuple(k))
    print((out_dir / "report.md").read_text())


def describe(preset: str, overrides: list[str]) -> None:
    """Build a backbone preset and print its sizes: DNA backbones (those taking a complement map) on the DNA
    vocabulary, text ones on their preset's vocabulary."""
    print(parameter_table(build_backbone(preset_backbone(preset, overrides))))

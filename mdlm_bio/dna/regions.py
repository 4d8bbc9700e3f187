"""Regions to infill, from a BED file: `record start end` per line, 0-based and end-exclusive."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class RegionError(ValueError):
    """A BED line that does not describe a region of a known record."""


def read_regions(path: str | Path, lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """One boolean mask per record (all False where no region is listed); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BED file not found: {path}")
    masks = {name: np.zeros(length, dtype=bool) for name, length in lengths.items()}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
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

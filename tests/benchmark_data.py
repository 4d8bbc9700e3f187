"""Tiny labelled datasets in the genomic-benchmarks folder layout, written by tests.

Two classes that a model can tell apart and a generator can be steered between: GC-rich and AT-rich
sequences (each base drawn from G/C, or from A/T, with probability `bias`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GC_RICH, AT_RICH = "gc_rich", "at_rich"


def biased_dna(rng: np.random.Generator, length: int, rich_in: str, bias: float) -> str:
    other = "AT" if rich_in == "GC" else "GC"
    pick_rich = rng.random(length) < bias
    return "".join(rng.choice(list(rich_in if rich else other)) for rich in pick_rich)


def gc_at_sequences(rng: np.random.Generator, label: str, count: int, length: int, bias: float = 0.85) -> list[str]:
    rich_in = "GC" if label == GC_RICH else "AT"
    return [biased_dna(rng, int(rng.integers(length // 2, length + 1)), rich_in, bias) for _ in range(count)]


def write_benchmark(
    root: Path, name: str, classes: tuple[str, str] = (GC_RICH, AT_RICH), train: int = 64, test: int = 32,
    length: int = 40, seed: int = 0,
) -> Path:
    """`root/name/{train,test}/<class>/<id>.txt`; the first class is GC-rich, the second AT-rich."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for label, kind in zip(classes, (GC_RICH, AT_RICH)):
            folder = root / name / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index, sequence in enumerate(gc_at_sequences(rng, kind, count, length)):
                (folder / f"{index}.txt").write_text(sequence)
    return root / name

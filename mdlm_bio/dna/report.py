"""`mdlm-bio report`: how close generated DNA is to held-out reference DNA, with two baselines to read it by.

A k-mer distance alone is hard to judge: even a perfect generator scores above 0 on a finite sample, and
what counts as "far" depends on k and on the sample size. So every sample metric is also computed for
random windows of the reference with the generated lengths (what a perfect generator would score) and for
uniformly random DNA of the same lengths (what a model that learned nothing would score).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_output, write_json_and_markdown
from .discriminator import MIN_PER_CLASS, discriminate
from .fasta import Record, read_fasta
from .metrics import diversity, gc_content, jensen_shannon_distance, kmer_spectrum, validate_k
from .tokenizer import A, T

GENERATED, REFERENCE_WINDOWS, UNIFORM_RANDOM = "generated", "reference_windows", "uniform_random"
_ROW_LABELS = {GENERATED: "generated", REFERENCE_WINDOWS: "reference windows (floor)", UNIFORM_RANDOM: "uniform random"}
_GUIDE = """\
## How to read it

- **JS k=…**: Jensen-Shannon distance (base 2) between the sample's k-mer spectrum and the whole reference's;
  0 = identical k-mer spectra, 1 = no k-mer in common. Judge the generated row against the two baselines.
- **reference windows (floor)**: random windows of the reference with the generated lengths; a perfect
  generator scores about this, since sampling noise alone keeps a finite sample above 0.
- **uniform random**: uniformly random DNA of the generated lengths (seeded); a model scoring at or above
  this learned no k-mer statistics.
- **GC mean / std**: G+C fraction of each sequence's non-N bases, averaged and spread over sequences;
  compare the generated row with the reference windows, whose lengths match.
- **duplicate rate**: fraction of generated sequences identical to an earlier one; well above 0 = mode collapse.
- **novelty rate**: fraction of generated sequences found verbatim in no reference record; well below 1
  for sequences longer than ~30 bases means copying from the reference, or the reference leaked into training.
- **discriminator AUROC / F1**: how well a small classifier (logistic regression on each sequence's 1- to 4-mer
  frequencies) tells the row's sequences from other reference windows of the same lengths, each prediction
  made by a model that did not see that sequence (stratified k-fold); 0.5 = indistinguishable, 1 = always told
  apart. The reference-windows row is the floor (about 0.5, give or take the noise of a small sample), the
  uniform-random row the ceiling.
"""


def _read(path: Path, k: int) -> list[Record]:
    """All records of a FASTA, each at least k bases long, so a k-mer error names the file and record."""
    records = list(read_fasta(path))
    for record in records:
        if record.tokens.size < k:
            raise ValueError(f"{path}: record {record.name!r} has {record.tokens.size} bases, fewer than k={k}")
    return records


def _uniform_random(lengths: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Uniformly random A/C/G/T with the given lengths."""
    return [rng.integers(A, T + 1, size=length, dtype=np.uint8) for length in lengths]


def reference_windows(reference: list[np.ndarray], lengths: list[int], rng: np.random.Generator) -> list[np.ndarray] | None:
    """One window per length, drawn uniformly from all reference windows of that length across records;
    None when some length exceeds every record."""
    sizes = np.array([sequence.size for sequence in reference])
    lengths_array = np.array(lengths)
    windows = []
    for length in np.unique(lengths_array):
        starts = np.maximum(sizes - length + 1, 0)  # window starts per record
        if starts.sum() == 0:
            return None
        ends = np.cumsum(starts)
        draws = rng.integers(ends[-1], size=np.count_nonzero(lengths_array == length))
        records = np.searchsorted(ends, draws, side="right")
        offsets = draws - (ends[records] - starts[records])
        windows += [reference[record][offset : offset + length] for record, offset in zip(records, offsets)]
    return windows


def _summary(path: Path, records: list[Record]) -> dict[str, Any]:
    lengths = np.array([record.tokens.size for record in records])
    return {
        "path": str(path),
        "sequences": len(records),
        "bases": int(lengths.sum()),
        "min_length": int(lengths.min()),
        "mean_length": float(lengths.mean()),
        "max_length": int(lengths.max()),
    }


def _gc_summary(sequences: list[np.ndarray]) -> dict[str, float]:
    """Pooled GC, and mean and std over sequences (sequences of only N left out)."""
    gc = gc_content(sequences)
    return {"overall": gc.overall, "mean": float(np.nanmean(gc.per_sequence)), "std": float(np.nanstd(gc.per_sequence))}


def _js_row(spectra: dict[int, np.ndarray], reference_spectra: dict[int, np.ndarray]) -> dict[str, float]:
    """JS distance to the reference per k, keyed by str(k) as JSON keys must be strings."""
    return {str(k): jensen_shannon_distance(spectrum, reference_spectra[k]) for k, spectrum in spectra.items()}


def _discriminator_rows(rows: dict[str, list[np.ndarray] | None], held_out: list[np.ndarray], lengths: list[int],
                        rng: np.random.Generator, seed: int) -> dict[str, dict[str, Any] | None]:
    """Per row, the discriminator's held-out scores against a fresh draw of reference windows of the same
    lengths (None where windows cannot be drawn, or with fewer sequences than it needs)."""
    negatives = reference_windows(held_out, lengths, rng)
    if negatives is None or len(lengths) < MIN_PER_CLASS:
        return dict.fromkeys(rows)
    return {name: None if sequences is None else asdict(discriminate(sequences, negatives, seed))
            for name, sequences in rows.items()}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _markdown(report: dict[str, Any]) -> str:
    """A short Markdown summary: inputs, one table row per sample, the diversity numbers, how to read them."""
    generated, reference = report["inputs"][GENERATED], report["inputs"]["reference"]
    ks = report["settings"]["ks"]
    strands = "both strands" if report["settings"]["both_strands"] else "forward strand only"
    lines = [
        "# DNA generation report",
        "",
        f"- generated: `{generated['path']}`: {_count(generated['sequences'], 'sequence')}, {generated['bases']:,} bases, "
        f"lengths {generated['min_length']}–{generated['max_length']}",
        f"- reference: `{reference['path']}`: {_count(reference['sequences'], 'record')}, {reference['bases']:,} bases, "
        f"GC {report['gc']['reference']['overall']:.4f}",
        f"- k-mers counted on the {strands}; baselines drawn with seed {report['settings']['seed']}",
        "",
        "| sample | " + " | ".join(f"JS k={k}" for k in ks) + " | GC mean | GC std | discriminator AUROC | F1 |",
        "| --- |" + " ---: |" * (len(ks) + 4),
    ]
    for name, label in _ROW_LABELS.items():
        js, gc = report["js_distance"][name] or {}, report["gc"][name] or {}
        discriminator = report["discriminator"][name] or {}
        cells = [_number(js.get(str(k))) for k in ks] + [_number(gc.get("mean")), _number(gc.get("std")),
                                                         _number(discriminator.get("auroc")),
                                                         _number(discriminator.get("f1"))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| diversity | value |",
        "| --- | ---: |",
        f"| duplicate rate | {_number(report['diversity']['duplicate_rate'])} |",
        f"| novelty rate | {_number(report['diversity']['novelty_rate'])} |",
        "",
        _GUIDE,
    ]
    return "\n".join(lines)


def _figure(generated: dict[int, np.ndarray], reference: dict[int, np.ndarray], js: dict[str, Any]) -> Figure:
    """Per k, each k-mer's generated frequency against its reference frequency (on y = x is perfect), titled
    with the JS distances of the generated sample and of both baselines."""
    figure = Figure(figsize=(4.8 * len(reference), 5.2), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, k in zip(figure.subplots(1, len(reference), squeeze=False)[0], reference):
        seen = (reference[k] > 0) | (generated[k] > 0)  # at large k most bins are empty in both: skip drawing them
        axes.scatter(reference[k][seen], generated[k][seen], s=6, alpha=0.5, linewidths=0)
        top = max(reference[k].max(), generated[k].max()) * 1.05
        axes.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle="--", label="y = x")
        axes.set(xlim=(0, top), ylim=(0, top), aspect="equal", xlabel="reference frequency", ylabel="generated frequency")
        axes.ticklabel_format(style="sci", scilimits=(-2, 2))
        floor, random = (_number((js[name] or {}).get(str(k))) for name in (REFERENCE_WINDOWS, UNIFORM_RANDOM))
        axes.set_title(f"{k}-mers: JS {_number(js[GENERATED][str(k)])}\n(floor {floor}, uniform random {random})")
        axes.legend(loc="upper left")
    return figure


def generation_report(
    generated: Path,
    reference: Path,
    out_dir: Path,
    ks: tuple[int, ...] = (3, 6),
    *,
    both_strands: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare a FASTA of generated DNA with a reference FASTA; write report.json, report.md and
    kmer_spectra.png to out_dir (each atomically, and only once every number is computed) and return
    the report as a dict, the same as report.json."""
    for k in ks:
        validate_k(k)
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("ks must name at least one k")
    generated, reference, out_dir = Path(generated), Path(reference), Path(out_dir)
    generated_records, reference_records = _read(generated, ks[-1]), _read(reference, ks[-1])
    samples = [record.tokens for record in generated_records]
    held_out = [record.tokens for record in reference_records]
    rng = np.random.default_rng(seed)
    lengths = [sample.size for sample in samples]
    rows = {
        GENERATED: samples,
        REFERENCE_WINDOWS: reference_windows(held_out, lengths, rng),
        UNIFORM_RANDOM: _uniform_random(lengths, rng),
    }
    reference_spectra = {k: kmer_spectrum(held_out, k, both_strands) for k in ks}
    spectra = {name: {k: kmer_spectrum(rows[name], k, both_strands) for k in ks} for name in rows if rows[name] is not None}
    report = {
        "inputs": {GENERATED: _summary(generated, generated_records), "reference": _summary(reference, reference_records)},
        "settings": {"ks": ks, "both_strands": both_strands, "seed": seed},
        "js_distance": {name: _js_row(spectra[name], reference_spectra) if name in spectra else None for name in rows},
        "gc": {"reference": _gc_summary(held_out)}
        | {name: None if sequences is None else _gc_summary(sequences) for name, sequences in rows.items()},
        "diversity": asdict(diversity(samples, held_out)),
        "discriminator": _discriminator_rows(rows, held_out, lengths, rng, seed),
    }
    figure = _figure(spectra[GENERATED], reference_spectra, report["js_distance"])
    write_json_and_markdown(out_dir, "report", report, _markdown(report))
    with atomic_output(out_dir / "kmer_spectra.png", "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    return report

"""Genomic Benchmarks results as mean ± std per dataset, in Markdown and JSON, next to published numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_json_and_markdown
from ..tables import benchmark_settings


@dataclass(frozen=True)
class SeedResult:
    dataset: str
    seed: int
    test_accuracy: float
    best_val_accuracy: float
    num_train: int
    num_valid: int
    num_test: int
    checkpoint: str


def published_results() -> dict[str, Any]:
    """configs/benchmarks/genomic-benchmarks.yaml: sources, shown columns, and results per paper and model."""
    return benchmark_settings("genomic-benchmarks")


def summarise(results: Sequence[SeedResult]) -> dict[str, dict[str, Any]]:
    """Per dataset: mean, sample std (ddof=1; 0 for one seed), min, max and the per-seed test accuracies."""
    by_dataset: dict[str, list[SeedResult]] = defaultdict(list)
    for result in results:
        by_dataset[result.dataset].append(result)
    summary = {}
    for dataset, runs in by_dataset.items():
        accuracies = np.array([run.test_accuracy for run in sorted(runs, key=lambda run: run.seed)])
        summary[dataset] = {
            "mean": float(accuracies.mean()),
            "std": float(accuracies.std(ddof=1)) if accuracies.size > 1 else 0.0,
            "min": float(accuracies.min()),
            "max": float(accuracies.max()),
            "seeds": sorted(run.seed for run in runs),
            "test_accuracy": accuracies.tolist(),
        }
    return summary


def published_cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return f"{value[0]:.3f} ± {value[1]:.3f}"
    return f"{value:.3f}"


def markdown_table(summary: dict[str, dict[str, Any]], published: dict[str, Any], title: str) -> str:
    columns = published["columns"]
    header = ["dataset", f"ours ({title})", *(column["label"] for column in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, row in summary.items():
        ours = f"**{row['mean']:.3f} ± {row['std']:.3f}** (n={len(row['seeds'])})"
        cells = []
        for column in columns:
            paper, model = column["result"].split("/", 1)
            cells.append(published_cell(published["results"][paper][model].get(dataset)))
        lines.append("| " + " | ".join([dataset, ours, *cells]) + " |")
    notes = [f"- {paper}: {text}" for paper, text in published["sources"].items()]
    return "\n".join(
        ["# Genomic Benchmarks: top-1 test accuracy", "", *lines, "",
         "Ours: mean ± sample std over seeds, each scored with its best-validation checkpoint.",
         "Published columns use each paper's own spread (see sources).", "", *notes, ""]
    )


def write_results(results: Sequence[SeedResult], out_dir: Path, title: str) -> tuple[Path, Path]:
    """results.json (per seed, summary, and the published numbers) and results.md in out_dir."""
    published = published_results()
    summary = summarise(results)
    payload = {"benchmark": "genomic-benchmarks", "model": title, "summary": summary,
               "runs": [asdict(r) for r in results], "published": published}
    markdown_path = write_json_and_markdown(out_dir, "results", payload, markdown_table(summary, published, title))
    return out_dir / "results.json", markdown_path

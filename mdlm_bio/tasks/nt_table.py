"""Nucleotide Transformer task results as Caduceus's Table 2: per task, the grid point with the best mean validation
metric, its test mean over seeds ± the max-min spread, beside the published models."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..dna.nt_tasks import NtTask, nt_settings
from ..io import write_json_and_markdown
from .benchmark_table import published_cell


@dataclass(frozen=True)
class NtResult:
    """One (task, grid point, seed): the task's metric on the test split and the best validation value."""

    task: str
    metric: str
    lr: float
    batch_size: int
    seed: int
    fold: int
    test_score: float
    best_val_score: float
    num_train: int
    num_valid: int
    num_test: int
    checkpoint: str | None


def summarise(results: Sequence[NtResult], tasks: Sequence[NtTask]) -> dict[str, dict[str, Any]]:
    """Per task: the chosen grid point, the test mean, sample std and max-min spread over its seeds, the per-seed
    scores, and every grid point's mean validation and test values, so the choice can be read."""
    summary: dict[str, dict[str, Any]] = {}
    for task in tasks:
        by_point: dict[tuple[float, int], list[NtResult]] = defaultdict(list)
        for result in results:
            if result.task == task.name:
                by_point[(result.lr, result.batch_size)].append(result)
        if not by_point:
            continue
        validation = {point: statistics.fmean(run.best_val_score for run in runs) for point, runs in by_point.items()}
        best = max(validation, key=validation.__getitem__)
        scores = [run.test_score for run in sorted(by_point[best], key=lambda run: run.seed)]
        summary[task.name] = {
            "metric": task.metric, "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0, "spread": max(scores) - min(scores),
            "lr": best[0], "batch_size": best[1], "seeds": len(scores), "test_scores": scores,
            "grid": [{"lr": lr, "batch_size": size, "mean_val": validation[(lr, size)],
                      "mean_test": statistics.fmean(run.test_score for run in runs)}
                     for (lr, size), runs in by_point.items()],
        }
    return summary


def markdown_table(summary: dict[str, dict[str, Any]], published: dict[str, Any], title: str) -> str:
    models = published["columns"]
    header = ["task", "metric", f"ours ({title})", *(f"{model} ({size})" for model, size in models.items())]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, row in summary.items():
        ours = f"**{row['mean']:.3f} ± {row['spread']:.3f}** (n={row['seeds']}, lr {row['lr']:g}, batch {row['batch_size']})"
        cells = [published_cell(published["results"].get(task, {}).get(model)) for model in models]
        lines.append("| " + " | ".join([task, row["metric"], ours, *cells]) + " |")
    return "\n".join([
        f"# Nucleotide Transformer tasks: {title}", "", *lines, "",
        "Ours: the grid point (learning rate, batch size) with the best mean validation metric; its test mean over "
        "seeds ± max - min over seeds (the paper's spread; results.json also has the sample std). Each seed "
        "validates on its own fold of a stratified cross-validation of the training split and is tested with its "
        "best-validation checkpoint.", "", f"- {published['sources']['caduceus']}", ""])


def write_results(results: Sequence[NtResult], tasks: Sequence[NtTask], out_dir: Path, title: str) -> Path:
    """results.json (every run, the summary, the published numbers) and results.md in out_dir; returns the .md."""
    settings = nt_settings()
    published = {key: settings[key] for key in ("sources", "columns", "results")}
    summary = summarise(results, tasks)
    payload = {"benchmark": "nucleotide-transformer", "model": title, "summary": summary,
               "runs": [asdict(result) for result in results], "published": published}
    return write_json_and_markdown(out_dir, "results", payload, markdown_table(summary, published, title))

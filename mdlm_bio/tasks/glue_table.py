"""GLUE results as MDLM's table: one column per task (MNLI matched and mismatched apart) and their average, the best
learning rate's mean over seeds, beside the paper's BERT before and after MDLM fine-tuning."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..io import write_json_and_markdown
from ..text.glue import GlueTask, glue_settings, glue_tasks


@dataclass(frozen=True)
class GlueResult:
    """One (task, learning rate, seed): its metrics in percent per evaluation split."""

    task: str
    lr: float
    seed: int
    scores: dict[str, dict[str, float]]
    num_train: int

    def cell(self, split: str) -> float:
        """A split's number in the table: the mean of the task's metrics (STS-B: Pearson and Spearman)."""
        return statistics.fmean(self.scores[split].values())

    def mean_cell(self) -> float:
        """What picks the learning rate: the mean over the task's evaluation splits."""
        return statistics.fmean(self.cell(split) for split in self.scores)


def summarise(results: Sequence[GlueResult], tasks: Sequence[GlueTask]) -> dict[str, dict[str, Any]]:
    """Per table column: the best learning rate (by the mean over seeds), its mean and sample std over seeds, and
    every learning rate's mean, so the choice can be read."""
    summary: dict[str, dict[str, Any]] = {}
    for task in tasks:
        by_lr: dict[float, list[GlueResult]] = defaultdict(list)
        for result in results:
            if result.task == task.name:
                by_lr[result.lr].append(result)
        if not by_lr:
            continue
        means = {lr: statistics.fmean(run.mean_cell() for run in runs) for lr, runs in by_lr.items()}
        best = max(means, key=means.__getitem__)
        for column, split in zip(task.columns(), task.eval_splits):
            cells = [run.cell(split) for run in sorted(by_lr[best], key=lambda run: run.seed)]
            summary[column] = {"mean": statistics.fmean(cells), "std": statistics.stdev(cells) if len(cells) > 1 else 0.0,
                               "lr": best, "seeds": len(cells), "per_seed": cells, "by_lr": means,
                               "metrics": list(task.metrics)}
    return summary


def all_columns() -> list[str]:
    return [column for task in glue_tasks().values() for column in task.columns()]


def markdown_table(summary: dict[str, dict[str, Any]], paper: dict[str, dict[str, float]], title: str) -> str:
    columns = all_columns()
    average = statistics.fmean(summary[column]["mean"] for column in columns) if set(columns) <= set(summary) else None
    header = ["model", *columns, "average"]
    ours = [f"**{summary[c]['mean']:.2f}** ± {summary[c]['std']:.2f}" if c in summary else "–" for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             "| " + " | ".join([f"ours: {title}", *ours, "–" if average is None else f"**{average:.2f}**"]) + " |"]
    for model, row in paper.items():
        lines.append("| " + " | ".join([f"paper: {model}", *(f"{row[c]:.2f}" for c in columns),
                                        f"{row['average']:.2f}"]) + " |")
    metrics = ", ".join(f"{c}: {'/'.join(summary[c]['metrics'])} (lr {summary[c]['lr']:g}, {summary[c]['seeds']} seeds)"
                        for c in columns if c in summary)
    return "\n".join([f"# GLUE validation scores: {title}", "", *lines, "",
                      "Ours: the best learning rate's mean ± sample std over seeds; a cell with two metrics shows "
                      "their mean. The average is over the nine columns (only when all were run).",
                      f"Metrics and chosen learning rates: {metrics}.",
                      "Paper rows: MDLM (Sahoo et al. 2024) section 4, MosaicBERT before and after MDLM fine-tuning.",
                      ""])


def write_results(results: Sequence[GlueResult], tasks: Sequence[GlueTask], out_dir: Path, title: str) -> Path:
    """results.json (every run, the summary, the paper's rows) and results.md in out_dir; returns the .md."""
    summary, paper = summarise(results, tasks), glue_settings()["paper"]
    payload = {"model": title, "summary": summary, "runs": [asdict(result) for result in results], "paper": paper}
    return write_json_and_markdown(out_dir, "results", payload, markdown_table(summary, paper, title))

"""`mdlm-bio benchmark`: one table across the DNA evaluation suite, from the results.json of finished runs of
`finetune genomic-benchmarks`, `finetune nucleotide-transformer` and `evaluate-eqtl`: a section per benchmark, a
column per run (named by its folder), and the published columns beside them where the papers print numbers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import check_input_path, write_json_and_markdown
from .benchmark_table import published_cell

GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER, EQTL = "genomic-benchmarks", "nucleotide-transformer", "eqtl"
TITLES = {GENOMIC_BENCHMARKS: "Genomic Benchmarks: top-1 test accuracy, mean ± sample std over seeds",
          NUCLEOTIDE_TRANSFORMER: "Nucleotide Transformer tasks: test metric, mean ± max-min over seeds",
          EQTL: "eQTL variant effects: SVM AUROC mean ± std over training subsets; zero-shot AUROC of -score"}


@dataclass(frozen=True)
class Run:
    name: str  # the run folder's name, the column's title
    path: Path
    suite: str
    payload: dict[str, Any]


def read_run(path: Path) -> Run:
    """A run folder (or its results.json) and which benchmark it holds."""
    file = path / "results.json" if path.is_dir() else path
    check_input_path(file, "results file")
    payload = json.loads(file.read_text())
    suite = payload.get("benchmark", GENOMIC_BENCHMARKS if "runs" in payload and "summary" in payload else None)
    if suite not in TITLES:
        raise ValueError(f"{file} is not a result of finetune genomic-benchmarks, finetune nucleotide-transformer or "
                         f"evaluate-eqtl (benchmark: {suite!r}); GLUE has its own table")
    if suite == GENOMIC_BENCHMARKS and any("test_accuracy" not in row for row in payload["summary"].values()):
        raise ValueError(f"{file} is not a Genomic Benchmarks results file")
    return Run(file.parent.name, file.parent, suite, payload)


def _rows(runs: Sequence[Run], order: Callable[[Run], list[str]]) -> list[str]:
    return list(dict.fromkeys(name for run in runs for name in order(run)))


def genomic_benchmarks_section(runs: Sequence[Run]) -> list[list[str]]:
    published = runs[0].payload["published"]
    columns = published["columns"]
    table = [["dataset", *(run.name for run in runs), *(column["label"] for column in columns)]]
    for dataset in _rows(runs, lambda run: list(run.payload["summary"])):
        ours = [f"{row['mean']:.3f} ± {row['std']:.3f}" if (row := run.payload["summary"].get(dataset)) else "–"
                for run in runs]
        cells = [published_cell(published["results"][paper][model].get(dataset))
                 for paper, model in (column["result"].split("/", 1) for column in columns)]
        table.append([dataset, *ours, *cells])
    return table


def nucleotide_transformer_section(runs: Sequence[Run]) -> list[list[str]]:
    published = runs[0].payload["published"]
    models = list(published["columns"])
    table = [["task", "metric", *(run.name for run in runs), *models]]
    for task in _rows(runs, lambda run: list(run.payload["summary"])):
        metric = next(run.payload["summary"][task]["metric"] for run in runs if task in run.payload["summary"])
        ours = [f"{row['mean']:.3f} ± {row['spread']:.3f}" if (row := run.payload["summary"].get(task)) else "–"
                for run in runs]
        table.append([task, metric, *ours, *(published_cell(published["results"].get(task, {}).get(m)) for m in models)])
    return table


def eqtl_section(runs: Sequence[Run]) -> list[list[str]]:
    table = [["bucket (distance to TSS)", *(run.name for run in runs)]]
    for bucket in _rows(runs, lambda run: list(run.payload["summary"]["probe"])):
        cells = []
        for run in runs:
            row, zero_shot = run.payload["summary"]["probe"].get(bucket), run.payload["summary"]["zero_shot"]
            probe = "–" if row is None or "skipped" in row else f"{row['mean']:.3f} ± {row['std']:.3f}"
            shot = f"{zero_shot['minus_score'][bucket]:.3f}" if zero_shot and bucket in zero_shot["minus_score"] else "–"
            cells.append(f"{probe}; zero-shot {shot}")
        table.append([bucket, *cells])
    return table


SECTIONS = {GENOMIC_BENCHMARKS: genomic_benchmarks_section, NUCLEOTIDE_TRANSFORMER: nucleotide_transformer_section,
            EQTL: eqtl_section}


def markdown(sections: dict[str, list[list[str]]], runs: Sequence[Run]) -> str:
    lines = ["# DNA evaluation suite", ""]
    for suite, table in sections.items():
        lines += [f"## {TITLES[suite]}", "", "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0]),
                  *("| " + " | ".join(row) + " |" for row in table[1:]), ""]
    lines += ["Runs:", *(f"- {run.name}: {run.payload['model']} ({run.path})" for run in runs)]
    notes = {run.suite: run.payload["published"] for run in runs if run.suite == EQTL}
    return "\n".join([*lines, "", *notes.values(), ""])


def benchmark(results: list[Path], *, out: Path) -> None:
    """Read every run, group them by benchmark, and write OUT (Markdown) and its .json beside it."""
    runs = [read_run(Path(path)) for path in results]
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"two runs share a folder name ({names}); the columns are named by it, so rename one")
    sections = {suite: SECTIONS[suite]([run for run in runs if run.suite == suite]) for suite in SECTIONS
                if any(run.suite == suite for run in runs)}
    payload = {"sections": sections, "runs": {run.name: {"path": str(run.path), "model": run.payload["model"],
                                                         "benchmark": run.suite} for run in runs}}
    path = write_json_and_markdown(out.parent, out.name.removesuffix(".md"), payload, markdown(sections, runs))
    print(path.read_text())
    print(f"wrote {path} and {path.with_suffix('.json')}")

"""The Nucleotide Transformer downstream tasks (configs/benchmarks/nucleotide-transformer.yaml) as labelled
sequences: from the hub through 🤗 datasets (InstaDeepAI/nucleotide_transformer_downstream_tasks, one config per
task, `sequence` and `label` columns), or from a local folder.

A local folder holds TASK/SPLIT.{jsonl,json,csv,tsv,parquet} in the hub's schema, or TASK/SPLIT.{fna,fasta,fa}, FASTA
whose record names end in |LABEL (the integer class). Classes are the task's integer labels, named "0", "1", ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..tables import benchmark_settings, find_table, read_table, select_named
from .benchmarks import LabelledSequences
from .fasta import read_fasta
from .tokenizer import encode

HUB_DATASET = "InstaDeepAI/nucleotide_transformer_downstream_tasks"
FASTA_SUFFIXES = (".fna", ".fasta", ".fa")
COLUMNS = ("sequence", "label")


@dataclass(frozen=True)
class NtTask:
    name: str
    classes: int
    max_length: int  # Caduceus's crop length for the task
    metric: str  # matthews, f1 or accuracy (names in classification_metrics.METRICS)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(label) for label in range(self.classes))


def nt_settings() -> dict[str, Any]:
    return benchmark_settings("nucleotide-transformer")


def nt_tasks() -> dict[str, NtTask]:
    """The 18 tasks, in the order of Caduceus's table."""
    return {name: NtTask(name, int(entry["classes"]), int(entry["max_length"]), entry["metric"])
            for name, entry in nt_settings()["tasks"].items()}


def select_nt_tasks(names: list[str] | None) -> list[NtTask]:
    """`None` or `all`: the 18 tasks; otherwise the named ones, each known."""
    return select_named(names, nt_tasks(), "Nucleotide Transformer")


def read_task_split(task: NtTask, split: str, data_dir: Path | None) -> LabelledSequences:
    """One split (train or test) of a task, its labels checked against the task's classes."""
    if data_dir is None:
        where = f"{HUB_DATASET} {task.name}/{split}"
        sequences, labels = _encoded(_hub_split(task, split))
    else:
        path = find_table(data_dir / task.name, split, FASTA_SUFFIXES)
        where = str(path)
        sequences, labels = _read_fasta(path) if path.suffix in FASTA_SUFFIXES else _encoded(
            read_table(path, split, COLUMNS))
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.size and not (0 <= labels.min() and labels.max() < task.classes):
        raise ValueError(f"{where}: labels must be integers 0 to {task.classes - 1} for {task.name}; found "
                         f"{sorted(set(labels.tolist()))[:5]}")
    return LabelledSequences(sequences, labels.astype(np.int64), task.class_names)


def _hub_split(task: NtTask, split: str) -> Any:
    """The split from the hub through 🤗 datasets; a copy that only its loading script can read (which datasets 4
    and later refuse to run) is an error saying how to make the local tables instead."""
    import datasets

    try:
        return datasets.load_dataset(HUB_DATASET, task.name, split=split)
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        raise ValueError(f"{HUB_DATASET} is read by a loading script, which datasets {datasets.__version__} does not "
                         f"run; export the tasks once with datasets<4 (load_dataset(..., '{task.name}', "
                         f"trust_remote_code=True)['{split}'].to_json('DIR/{task.name}/{split}.jsonl')) and pass "
                         f"--data-dir DIR") from None


def _encoded(table: Any) -> tuple[list[np.ndarray], list[int]]:
    """Token arrays and labels of a table with the hub's `sequence` and `label` columns."""
    return [encode(text) for text in table["sequence"]], table["label"]


def _read_fasta(path: Path) -> tuple[list[np.ndarray], list[int]]:
    texts, labels = [], []
    for record in read_fasta(path):
        label = record.name.rsplit("|", 1)[-1]
        if "|" not in record.name or not label.isdigit():
            raise ValueError(f"{path}: record {record.name!r} does not end in |LABEL (an integer class)")
        texts.append(record.tokens)
        labels.append(int(label))
    return texts, labels

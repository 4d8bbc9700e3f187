"""Benchmark tables kept on disk instead of the hub: TASK/SPLIT.{jsonl,json,csv,tsv,parquet} in a folder, read with
🤗 datasets into the schema the hub dataset has (GLUE's tasks, the Nucleotide Transformer's); and each benchmark's
settings and published numbers, configs/benchmarks/NAME.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import OmegaConf

if TYPE_CHECKING:
    import datasets

Task = TypeVar("Task")

def benchmark_settings(name: str) -> dict[str, Any]:
    """configs/benchmarks/NAME.yaml (shipped as mdlm_bio.configs) as plain Python data."""
    text = (resources.files("mdlm_bio.configs") / "benchmarks" / f"{name}.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text))  # type: ignore[return-value]


LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def find_table(folder: Path, split: str, extra_suffixes: tuple[str, ...] = ()) -> Path:
    """folder/SPLIT.* in one of the table formats (or `extra_suffixes`, which the caller reads itself)."""
    suffixes = (*LOCAL_FORMATS, *extra_suffixes)
    found = [path for path in sorted(folder.glob(f"{split}.*")) if path.suffix in suffixes]
    if not found:
        raise FileNotFoundError(f"no {split} table in {folder} (looked for {split}{{{','.join(suffixes)}}})")
    return found[0]


def read_table(path: Path, split: str, columns: tuple[str, ...]) -> datasets.Dataset:
    """A local table as a 🤗 dataset, checked for the `columns` its benchmark needs."""
    import datasets

    options = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
    table = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files={split: str(path)}, split=split, **options)
    missing = [column for column in columns if column not in table.column_names]
    if missing:
        raise ValueError(f"{path}: no {missing} column(s); the table needs {list(columns)}")
    return table


def select_named(names: list[str] | None, tasks: Mapping[str, Task], suite: str) -> list[Task]:
    """`None` or `all`: every task of a suite, in its order; otherwise the named ones, each known, each once."""
    if not names or names == ["all"]:
        return list(tasks.values())
    unknown = [name for name in names if name not in tasks]
    if unknown:
        raise ValueError(f"unknown {suite} task(s) {unknown}; choose from {list(tasks)}")
    return [tasks[name] for name in dict.fromkeys(names)]

"""GLUE's tasks (configs/benchmarks/glue.yaml) and their data: from the hub through 🤗 datasets, or from local
tables in the same schema, encoded as a model's tokenizer pairs sentences.

A local folder holds TASK/SPLIT.{jsonl,json,csv,tsv,parquet} with the task's text fields and `label` (an
integer class, or a float for STS-B), as the hub's `glue` dataset has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ..tables import benchmark_settings, find_table, read_table, select_named
from .tokenizer import TextTokenizer


@dataclass(frozen=True)
class GlueTask:
    name: str
    inputs: tuple[str, ...]  # one field, or a pair
    labels: int  # 1 = a regression (STS-B)
    metrics: tuple[str, ...]
    eval_splits: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return self.labels == 1

    def columns(self) -> list[str]:
        """The table's columns: the task, or one per evaluation split where it has several (MNLI m/mm)."""
        if len(self.eval_splits) == 1:
            return [self.name]
        return [f"{self.name}/{split}" for split in self.eval_splits]


def glue_settings() -> dict[str, Any]:
    return benchmark_settings("glue")


def glue_tasks() -> dict[str, GlueTask]:
    """Every task, in the order of MDLM's table."""
    return {name: GlueTask(name, tuple(entry["inputs"]), int(entry["labels"]), tuple(entry["metrics"]),
                           tuple(entry["eval"])) for name, entry in glue_settings()["tasks"].items()}


def select_tasks(names: list[str] | None) -> list[GlueTask]:
    """`None` or `all`: the eight tasks; otherwise the named ones, each known."""
    return select_named(names, glue_tasks(), "GLUE")


def load_split(task: GlueTask, split: str, data_dir: Path | None) -> datasets.Dataset:
    """One split of a task: the hub's, or `data_dir/TASK/SPLIT.*` (checked for the task's fields and labels)."""
    if data_dir is None:
        return datasets.load_dataset(glue_settings()["dataset"], task.name, split=split)
    return read_table(find_table(data_dir / task.name, split), split, (*task.inputs, "label"))


def encode(table: datasets.Dataset, task: GlueTask, tokenizer: TextTokenizer, max_length: int) -> datasets.Dataset:
    """`input_ids`, `attention_mask`, `token_type_ids` and `label` per example, truncated to `max_length`.
    A tokenizer with a sentence-pair template (BERT's [CLS] a [SEP] b [SEP], RoBERTa's) frames the text as its
    model was pretrained; one without (GPT-2's) gets BOS a EOS [b EOS], as the text track frames documents."""
    hf = tokenizer.hf
    templated = hf.num_special_tokens_to_add(pair=len(task.inputs) == 2) > 0

    def encode_batch(batch: dict[str, list]) -> dict[str, list]:
        texts = [batch[field] for field in task.inputs]
        if templated:
            encoded = hf(*texts, truncation=True, max_length=max_length, return_token_type_ids=True)
            return {**encoded, "label": batch["label"]}
        rows: dict[str, list] = {"input_ids": [], "attention_mask": [], "token_type_ids": [], "label": batch["label"]}
        for parts in zip(*texts):
            pieces = [hf(part, add_special_tokens=False)["input_ids"] for part in parts]
            ids, types = [tokenizer.bos_id], [0]
            for index, piece in enumerate(pieces):
                ids += [*piece, tokenizer.eos_id]
                types += [index] * (len(piece) + 1)
            rows["input_ids"].append(ids[:max_length])
            rows["attention_mask"].append([1] * len(ids[:max_length]))
            rows["token_type_ids"].append(types[:max_length])
        return rows

    return table.map(encode_batch, batched=True, remove_columns=table.column_names,
                     desc=f"{task.name}: tokenizing")

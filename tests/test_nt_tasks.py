"""The Nucleotide Transformer tasks' reader (issue 32) on local fixtures in the hub's schema: tables and FASTA, the
task table's settings, and the exact errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mdlm_bio.dna.nt_tasks import nt_settings, nt_tasks, read_task_split, select_nt_tasks
from mdlm_bio.dna.tokenizer import decode


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_task_table_has_the_18_tasks_their_metrics_and_the_published_columns():
    tasks = nt_tasks()
    assert len(tasks) == 18 and tasks["splice_sites_all"].metric == "accuracy"
    assert {task.metric for task in tasks.values()} == {"matthews", "f1", "accuracy"}
    assert tasks["enhancers_types"].class_names == ("0", "1", "2") and tasks["H3"].max_length == 500
    results = nt_settings()["results"]
    assert results["H3"]["Caduceus-Ph"] == [0.815, 0.048] and results["H3K4me3"]["NT-v2"] == [0.410, 0.033]
    assert all(set(row) == set(nt_settings()["columns"]) for row in results.values())
    assert [task.name for task in select_nt_tasks(["H4", "H3", "H4"])] == ["H4", "H3"]
    with pytest.raises(ValueError, match="unknown Nucleotide Transformer task.s. \\['H5'\\]; choose from"):
        select_nt_tasks(["H5"])


def test_a_local_table_and_a_labelled_fasta_read_alike(tmp_path):
    rows = [{"sequence": "ACGTN", "label": 1, "name": "a"}, {"sequence": "ttaa", "label": 0, "name": "b"}]
    write_rows(tmp_path / "tables" / "H3" / "train.jsonl", rows)
    (tmp_path / "fasta" / "H3").mkdir(parents=True)
    (tmp_path / "fasta" / "H3" / "train.fna").write_text(">a|1\nACGTN\n>b|0\nttaa\n")
    task = nt_tasks()["H3"]
    for folder in ("tables", "fasta"):
        split = read_task_split(task, "train", tmp_path / folder)
        assert [decode(s) for s in split.sequences] == ["ACGTN", "TTAA"] and split.labels.tolist() == [1, 0]
        assert split.classes == ("0", "1") and split.labels.dtype == np.int64


def test_bad_task_files_are_named(tmp_path):
    task = nt_tasks()["enhancers"]
    write_rows(tmp_path / "enhancers" / "train.jsonl", [{"sequence": "ACGT", "label": 2}])
    write_rows(tmp_path / "enhancers" / "test.jsonl", [{"seq": "ACGT", "label": 0}])
    (tmp_path / "H3").mkdir()
    (tmp_path / "H3" / "train.fa").write_text(">unlabelled\nACGT\n")
    with pytest.raises(ValueError, match="train.jsonl: labels must be integers 0 to 1 for enhancers; found \\[2\\]"):
        read_task_split(task, "train", tmp_path)
    with pytest.raises(ValueError, match="test.jsonl: no \\['sequence'\\] column.s.; the table needs \\['sequence', "
                                         "'label'\\]"):
        read_task_split(task, "test", tmp_path)
    with pytest.raises(ValueError, match="record 'unlabelled' does not end in \\|LABEL"):
        read_task_split(nt_tasks()["H3"], "train", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"no test table in {tmp_path / 'H3'}"):
        read_task_split(nt_tasks()["H3"], "test", tmp_path)


def test_a_hub_copy_that_needs_its_loading_script_says_how_to_make_local_tables(monkeypatch):
    import datasets

    def scripted(*args, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found nucleotide_transformer_downstream_tasks.py")

    monkeypatch.setattr(datasets, "load_dataset", scripted)
    with pytest.raises(ValueError, match="is read by a loading script, which datasets .* does not run; export the tasks "
                                         "once with datasets<4 .*'H3'.*to_json\\('DIR/H3/test.jsonl'\\)"):
        read_task_split(nt_tasks()["H3"], "test", None)

"""`mdlm-bio finetune nucleotide-transformer`: every task fine-tuned at each (learning rate, batch size) of the grid
with each seed, each seed validating on its own fold of a stratified 10-fold split of the training set, and the
official test split scored with the checkpoint best on the task's validation metric; tabled by nt_table.py.

Each finished (task, grid point, seed) writes result.json; a rerun of the same run_dir skips those, so an interrupted
sweep continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from ..dna.benchmarks import LabelledSequences, fold_split
from ..dna.nt_tasks import NtTask, read_task_split, select_nt_tasks
from ..locks import exclusive_on_rank_zero
from ..training.classifier import SequenceClassifier, logged_metric
from ..training.config import ConfigError, check_same_settings, save_config, to_plain
from ..training.data.labelled import LabelledDataModule
from ..training.terminal import quiet_lightning
from .classifier_runs import build_classifier, fit_and_test, pretrained_backbone
from .nt_table import NtResult, write_results

# Settings that change results; a run folder holding results made with other values is refused.
RESULT_DEFINING = ("init_from", "model", "optim", "epochs", "data.folds", "data.rc_augment", "data.max_length")


@dataclass(frozen=True)
class GridPoint:
    lr: float
    batch_size: int

    @property
    def folder(self) -> str:
        return f"lr_{self.lr:g}_bs_{self.batch_size}"


def grid_points(config: DictConfig) -> list[GridPoint]:
    """Every (learning rate, batch size) of `grid`, each checked."""
    rates, sizes = list(config.grid.lr), list(config.grid.batch_size)
    if not rates or any(not isinstance(lr, (int, float)) or lr <= 0 for lr in rates):
        raise ConfigError(f"grid.lr must list positive learning rates, not {rates}")
    if not sizes or any(not isinstance(size, int) or size < 1 for size in sizes):
        raise ConfigError(f"grid.batch_size must list positive integers, not {sizes}")
    return [GridPoint(float(lr), int(size)) for lr in rates for size in sizes]


def finetune_one(config: DictConfig, task: NtTask, point: GridPoint, seed: int, train_all: LabelledSequences,
                 test: LabelledSequences, init: tuple[dict[str, Any], dict[str, Any]] | None,
                 ignore_memory_limit: bool) -> NtResult:
    """Fine-tune on one (task, grid point, seed): validate on the seed's fold, test with the best checkpoint."""
    run_dir = Path(config.run_dir) / task.name / point.folder / f"seed_{seed}"
    fold = (seed - config.seed) % config.data.folds
    L.seed_everything(seed, workers=True, verbose=False)
    train, valid = fold_split(train_all, fold, config.data.folds, config.seed)
    plain = to_plain(config)
    plain = {**plain, "seed": seed, "metric": task.metric, "optim": {**plain["optim"], "lr": point.lr},
             "data": {**plain["data"], "batch_size": point.batch_size}}
    module = build_classifier(plain, init, list(task.class_names), SequenceClassifier)
    max_length = config.data.max_length or task.max_length
    data = LabelledDataModule(train, valid, test, point.batch_size, max_length, seed, config.data.num_workers)
    fitted = fit_and_test(plain, run_dir, module, data, ignore_memory_limit)
    if not config.keep_checkpoints:
        shutil.rmtree(fitted.checkpoint.parent, ignore_errors=True)
    result = NtResult(task.name, task.metric, point.lr, point.batch_size, seed, fold,
                      fitted.test_metrics[logged_metric("test", task.metric)], fitted.best_val_score, len(train),
                      len(valid), len(test), str(fitted.checkpoint) if config.keep_checkpoints else None)
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def finetune_nt(config: DictConfig, tasks: list[str] | None, num_seeds: int | None, trust_checkpoint: bool = False,
                ignore_memory_limit: bool = False) -> tuple[list[NtResult], list[NtTask]]:
    """The sweep over tasks x grid points x seeds; returns every result, finished earlier or now."""
    selected, points = select_nt_tasks(tasks), grid_points(config)
    seeds = range(config.seed, config.seed + (num_seeds or config.seeds))
    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    check_same_settings(config, RESULT_DEFINING)
    init = pretrained_backbone(config.init_from, trust_checkpoint) if config.init_from else None
    results = []
    with exclusive_on_rank_zero(config.run_dir, "run folder"), quiet_lightning(Path(config.run_dir)):
        save_config(config, Path(config.run_dir) / "config.yaml")
        for task in selected:
            splits: tuple[LabelledSequences, LabelledSequences] | None = None
            for point in points:
                for seed in seeds:
                    done = Path(config.run_dir) / task.name / point.folder / f"seed_{seed}" / "result.json"
                    if done.is_file():
                        results.append(NtResult(**json.loads(done.read_text())))
                        continue
                    if splits is None:
                        splits = read_task_split(task, "train", data_dir), read_task_split(task, "test", data_dir)
                    print(f"fine-tuning {task.name}, lr {point.lr:g}, batch {point.batch_size}, seed {seed}", flush=True)
                    results.append(finetune_one(config, task, point, seed, *splits, init, ignore_memory_limit))
    return results, selected


def finetune(config: DictConfig, title: str, tasks: list[str] | None, seeds: int | None, trust_checkpoint: bool,
             ignore_memory_limit: bool) -> None:
    """`mdlm-bio finetune nucleotide-transformer`: the sweep, then results.md/.json beside the published numbers."""
    results, selected = finetune_nt(config, tasks, seeds, trust_checkpoint, ignore_memory_limit)
    markdown = write_results(results, selected, Path(config.run_dir), title)
    print(markdown.read_text())
    print(f"results in {Path(config.run_dir) / 'results.json'} and {markdown}")

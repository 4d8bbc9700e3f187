"""`mdlm-bio finetune glue`: every GLUE task fine-tuned at each learning rate of the grid with each seed, scored on
its validation splits with GLUE's metrics, and tabled beside MDLM's numbers (glue_table.py).

The backbone is a text model's (`--ckpt`: a Hugging Face encoder, hf:NAME or a saved folder, or an mdlm-bio text
run), with its tokenizer. Each finished (task, lr, seed) writes result.json; a rerun of the same run_dir skips
those, so an interrupted sweep continues where it stopped. Fine-tuned weights are not kept: a sweep of the eight
tasks would write hundreds of them, and the scores are what the table needs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from ..classification_metrics import scores
from ..locks import exclusive_on_rank_zero
from ..models import load_model
from ..text.glue import GlueTask, encode, load_split, select_tasks
from ..text.tokenizer import TextTokenizer, load_tokenizer
from ..training.callbacks import StopOnNonFinite
from ..training.config import check_same_settings, save_config, to_plain
from ..training.terminal import quiet_lightning
from ..training.text_classifier import TextClassifier
from ..training.trainer import build_trainer
from .glue_table import GlueResult, write_results

FIELDS = ("input_ids", "attention_mask", "token_type_ids")
# Settings that change results; a run folder holding results made with other values is refused.
RESULT_DEFINING = ("init_from", "model", "optim", "epochs", "epochs_per_task", "data.batch_size", "data.max_length")


def collate(rows: list[dict[str, Any]], pad_id: int, regression: bool) -> dict[str, torch.Tensor]:
    """Right-padded to the longest row of the batch (padding: the tokenizer's id, mask 0, segment 0)."""
    length = max(len(row["input_ids"]) for row in rows)
    batch = {field: torch.full((len(rows), length), pad_id if field == "input_ids" else 0, dtype=torch.long)
             for field in FIELDS}
    for index, row in enumerate(rows):
        for field in FIELDS:
            batch[field][index, : len(row[field])] = torch.tensor(row[field], dtype=torch.long)
    batch["label"] = torch.tensor([row["label"] for row in rows], dtype=torch.float32 if regression else torch.long)
    return batch


def loader(data: Any, task: GlueTask, tokenizer: TextTokenizer, batch_size: int, workers: int,
           shuffle_seed: int | None = None) -> DataLoader:
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle_seed is not None, generator=generator,
                      num_workers=workers, collate_fn=partial(collate, pad_id=tokenizer.pad_id,
                                                              regression=task.is_regression))


def finetune_one(config: DictConfig, task: GlueTask, lr: float, seed: int, backbone: tuple[dict[str, Any], dict[str, Any]],
                 tokenizer: TextTokenizer, train: Any, evaluations: dict[str, Any]) -> GlueResult:
    """Fine-tune on one (task, lr, seed) for the task's epochs, then score every evaluation split."""
    run_dir = Path(config.run_dir) / task.name / f"lr_{lr:g}" / f"seed_{seed}"
    L.seed_everything(seed, workers=True, verbose=False)
    plain = to_plain(config)
    module = TextClassifier({**plain, "optim": {**plain["optim"], "lr": lr}}, backbone[0], task.labels)
    module.backbone.load_state_dict(backbone[1])
    epochs = int(plain["epochs_per_task"].get(task.name, plain["epochs"]))
    trainer = build_trainer(plain["trainer"], run_dir, [StopOnNonFinite()], [CSVLogger(run_dir, name="logs")],
                            config.optim.grad_clip, max_epochs=epochs, enable_checkpointing=False)
    batch, workers = config.data.batch_size, config.data.num_workers
    trainer.fit(module, train_dataloaders=loader(train, task, tokenizer, batch, workers, shuffle_seed=seed))
    results = {}
    for split, data in evaluations.items():
        predicted = torch.cat(trainer.predict(module, loader(data, task, tokenizer, batch, workers))).numpy()
        results[split] = scores(task.metrics, predicted, np.asarray(data["label"]))
    result = GlueResult(task.name, lr, seed, results, len(train))
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def glue_backbone(source: str, trusted: bool) -> tuple[tuple[dict[str, Any], dict[str, Any]], TextTokenizer]:
    """(backbone settings, backbone weights) of a text model and its tokenizer."""
    model = load_model(source, trusted=trusted).require_track("text", "finetune glue")
    if model.tokenizer is None:
        raise ValueError(f"{source} records no tokenizer; GLUE needs the one the model was trained with")
    return (dict(model.spec.backbone), model.network.backbone.state_dict()), load_tokenizer(model.tokenizer)


def finetune_glue(config: DictConfig, tasks: list[str] | None, num_seeds: int | None,
                  trust_checkpoint: bool = False) -> tuple[list[GlueResult], list[GlueTask]]:
    """The sweep over tasks x learning rates x seeds; returns every result, finished earlier or now."""
    if not config.init_from:
        raise ValueError("finetune glue needs --ckpt: a text model (hf:bert-base-uncased, a saved encoder folder, "
                         "or an mdlm-bio text run) whose features are fine-tuned")
    selected = select_tasks(tasks)
    seeds = range(config.seed, config.seed + (num_seeds or config.seeds))
    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    check_same_settings(config, RESULT_DEFINING)
    backbone, tokenizer = glue_backbone(config.init_from, trust_checkpoint)
    results = []
    with exclusive_on_rank_zero(config.run_dir, "run folder"), quiet_lightning(Path(config.run_dir)):
        save_config(config, Path(config.run_dir) / "config.yaml")
        for task in selected:
            encoded: dict[str, Any] | None = None
            for lr in config.grid.lr:
                for seed in seeds:
                    done = Path(config.run_dir) / task.name / f"lr_{lr:g}" / f"seed_{seed}" / "result.json"
                    if done.is_file():
                        results.append(GlueResult(**json.loads(done.read_text())))
                        continue
                    if encoded is None:
                        encoded = {split: encode(load_split(task, split, data_dir), task, tokenizer,
                                                 config.data.max_length) for split in ("train", *task.eval_splits)}
                    print(f"fine-tuning {task.name}, lr {lr:g}, seed {seed}", flush=True)
                    evaluations = {split: encoded[split] for split in task.eval_splits}
                    results.append(finetune_one(config, task, float(lr), seed, backbone, tokenizer, encoded["train"],
                                                evaluations))
    return results, selected


def finetune(config: DictConfig, title: str, tasks: list[str] | None, seeds: int | None, trust_checkpoint: bool) -> None:
    """`mdlm-bio finetune glue`: the sweep, then results.md/.json beside the paper's numbers."""
    results, selected = finetune_glue(config, tasks, seeds, trust_checkpoint)
    markdown = write_results(results, selected, Path(config.run_dir), title)
    print(markdown.read_text())
    print(f"results in {Path(config.run_dir) / 'results.json'} and {markdown}")

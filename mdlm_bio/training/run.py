"""`mdlm-bio train`: build data, model and Lightning trainer from a config; resume if the run has a checkpoint."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from ..dna.tokenizer import BASE_IDS, MASK
from .callbacks import EMA, StopOnNonFinite, TrainingDiverged, ValidationLog
from .checkpoint_io import AtomicCheckpointIO, read_checkpoint
from .checkpoints import LAST_CHECKPOINT
from .config import save_config, to_plain
from .dna_data import build_genome_datamodule
from .labelled_data import build_benchmark_datamodule
from .limits import check_training_memory
from .module import DiffusionLM
from .text_data import build_text_datamodule


class RunMismatchError(ValueError):
    """A run folder whose checkpoint holds a different model than the config asks for."""


def read_checkpoint_config(path: Path) -> dict[str, Any]:
    """The config stored in one of our checkpoints, read without loading its weights into a model (Lightning
    reads and checks the weights when it resumes)."""
    return read_checkpoint(path, required=("mdlm_bio_config",), verify=False, mmap=True)["mdlm_bio_config"]


def check_same_architecture(checkpoint: Path, config: dict[str, Any]) -> None:
    stored = read_checkpoint_config(checkpoint)
    for section in ("model", "objective"):
        if stored[section] != config[section]:
            raise RunMismatchError(
                f"{checkpoint} was trained with {section} {stored[section]} but the config asks for {config[section]}; "
                f"use a new run_dir, or the same {section} settings to resume"
            )


def next_log_version(logs: Path) -> int:
    """One version folder per launch, shared by the CSV and TensorBoard loggers, so a resume never overwrites metrics."""
    suffixes = (path.name.removeprefix("version_") for path in logs.glob("version_*"))
    versions = [int(suffix) for suffix in suffixes if suffix.isdigit()]
    return max(versions, default=-1) + 1


@dataclass
class TrainingData:
    """The data of a run and what the model needs to know about its vocabulary."""

    datamodule: L.LightningDataModule
    mask_id: int
    output_ids: list[int] | None  # the ids the model may emit; None = every id but the mask


def build_training_data(config: DictConfig) -> TrainingData:
    """Genome windows, labelled sequences (class-conditional), or text blocks. Values that come from the data
    are written into the config, so the checkpoint records them: a conditional model's class names
    (`data.classes`) and `num_classes`, a text model's `vocab_size` (the tokenizer's, mask included)."""
    if config.data.dataset == "text":
        datamodule, tokenizer = build_text_datamodule(config.data, config.seed)
        OmegaConf.update(config, "model.overrides.vocab_size", tokenizer.vocab_size)
        return TrainingData(datamodule, tokenizer.mask_id, None)
    if config.data.dataset == "genomic-benchmarks":
        datamodule = build_benchmark_datamodule(config.data, config.seed)
        OmegaConf.update(config, "data.classes", list(datamodule.classes))
        OmegaConf.update(config, "model.overrides.num_classes", len(datamodule.classes))
        return TrainingData(datamodule, MASK, list(BASE_IDS))
    return TrainingData(build_genome_datamodule(config.data, config.seed), MASK, list(BASE_IDS))


def train(config: DictConfig, ignore_memory_limit: bool = False) -> ValidationLog:
    """Fit the model the config describes; returns the validation log (step, bits per base). A step that would
    not fit in the device's free memory is refused before training starts, unless `ignore_memory_limit`."""
    run_dir = Path(config.run_dir)
    fresh = not run_dir.exists()
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = build_training_data(config)
    plain = to_plain(config)
    last = run_dir / LAST_CHECKPOINT
    resume = last if last.is_file() else None
    if resume is not None:
        check_same_architecture(resume, plain)
        print(f"resuming from {resume}", flush=True)
    module = DiffusionLM(plain, mask_id=data.mask_id, output_ids=data.output_ids)
    validation_log = ValidationLog()
    version = next_log_version(run_dir / "logs")
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step={step}",
            auto_insert_metric_name=False,
            every_n_train_steps=config.checkpoint_every_n_steps,
            save_top_k=1,
            save_last=True,
        ),
        LearningRateMonitor(logging_interval="step"),
        StopOnNonFinite(),
        validation_log,
    ]
    if config.optim.ema is not None:
        callbacks.append(EMA(config.optim.ema))
    trainer = L.Trainer(
        **plain["trainer"],
        default_root_dir=run_dir,
        callbacks=callbacks,
        logger=[CSVLogger(run_dir, name="logs", version=version), TensorBoardLogger(run_dir, name="logs", version=version)],
        plugins=[AtomicCheckpointIO()],
        gradient_clip_val=config.optim.grad_clip,
        enable_model_summary=False,
    )
    if not ignore_memory_limit:
        generator = torch.Generator(trainer.strategy.root_device).manual_seed(0)
        check_training_memory(module, trainer, config.data.batch_size, config.data.window,
                              lambda probe: module.objective(probe, None, generator).loss,
                              token=int(module.output_allowed.nonzero()[0]), extra_copies=int(config.optim.ema is not None),
                              smaller="lower data.batch_size or data.window")
    save_config(config, run_dir / "config.yaml")  # once everything that checks the settings has accepted them
    try:
        with warnings.catch_warnings():
            # The training sampler resumes from the restored batch count (WindowStream), so this warning does not apply.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            trainer.fit(module, datamodule=data.datamodule, ckpt_path=resume)
    except BaseException as error:
        if fresh and trainer.global_step == 0:  # a failed start leaves no run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(error, TrainingDiverged):
            kept = f"{last} holds the last good weights" if last.is_file() else "no checkpoint was written before it"
            raise TrainingDiverged(f"{error}; nothing of that step was saved and {kept}. Train again in a new run_dir "
                                   f"with a lower optim.lr (now {config.optim.lr:g})") from None
        raise
    return validation_log

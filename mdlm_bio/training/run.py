"""`mdlm-bio train`: data, model and Lightning trainer from a run config; resume if the run has a checkpoint."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig

from ..diffusion.process import make_generator
from ..errors import CheckpointError, first_line
from ..locks import exclusive_on_rank_zero
from ..models import load_model
from ..models.checkpoint_format import model_spec_of, read_checkpoint
from ..models.spec import ModelSpec
from ..sources import LAST_CHECKPOINT
from .callbacks import EMA, StopOnNonFinite, TrainingDiverged, ValidationLog
from .clip_search import ClippedScheduleSearch
from .config import save_config, to_plain
from .data.builder import build_training_data
from .limits import check_training_memory
from .module import DiffusionLM
from .settings import RunSettings, TrainingSettings, Vocabulary, resolve_backbone, run_settings
from .terminal import quiet_lightning
from .trainer import build_trainer


class RunMismatchError(ValueError):
    """A run folder whose checkpoint holds a different model than the config asks for."""


def check_same_model(checkpoint: Path, spec: ModelSpec) -> None:
    """Resuming continues the same model: its resolved backbone and objective must match the checkpoint's."""
    stored = model_spec_of(read_checkpoint(checkpoint, verify=False, mmap=True), checkpoint)
    trained = {**{f"backbone {k}": v for k, v in stored.backbone.items()}, **_named("objective", stored.objective)}
    asked = {**{f"backbone {k}": v for k, v in spec.backbone.items()}, **_named("objective", spec.objective)}
    differences = [f"{key}: {trained.get(key)} in the checkpoint, {asked.get(key)} asked"
                   for key in sorted(trained.keys() | asked.keys()) if trained.get(key) != asked.get(key)]
    if differences:
        raise RunMismatchError(f"{checkpoint} was trained with a different model ({'; '.join(differences)}); "
                               f"use a new run_dir, or the same model settings to resume")


def _named(section: str, settings: object) -> dict[str, object]:
    return {f"{section} {key}": value for key, value in dataclasses.asdict(settings).items()}


def next_log_version(logs: Path) -> int:
    """One version folder per launch, shared by the CSV and TensorBoard loggers, so a resume never overwrites metrics."""
    suffixes = (path.name.removeprefix("version_") for path in logs.glob("version_*"))
    versions = [int(suffix) for suffix in suffixes if suffix.isdigit()]
    return max(versions, default=-1) + 1


def model_spec(settings: RunSettings, vocabulary: Vocabulary, track: str, classes: tuple[str, ...] = ()) -> ModelSpec:
    """The model a run trains, fully resolved: the backbone preset with the run's overrides and what the data
    fixes (vocabulary size, complement map, number of classes), the objective, and the sampling facts."""
    overrides = [f"{key}={value}" for key, value in settings.model.overrides.items()]
    backbone = resolve_backbone(settings.model.preset, overrides, vocabulary, classes)
    return ModelSpec(backbone, settings.objective, vocabulary.mask_id, settings.data.window, track,
                     vocabulary.output_ids, vocabulary.tokenizer, classes)


def initialise_backbone(module: DiffusionLM, source: str) -> None:
    """Start from another model's backbone weights (an MDLM for block diffusion, as BD3-LM does): the same
    architecture, any objective."""
    weights = load_model(source).network.backbone.state_dict()
    try:
        module.backbone.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"init_from={source}: its backbone does not fit this run's ({first_line(error)}); "
                              f"use the same model preset and overrides") from None
    print(f"initialised the backbone from {source}", flush=True)


def training_settings(settings: RunSettings) -> TrainingSettings:
    return TrainingSettings(settings.optim, settings.seed, settings.trainer["max_steps"], settings.data.label_dropout)


def train(config: DictConfig, ignore_memory_limit: bool = False) -> ValidationLog:
    """Fit the model the config describes; returns the validation log (step, bits per base). A step that would
    not fit in the device's free memory is refused before training starts, unless `ignore_memory_limit`. The run
    folder is held for the life of the process, so a second trainer on it is refused instead of resuming from the
    same checkpoint and overwriting this one's (locks.py); a failed start leaves no run folder behind."""
    run_dir = Path(config.run_dir)
    fresh = not run_dir.exists()
    with exclusive_on_rank_zero(run_dir, "run folder"):
        try:
            with quiet_lightning(run_dir):
                return _train(config, run_dir, fresh, ignore_memory_limit)
        except BaseException:
            if fresh and not (run_dir / "config.yaml").is_file():  # it failed before the config was accepted
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _train(config: DictConfig, run_dir: Path, fresh: bool, ignore_memory_limit: bool) -> ValidationLog:
    plain = to_plain(config)
    settings = run_settings(plain)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    data = build_training_data(settings.data, settings.seed)
    spec = model_spec(settings, data.vocabulary, data.track, data.classes)
    last = run_dir / LAST_CHECKPOINT
    resume = last if last.is_file() else None
    if resume is not None:
        check_same_model(resume, spec)
        print(f"resuming from {resume}", flush=True)
    module = DiffusionLM(spec, training_settings(settings), plain)
    if settings.init_from and resume is None:
        initialise_backbone(module, settings.init_from)
    validation_log = ValidationLog()
    version = next_log_version(run_dir / "logs")
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step={step}",
            auto_insert_metric_name=False,
            every_n_train_steps=settings.checkpoint_every_n_steps,
            save_top_k=1,
            save_last=True,
        ),
        LearningRateMonitor(logging_interval="step"),
        StopOnNonFinite(),
        validation_log,
    ]
    if settings.optim.ema is not None:
        callbacks.append(EMA(settings.optim.ema))
    if settings.objective.clip_search:
        callbacks.append(ClippedScheduleSearch(settings.objective.clip_search))
    loggers = [CSVLogger(run_dir, name="logs", version=version), TensorBoardLogger(run_dir, name="logs", version=version)]
    trainer = build_trainer(plain["trainer"], run_dir, callbacks, loggers, settings.optim.grad_clip)
    if not ignore_memory_limit:
        generator = make_generator(0, trainer.strategy.root_device)
        check_training_memory(module, trainer, settings.data.batch_size, settings.data.window,
                              lambda probe: module.objective(probe, None, generator).loss,
                              token=int(module.output_allowed.nonzero()[0]), extra_copies=int(settings.optim.ema is not None),
                              smaller="lower data.batch_size or data.window")
    save_config(config, run_dir / "config.yaml")  # once everything that checks the settings has accepted them
    try:
        with warnings.catch_warnings():
            # The training sampler resumes from the restored batch count (WindowStream), so this warning does not apply.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            trainer.fit(module, datamodule=data.datamodule, ckpt_path=resume)
    except BaseException as error:
        if fresh and trainer.global_step == 0:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(error, TrainingDiverged):
            kept = f"{last} holds the last good weights" if last.is_file() else "no checkpoint was written before it"
            raise TrainingDiverged(f"{error}; nothing of that step was saved and {kept}. Train again in a new run_dir "
                                   f"with a lower optim.lr (now {settings.optim.lr:g})") from None
        raise
    return validation_log

"""Run configs: YAML presets in configs/train and configs/finetune, `key=value` overrides, validation, and saving.

A preset may name another with `inherit: NAME` and list only what differs.
Keys are closed (a typo is an error naming the key), except `model.overrides`
(backbone options) and `trainer` (any lightning.Trainer argument).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from ..backbones import preset_names
from ..backbones.registry import TYPE_NAMES, fits_kind, kind_of

OPEN_SECTIONS = ("model.overrides", "trainer", "epochs_per_task")  # mappings whose keys a config may add
CHOICES = {
    "train": {
        "data.dataset": ("bundled", "hg38", "fasta", "genomic-benchmarks", "text"),
        "objective.kind": ("mdlm", "ar", "bd3", "mlm", "udlm"),
        "optim.decay": ("cosine", "constant", "linear"),
    },
    "finetune": {"optim.decay": ("cosine", "constant", "linear"), "model.conjoin": ("auto", True, False)},
    "finetune-glue": {"optim.decay": ("cosine", "constant", "linear"), "model.pooling": ("auto", "first", "mean")},
    "finetune-nucleotide-transformer": {"optim.decay": ("cosine", "constant", "linear"),
                                        "model.conjoin": ("auto", True, False)},
}
POSITIVE_INTEGERS = {
    "train": ("data.window", "data.batch_size", "trainer.max_steps", "checkpoint_every_n_steps"),
    "finetune": ("data.batch_size", "data.max_length", "epochs"),
    "finetune-glue": ("data.batch_size", "data.max_length", "epochs", "seeds"),
    "finetune-nucleotide-transformer": ("epochs", "seeds", "data.folds"),
}
KIND_NAMES = {"train": "training", "finetune": "fine-tuning"}
# Keys a labelled-sequence (genomic-benchmarks) training config needs besides the genome ones.
LABELLED_DATA_KEYS = ("benchmark", "download", "mirror", "valid_fraction", "label_dropout")
# ... and a text one.
TEXT_DATA_KEYS = ("corpus", "tokenizer", "wrap", "cache_dir", "num_proc", "train_files", "valid_files")


# Keys whose preset value is null, so an override's type cannot be read off the preset.
NULLABLE_TYPES: dict[str, type] = {
    "objective.discrete_steps": int, "optim.ema": float, "data.windows_per_epoch": int, "data.num_proc": int,
    "data.fasta": str, "data.tokenizer": str, "data.data_dir": str, "data.mirror": str, "init_from": str,
    "objective.block_size": int, "objective.clip": list, "objective.clip_search": list, "objective.mask_rate": float,
    "data.max_length": int,
}


class ConfigError(ValueError):
    """A config that names an unknown key or an invalid value."""


def check_value_type(key: str, before: Any, after: Any) -> None:
    """An override must keep the type of the value it replaces (an integer may stand for a float, and any value
    for a string); null is always allowed. Lightning's and the backbone's options are checked by their owners."""
    if after is None or key.startswith(tuple(f"{section}." for section in OPEN_SECTIONS)):
        return
    expected = NULLABLE_TYPES.get(key) if before is None else kind_of(before)
    if expected is None or fits_kind(after, expected):
        return
    raise ConfigError(f"{key} must be {TYPE_NAMES[expected]}, not {after!r}")


def preset_names_of(kind: str) -> list[str]:
    """Preset names in configs/<kind> (train, finetune)."""
    folder = resources.files("mdlm_bio.configs") / kind
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _read(name_or_path: str, kind: str) -> DictConfig:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            config = OmegaConf.load(path)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where} ({getattr(error, 'problem', None) or error})") from None
        if not isinstance(config, DictConfig):
            raise ConfigError(f"{path}: a config must be a mapping of keys to values, not a {type(config).__name__}")
    elif name_or_path in preset_names_of(kind):
        config = OmegaConf.create((resources.files("mdlm_bio.configs") / kind / f"{name_or_path}.yaml").read_text())
    else:
        raise ConfigError(
            f"unknown {KIND_NAMES[kind]} preset {name_or_path!r}; choose from {preset_names_of(kind)} or give a .yaml file"
        )
    parent = config.pop("inherit", None)
    return OmegaConf.merge(_read(parent, kind), config) if parent else config


def load_config(name_or_path: str, overrides: Sequence[str] = (), kind: str = "train") -> DictConfig:
    """The resolved config of a preset in configs/<kind> (or a YAML file) with dotted `key=value` overrides."""
    config = _read(name_or_path, kind)
    OmegaConf.set_struct(config, True)
    for section in OPEN_SECTIONS:
        node = OmegaConf.select(config, section)
        if node is not None:  # a section other kinds of config have
            OmegaConf.set_struct(node, False)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key=value, e.g. trainer.max_steps=500")
        key = override.split("=", 1)[0]
        before = OmegaConf.select(config, key, default=None, throw_on_missing=False)
        try:
            config.merge_with_dotlist([override])
        except (ConfigKeyError, ConfigAttributeError):
            raise ConfigError(f"unknown config key {key!r} in override {override!r}") from None
        except OmegaConfBaseException as error:
            raise ConfigError(f"bad override {override!r}: {error.msg}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"bad override {override!r}: not a valid value ({getattr(error, 'problem', error)})") from None
        check_value_type(key, before, OmegaConf.select(config, key))
    validate(config, kind)
    return config


def check_trainer_keys(trainer: DictConfig) -> None:
    """Everything under trainer: goes to lightning.Trainer, so a typo would surface there as a TypeError."""
    known = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(trainer) - known)
    if unknown:
        suggestions = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
        hints = ", ".join(f"trainer.{key}" + (f" (did you mean trainer.{match[0]}?)" if match else "")
                          for key, match in suggestions.items())
        raise ConfigError(f"unknown lightning.Trainer option {hints}")


def validate(config: DictConfig, kind: str = "train") -> None:
    check_trainer_keys(config.trainer)
    if kind == "finetune" and f"finetune-{config.get('benchmark')}" in CHOICES:  # a preset may name its benchmark
        kind = f"finetune-{config.benchmark}"
    for key, allowed in CHOICES[kind].items():
        value = OmegaConf.select(config, key)
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {list(allowed)}, not {value!r}")
    if config.model.preset not in preset_names():
        raise ConfigError(f"model.preset {config.model.preset!r} is not a backbone preset; choose from {preset_names()}")
    for key in POSITIVE_INTEGERS[kind]:
        value = OmegaConf.select(config, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, not {value!r}")
    if kind != "train":
        return
    if config.optim.ema is not None and str(config.trainer.get("strategy", "")).startswith("fsdp"):
        raise ConfigError(
            f"optim.ema={config.optim.ema} keeps a full copy of the weights, and trainer.strategy={config.trainer.strategy} "
            "shards them (Lightning's WeightAveraging does not support sharded models): set optim.ema=null, "
            "or use trainer.strategy=ddp"
        )
    _validate_block_diffusion(config.objective, config.data.window)
    _validate_masked_lm(config.objective)
    if config.data.dataset == "fasta" and not config.data.fasta:
        raise ConfigError("data.dataset=fasta needs data.fasta=PATH")
    required = {"genomic-benchmarks": (LABELLED_DATA_KEYS, "conditional"), "text": (TEXT_DATA_KEYS, "owt")}
    if config.data.dataset in required:
        keys, example = required[config.data.dataset]
        missing = [key for key in keys if key not in config.data]
        if missing:
            raise ConfigError(f"data.dataset={config.data.dataset} needs data keys {missing} (as in the {example} preset)")
    if config.data.dataset == "text" and not config.data.tokenizer:
        raise ConfigError("data.tokenizer must name a tokenizer: a hub name (gpt2), a folder or a tokenizer.json")
    if config.data.dataset == "genomic-benchmarks":
        if not 0.0 <= config.data.label_dropout < 1.0:
            raise ConfigError(f"data.label_dropout must lie in [0, 1), not {config.data.label_dropout!r}")


def _validate_block_diffusion(objective: DictConfig, window: int) -> None:
    """Block diffusion needs a block size that divides the window; only it takes a block size or a clip."""
    block, clip, search = objective.get("block_size"), objective.get("clip"), objective.get("clip_search")
    if objective.kind != "bd3":
        if block is not None or clip is not None or search is not None:
            raise ConfigError(f"objective.block_size, clip and clip_search are block diffusion's (objective.kind=bd3), "
                              f"not {objective.kind}'s")
        return
    if not isinstance(block, int) or block < 1 or window % block:
        raise ConfigError(f"objective.kind=bd3 needs objective.block_size, a positive integer that divides "
                          f"data.window={window}; got {block!r}")
    if objective.discrete_steps is not None:
        raise ConfigError("objective.discrete_steps: block diffusion trains and reports its NELBO in continuous time")
    if clip is not None and (len(clip) != 2 or not 0.0 <= clip[0] < clip[1] <= 1.0):
        raise ConfigError(f"objective.clip must be [beta, omega] with 0 <= beta < omega <= 1; got {list(clip)}")
    if search is not None and not all(0.0 < width <= 1.0 for width in search):
        raise ConfigError(f"objective.clip_search must list interval widths in (0, 1]; got {list(search)}")


def _validate_masked_lm(objective: DictConfig) -> None:
    """Masked language modelling needs its rate, and only it takes one."""
    rate = objective.get("mask_rate")
    if objective.kind != "mlm":
        if rate is not None:
            raise ConfigError(f"objective.mask_rate is masked language modelling's (objective.kind=mlm), not "
                              f"{objective.kind}'s")
        return
    if not isinstance(rate, (int, float)) or not 0.0 < rate < 1.0:
        raise ConfigError(f"objective.kind=mlm needs objective.mask_rate in (0, 1), e.g. 0.15 as BERT; got {rate!r}")


def check_same_settings(config: DictConfig, keys: tuple[str, ...]) -> None:
    """Refuse to mix results of different settings (`keys`) in one run folder (the skip-finished-seeds logic
    would)."""
    saved = Path(config.run_dir) / "config.yaml"
    if not saved.is_file():
        return
    before = OmegaConf.load(saved)
    for key in keys:
        old, new = OmegaConf.select(before, key), OmegaConf.select(config, key)
        if old != new:
            raise ValueError(f"{config.run_dir} holds results made with {key}={old}, not {new}; use another run_dir")


def save_config(config: DictConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(config, resolve=True))


def to_plain(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]

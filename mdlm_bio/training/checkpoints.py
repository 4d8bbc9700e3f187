"""Load a trained run (or one checkpoint file) back into a model ready for sampling and scoring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..backbones.pretrained import CheckpointError, first_line
from ..dna.tokenizer import VOCAB_SIZE
from .checkpoint_io import read_checkpoint
from .module import DiffusionLM, backbone_config

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that is not ours, or holds a model this command cannot use."""


@dataclass
class TrainedModel:
    module: DiffusionLM
    config: dict[str, Any]
    path: Path

    @property
    def context(self) -> int:
        """The window length the model was trained on."""
        return int(self.config["data"]["window"])

    @property
    def classes(self) -> list[str]:
        """Class names of a class-conditional model (empty for an unconditional one)."""
        return list(self.config["data"].get("classes") or [])

    def class_index(self, name: str) -> int:
        """A class given by name (or by its index, as a string) -> its label index."""
        if not self.classes:
            raise ValueError(f"{self.path} holds an unconditional model; --class needs one trained on labelled data "
                             f"(mdlm-bio train conditional)")
        if name in self.classes:
            return self.classes.index(name)
        if name.isdigit() and int(name) < len(self.classes):
            return int(name)
        raise ValueError(f"unknown class {name!r}; this model knows {self.classes}")

    @property
    def description(self) -> str:
        return f"{self.config['model']['preset']} {self.config['objective']['kind']} ({self.path})"


TRAINING_KEYS = ("mdlm_bio_config", "mdlm_bio_mask_id", "state_dict")


def checkpoint_path(spec: str | Path) -> Path:
    path = Path(spec)
    if path.is_dir():
        path = path / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `mdlm-bio train demo` or pass a .ckpt file")
    return path


def is_mdlm_bio_checkpoint(path: Path) -> bool:
    """Ours hold only tensors and plain data with a stored config; anything else (a published checkpoint,
    a Lightning file that pickles objects) is left to the importers, which say what they need."""
    if path.suffix != ".ckpt" or not path.is_file():
        return False
    try:
        read_checkpoint(path, required=("mdlm_bio_config",), verify=False, mmap=True)
    except CheckpointError:
        return False
    return True


def load_trained(spec: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """A run folder (its checkpoints/last.ckpt) or a .ckpt file -> the model in eval mode (EMA weights if used)."""
    path = checkpoint_path(spec)
    payload = read_checkpoint(path, required=TRAINING_KEYS)
    config = payload["mdlm_bio_config"]
    try:
        module = DiffusionLM(config, mask_id=payload["mdlm_bio_mask_id"], output_ids=payload.get("mdlm_bio_output_ids"))
        module.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointMismatchError(f"{path}: its weights or stored config do not make a model ({first_line(error)})") from None
    return TrainedModel(module.to(device).eval(), config, path)


def require_dna_diffusion(model: TrainedModel) -> None:
    """DNA sampling, infilling and scoring need a masked-diffusion model over the DNA vocabulary."""
    vocab = backbone_config(model.config["model"])["vocab_size"]
    if vocab != VOCAB_SIZE:
        raise CheckpointMismatchError(
            f"{model.path} holds a {model.config['model']['preset']} model over {vocab} tokens; "
            f"DNA commands need a DNA model ({VOCAB_SIZE} tokens)"
        )
    if model.config["objective"]["kind"] != "mdlm":
        raise CheckpointMismatchError(
            f"{model.path} holds an autoregressive model; sample, infill and score need a masked-diffusion (mdlm) model"
        )

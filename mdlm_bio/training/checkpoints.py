"""Load a trained run (or one checkpoint file) back into a model ready for sampling and scoring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..dna.tokenizer import VOCAB_SIZE
from .module import DiffusionLM, backbone_config

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


class CheckpointMismatchError(ValueError):
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
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(payload, dict) and "mdlm_bio_config" in payload


def load_trained(spec: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """A run folder (its checkpoints/last.ckpt) or a .ckpt file -> the model in eval mode (EMA weights if used)."""
    path = checkpoint_path(spec)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a torn or foreign file: say which, not a pickle traceback
        raise CheckpointMismatchError(f"{path}: cannot be read as a checkpoint ({type(error).__name__})") from None
    if "mdlm_bio_config" not in payload:
        raise CheckpointMismatchError(f"{path} is not an mdlm-bio training checkpoint (no stored config)")
    config = payload["mdlm_bio_config"]
    module = DiffusionLM(config, mask_id=payload["mdlm_bio_mask_id"], output_ids=payload.get("mdlm_bio_output_ids"))
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointMismatchError(f"{path}: weights do not fit the stored model config ({first})") from None
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

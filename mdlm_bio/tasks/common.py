"""What several tasks share: argument checks, loading a DNA model (ours or a published Caduceus), and the memory
check before long work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..backbones.pretrained import HF_PREFIX, caduceus_config_from_state, import_caduceus, read_state_dict, resolve_checkpoint
from ..dna.tokenizer import BASE_IDS, COMPLEMENT_MAP, MASK
from ..memory import check_fits
from ..training.checkpoints import TrainedModel, checkpoint_path, is_mdlm_bio_checkpoint, load_trained, require_dna_model
from ..training.config import load_config, to_plain
from ..training.module import DiffusionLM
from ..training.settings import ModelSpec, run_settings


def require_positive(name: str, value: int | None) -> None:
    """Counts given on the command line (--num, --steps, ...) must be positive; None means 'the default'."""
    if value is not None and value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, not {value}")


def load_dna_model(ckpt: str, device: str, command: str, diffusion_only: str | None = None) -> TrainedModel:
    """A DNA model from a run folder or checkpoint, ready for `command`; `diffusion_only` (why) refuses an
    autoregressive one."""
    model = load_trained(ckpt, device)
    require_dna_model(model, command, diffusion_only)
    return model


def check_memory(module: DiffusionLM, batch: int, length: int, outputs: int, device: str, request: str, smaller: str,
                 ignore_memory_limit: bool) -> None:
    """Refuse, before the long part, work whose estimated memory exceeds what the device has free."""
    if not ignore_memory_limit:
        check_fits(lambda: module.inference_memory(batch, length, outputs), device, request, smaller,
                   "--ignore-memory-limit")


def pretrained_backbone(spec: str | Path, trusted: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone settings, backbone weights) from an mdlm-bio run folder or .ckpt (EMA weights where trained
    with EMA), or from a published Caduceus checkpoint (a local file or hf:kuleshov-group/caduceus-...)."""
    if is_ours(spec):
        trained = load_trained(spec)
        return dict(trained.spec.backbone), trained.module.backbone.state_dict()
    state = read_state_dict(resolve_checkpoint(spec), trusted=trusted)
    return (caduceus_config_from_state(state, str(spec), COMPLEMENT_MAP),
            import_caduceus(state, str(spec), COMPLEMENT_MAP).state_dict())


def is_ours(spec: str | Path) -> bool:
    """An mdlm-bio run folder or training checkpoint (anything else is read as a published checkpoint)."""
    return not str(spec).startswith(HF_PREFIX) and is_mdlm_bio_checkpoint(checkpoint_path(spec))


def published_context(spec: str | Path, default: int) -> int:
    """The window a published Caduceus was trained on, from its name (caduceus-ps_seqlen-131k_... is 131,072);
    `default` for a file whose name does not say."""
    found = re.search(r"seqlen-(\d+)(k?)", str(spec))
    return int(found.group(1)) * (1024 if found.group(2) else 1) if found else default


def published_caduceus(spec: str | Path, device: str, trusted: bool = False) -> TrainedModel:
    """A published Caduceus (trained with masked language modelling) behind the DNA track's interface: the
    hg38 preset's MDLM objective (and window, when the name gives none), the DNA mask id, and a distribution over
    the four bases."""
    backbone, weights = pretrained_backbone(spec, trusted)
    hg38 = run_settings(to_plain(load_config("hg38")))
    module = DiffusionLM(ModelSpec(backbone=backbone, objective=hg38.objective, mask_id=MASK,
                                   context=published_context(spec, hg38.data.window), track="dna",
                                   output_ids=BASE_IDS))
    module.backbone.load_state_dict(weights)
    return TrainedModel(module.to(device).eval(), Path(str(spec)))

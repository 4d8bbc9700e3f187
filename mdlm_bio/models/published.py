"""Published checkpoints as models: which layout a state dict is in, and what its weights do not say.

The importers (backbones/pretrained.py) map the weights and read the architecture off their shapes. The rest, the
objective each model is used with, its context, vocabulary and tokenizer, is stated here, once per checkpoint
family, rather than borrowed from a training preset.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..backbones.pretrained import caduceus_config_from_state, dit_config_from_mdlm, import_caduceus, import_mdlm_dit
from ..dna.tokenizer import BASE_IDS, COMPLEMENT_MAP, MASK
from ..errors import CheckpointError
from .spec import BLOCK_DIFFUSION, ModelSpec, ObjectiveSettings

# MDLM's own objective, with which both families are used here: the log-linear schedule (eps 1e-3), times drawn
# antithetically in [1e-3, 1], the continuous-time NELBO (Sahoo et al. 2024; kuleshov-group/mdlm configs).
MDLM_OBJECTIVE = ObjectiveSettings(kind="mdlm", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True)

# kuleshov-group/mdlm-owt: MDLM's small DiT, trained on OpenWebText in blocks of 1024 GPT-2 tokens with [MASK]
# appended as id 50257, without time conditioning, dropout 0.1.
MDLM_OWT_CONTEXT = 1024
MDLM_OWT_TOKENIZER = "gpt2"
MDLM_OWT_OPTIONS = {"dropout": 0.1, "causal": False, "time_conditioning": False}

# kuleshov-group/bd3lm-owt-block_size{4,8,16} (Arriola et al. 2025): the same DiT and data as MDLM-OWT, fine-tuned
# as block diffusion; its state dict adds the clipped schedule's bounds, and its block size is in its name and
# config.json, not in its weights.
BD3LM_CLIP_KEYS = ("sampling_eps_min", "sampling_eps_max")

# kuleshov-group/caduceus-{ps,ph}_seqlen-{1k,131k}_...: trained on hg38 with masked language modelling (15% of
# positions), on windows of the length its name gives (1,024 where a file's name does not say).
CADUCEUS_DEFAULT_CONTEXT = 1024
CADUCEUS_CAVEAT = ("note: {source} is a published Caduceus, trained with masked language modelling (15% of positions "
                   "masked), not as a diffusion model: its masked marginals (SNV scores) are the usual MLM ones, but "
                   "its NELBOs (score, MNV and indel scores) bound no likelihood it was trained for and its samples "
                   "come from a model used outside its training objective; compare those between inputs, not with "
                   "another model's")


@dataclass(frozen=True)
class PublishedModel:
    """A published checkpoint, ready to load: its spec, the backbone's weights, a name and a caveat (if any)."""

    spec: ModelSpec
    backbone_weights: dict[str, Tensor]
    name: str
    caveat: str | None = None


def published_model(state: Mapping[str, Tensor], source: str, path: Path) -> PublishedModel:
    """The model a published state dict holds, by its key layout: MDLM's DiT, BD3-LM's (MDLM's keys and the
    clipped schedule's two scalars) or Caduceus. `path`: the file it came from (for a config.json beside it)."""
    if any(key.startswith(("caduceus.", "lm_head.")) for key in state):
        return _caduceus(state, source)
    if all(key in state for key in BD3LM_CLIP_KEYS):
        return _bd3lm_owt(state, source, path)
    if any(key.startswith("backbone.") for key in state):
        return _mdlm_owt(state, source)
    raise CheckpointError(f"{source}: neither an mdlm-bio checkpoint (it has no mdlm_bio_model entry) nor a published "
                          f"MDLM or Caduceus state dict (no backbone.* or caduceus.* keys)")


def _mdlm_owt(state: Mapping[str, Tensor], source: str) -> PublishedModel:
    architecture = dit_config_from_mdlm(state, source)
    spec = ModelSpec(backbone={**architecture, **MDLM_OWT_OPTIONS}, objective=MDLM_OBJECTIVE,
                     mask_id=architecture["vocab_size"] - 1, context=MDLM_OWT_CONTEXT, track="text",
                     tokenizer=MDLM_OWT_TOKENIZER)
    return PublishedModel(spec, import_mdlm_dit(state, source).state_dict(), "MDLM DiT")


def _bd3lm_owt(state: Mapping[str, Tensor], source: str, path: Path) -> PublishedModel:
    weights = {key: tensor for key, tensor in state.items() if key not in BD3LM_CLIP_KEYS}
    architecture = dit_config_from_mdlm(weights, source)
    block_size = bd3lm_block_size(source, path)
    clip = (float(state["sampling_eps_min"]), float(state["sampling_eps_max"]))
    objective = dataclasses.replace(MDLM_OBJECTIVE, kind=BLOCK_DIFFUSION, block_size=block_size, clip=clip)
    spec = ModelSpec(backbone={**architecture, **MDLM_OWT_OPTIONS}, objective=objective,
                     mask_id=architecture["vocab_size"] - 1, context=MDLM_OWT_CONTEXT, track="text",
                     tokenizer=MDLM_OWT_TOKENIZER)
    return PublishedModel(spec, import_mdlm_dit(weights, source).state_dict(), f"BD3-LM DiT, blocks of {block_size}")


def bd3lm_block_size(source: str, path: Path) -> int:
    """A BD3-LM checkpoint's block size: from its name (bd3lm-owt-block_size4), or its config.json beside it."""
    found = re.search(r"block_size(\d+)", source)
    if found:
        return int(found.group(1))
    config = path.parent / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["block_size"])
    raise CheckpointError(f"{source}: a BD3-LM checkpoint, but its block size is neither in its name "
                          f"(...block_size4...) nor in a config.json beside it")


def _caduceus(state: Mapping[str, Tensor], source: str) -> PublishedModel:
    backbone: dict[str, Any] = caduceus_config_from_state(state, source, COMPLEMENT_MAP)
    spec = ModelSpec(backbone=backbone, objective=MDLM_OBJECTIVE, mask_id=MASK, context=caduceus_context(source),
                     track="dna", output_ids=BASE_IDS)
    weights = import_caduceus(state, source, COMPLEMENT_MAP).state_dict()
    return PublishedModel(spec, weights, "Caduceus-PS" if backbone["rcps"] else "Caduceus-Ph",
                          CADUCEUS_CAVEAT.format(source=source))


def caduceus_context(source: str) -> int:
    """The window a published Caduceus was trained on, from its name: `seqlen-131k` is 2^17 = 131,072 and
    `seqlen-1k` 1,024 (a thousands figure is the power of two it rounds), `seqlen-4096` 4,096."""
    found = re.search(r"seqlen-(\d+)(k?)", Path(source).name)
    if not found:
        return CADUCEUS_DEFAULT_CONTEXT
    return 2 ** round(math.log2(int(found.group(1)) * 1000)) if found.group(2) else int(found.group(1))

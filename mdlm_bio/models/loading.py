"""`load_model`: a run folder, one of our checkpoints, or a published one (a file or hf:owner/repo) -> a model handle.

It decides once whose the source is and reads the file once: a checkpoint that describes its model (ours) is
verified and rebuilt from its ModelSpec; weights saved with a masked LM's config.json beside them are read by
transformers (hf_masked_lm.py); any other state dict goes to the published importers (published.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..backbones.pretrained import read_payload, resolve_checkpoint
from ..errors import CheckpointError, first_line
from ..sources import is_hub_name, local_checkpoint
from .autoregressive_model import AutoregressiveModel
from .block_diffusion_model import BlockDiffusionModel
from .checkpoint_format import SETTINGS_PREFIX, check_weights, model_spec_of
from .diffusion_model import DiffusionModel, MaskedLanguageModel
from .handle import Model
from .hf_masked_lm import hf_masked_lm, masked_lm_config
from .network import LanguageModel
from .published import published_model
from .spec import ModelSpec
from .uniform_diffusion_model import UniformDiffusionModel

KINDS: dict[str, type[Model]] = {"mdlm": DiffusionModel, "ar": AutoregressiveModel, "bd3": BlockDiffusionModel,
                                 "mlm": MaskedLanguageModel, "udlm": UniformDiffusionModel}


def locate(source: str | Path) -> Path:
    """The file a source names: a run folder's checkpoints/last.ckpt, a file, or a hub download (hf:...)."""
    return resolve_checkpoint(source) if is_hub_name(source) else local_checkpoint(source)


def load_model(source: str | Path, device: torch.device | str = "cpu", *, trusted: bool = False) -> Model:
    """The model `source` holds, in eval mode on `device` (EMA weights where trained with EMA). `trusted`
    unpickles a published checkpoint that holds Python objects (a Lightning .ckpt), which can run code."""
    path = locate(source)
    masked_lm = masked_lm_config(path, str(source))
    payload = {} if masked_lm else read_payload(path, trusted, kind="an mdlm-bio or published checkpoint")
    if is_ours(payload):
        check_weights(payload, path)
        network = _network(model_spec_of(payload, path), payload.get("state_dict"), path)
        name = (payload.get("mdlm_bio_config") or {}).get("model", {}).get("preset", network.spec.backbone["architecture"])
        model = KINDS[network.spec.objective.kind](network, str(path), name, payload.get("mdlm_bio_config"))
    else:
        published = (hf_masked_lm(str(source), masked_lm.parent) if masked_lm else
                     published_model(payload.get("state_dict", payload), str(source), path))
        network = _network(published.spec, published.backbone_weights, path, backbone_only=True)
        model = KINDS[published.spec.objective.kind](network, str(source), published.name, caveat=published.caveat)
    network.to(device).eval()
    return model


def is_ours(payload: Mapping[str, Any]) -> bool:
    """Ours describe their model (mdlm_bio_* entries); anything else is left to the published importers."""
    return any(key.startswith(SETTINGS_PREFIX) for key in payload)


def _network(spec: ModelSpec, weights: Mapping[str, Any] | None, path: Path, backbone_only: bool = False) -> LanguageModel:
    """The network of `spec` holding `weights` (the whole network's, or its backbone's alone)."""
    if weights is None:
        raise CheckpointError(f"{path}: not an mdlm-bio training checkpoint, or an incomplete one: it has no ['state_dict']")
    try:
        network = LanguageModel(spec)
        (network.backbone if backbone_only else network).load_state_dict(weights)
    except CheckpointError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its weights or stored model do not make a model ({first_line(error)})") from None
    return network

"""Backbones: nn.Modules with one call, `logits = backbone(tokens[B, L], t[B] or None)`.

DiT (text, MDLM), Caduceus-PS/-Ph and causal Mamba (DNA), their presets in
configs/backbone, and importers for the published checkpoints.
"""

from ..errors import CheckpointError
from .caduceus import (
    Caduceus,
    PostHocConjoined,
    reverse_complement_logits,
    reverse_complement_tokens,
)
from .dit import DiT
from .mamba import BiMamba, Mamba
from .pretrained import load_pretrained
from .registry import build_backbone, count_parameters, describe, load_preset, preset_names

__all__ = [
    "BiMamba",
    "Caduceus",
    "CheckpointError",
    "DiT",
    "Mamba",
    "PostHocConjoined",
    "build_backbone",
    "count_parameters",
    "describe",
    "load_pretrained",
    "load_preset",
    "preset_names",
    "reverse_complement_logits",
    "reverse_complement_tokens",
]

"""The DNA vocabulary and backbone presets built on it: what commands that build a backbone without training
(describe, benchmarks) need, importable without Lightning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...backbones import load_preset
from ...backbones.registry import accepts_option, resolved_settings
from ...dna import tokenizer as dna
from ..settings import Vocabulary, resolve_backbone

DNA_VOCABULARY = Vocabulary(size=dna.VOCAB_SIZE, mask_id=dna.MASK, output_ids=dna.BASE_IDS,
                            complement_map=dna.COMPLEMENT_MAP)


def preset_backbone(preset: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A backbone preset ready to build outside a run (describe, benchmarks): DNA architectures, which take a
    complement map, on the DNA vocabulary; text ones on their preset's vocabulary."""
    config = load_preset(preset, list(overrides))
    if not accepts_option(config["architecture"], "complement_map"):
        return resolved_settings(config)
    return resolve_backbone(preset, overrides, DNA_VOCABULARY)

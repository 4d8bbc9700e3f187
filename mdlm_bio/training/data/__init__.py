"""Training data: Lightning data modules for genome windows, labelled sequences and text blocks, and the builder
that picks one for a run and says what the model's vocabulary is (the trainer itself knows no track's tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L

from ...backbones import load_preset
from ...backbones.registry import accepts_option
from ...dna import tokenizer as dna
from ..settings import DataSettings, Vocabulary, resolve_backbone
from .genome import build_genome_datamodule
from .labelled import build_benchmark_datamodule
from .text import build_text_datamodule

DNA_VOCABULARY = Vocabulary(size=dna.VOCAB_SIZE, mask_id=dna.MASK, output_ids=dna.BASE_IDS,
                            complement_map=dna.COMPLEMENT_MAP)


def preset_backbone(preset: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A backbone preset ready to build outside a run (describe, benchmarks): DNA architectures, which take a
    complement map, on the DNA vocabulary; text ones on their preset's vocabulary."""
    config = load_preset(preset, list(overrides))
    if not accepts_option(config["architecture"], "complement_map"):
        return config
    return resolve_backbone(preset, overrides, DNA_VOCABULARY)


@dataclass
class TrainingData:
    """A run's data, its vocabulary and what the data fixes about the model (its track and class names)."""

    datamodule: L.LightningDataModule
    vocabulary: Vocabulary
    track: str  # "dna" or "text"
    classes: tuple[str, ...] = ()


def build_training_data(data: DataSettings, seed: int) -> TrainingData:
    """Genome windows, labelled sequences (class-conditional), or text blocks."""
    if data.dataset == "text":
        datamodule, tokenizer = build_text_datamodule(data, seed)
        return TrainingData(datamodule, Vocabulary(tokenizer.vocab_size, tokenizer.mask_id, tokenizer=data.tokenizer), "text")
    if data.dataset == "genomic-benchmarks":
        datamodule = build_benchmark_datamodule(data, seed)
        return TrainingData(datamodule, DNA_VOCABULARY, "dna", tuple(datamodule.classes))
    return TrainingData(build_genome_datamodule(data, seed), DNA_VOCABULARY, "dna")

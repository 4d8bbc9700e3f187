"""The builder that picks a run's data module and says what the model's vocabulary is."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L

from ..settings import DataSettings, Vocabulary
from .genome import build_genome_datamodule
from .labelled import build_benchmark_datamodule
from .text import build_text_datamodule
from .vocabulary import DNA_VOCABULARY


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

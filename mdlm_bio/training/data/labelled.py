"""Lightning data for labelled sequences (Genomic Benchmarks): padded batches with labels.

Shared by classifier fine-tuning and class-conditional diffusion training. Batches are dicts:
tokens LongTensor[B, L] (right-padded with [PAD] to the longest sequence in the batch, cropped to
`max_length`), attention_mask BoolTensor[B, L] (False at padding) and labels LongTensor[B].
"""

from __future__ import annotations

from functools import partial

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ...dna.benchmarks import LabelledSequences, carve_validation, ensure_present, read_split, resolve_data_dir
from ...dna.strands import other_strand
from ...dna.tokenizer import PAD
from ..settings import DataSettings
from .loaders import batch_loader


def collate(examples: list[tuple[np.ndarray, int]], max_length: int) -> dict[str, Tensor]:
    length = min(max_length, max(tokens.size for tokens, _ in examples))
    tokens = torch.full((len(examples), length), PAD, dtype=torch.long)
    for row, (sequence, _) in enumerate(examples):
        kept = sequence[:length]
        tokens[row, : kept.size] = torch.from_numpy(kept.astype(np.int64))
    labels = torch.tensor([label for _, label in examples], dtype=torch.long)
    return {"tokens": tokens, "attention_mask": tokens != PAD, "labels": labels}


def random_reverse_complement(batch: dict[str, Tensor], probability: float, generator: torch.Generator) -> dict[str, Tensor]:
    """Replace each sequence by its reverse complement with the given probability (padding moves with it)."""
    if probability <= 0.0:
        return batch
    tokens = batch["tokens"]
    flip = torch.rand(tokens.shape[0], generator=generator, device=generator.device).to(tokens.device) < probability
    reverse = other_strand(tokens)
    flipped = torch.where(flip[:, None], reverse, tokens)
    return {**batch, "tokens": flipped, "attention_mask": flipped != PAD}


class _Examples(torch.utils.data.Dataset):
    def __init__(self, data: LabelledSequences) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.data.sequences[index], int(self.data.labels[index])


class LabelledDataModule(L.LightningDataModule):
    """Shuffled training batches (seeded), fixed validation and test batches."""

    def __init__(
        self,
        train: LabelledSequences,
        valid: LabelledSequences,
        test: LabelledSequences | None,
        batch_size: int,
        max_length: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.splits = {"train": train, "valid": valid, "test": test}
        self.batch_size, self.max_length, self.seed, self.num_workers = batch_size, max_length, seed, num_workers

    @property
    def classes(self) -> tuple[str, ...]:
        return self.splits["train"].classes

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.splits[split]
        if data is None:
            raise RuntimeError(f"no {split} split was given to this data module")
        collate_fn = partial(collate, max_length=self.max_length)
        return batch_loader(_Examples(data), self.batch_size, collate_fn, self.seed if shuffle else None, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def build_benchmark_datamodule(data: DataSettings, seed: int) -> LabelledDataModule:
    """Labelled training data of a training config (`data.dataset: genomic-benchmarks`): the benchmark's train
    split with a stratified validation carve; sequences cropped to `data.window`."""
    folder = ensure_present(data.benchmark, resolve_data_dir(data.data_dir), data.download, data.mirror)
    train, valid = carve_validation(read_split(folder, "train"), data.valid_fraction, seed)
    return LabelledDataModule(train, valid, None, data.batch_size, data.window, seed, data.num_workers)

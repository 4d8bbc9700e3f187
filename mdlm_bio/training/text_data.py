"""Lightning data for text pretraining: cached token blocks of a corpus (OpenWebText, LM1B, or local files).

Batches are dicts: tokens LongTensor[B, block] and attention_mask BoolTensor[B, block] (False on the padding
of padded blocks, which the loss skips).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader

from ..text.corpora import get_corpus, tokenized_blocks
from ..text.tokenizer import TextTokenizer, load_tokenizer
from .labelled_data import batch_loader


def collate_blocks(rows: list[dict[str, list[int]]]) -> dict[str, Tensor]:
    return {
        "tokens": torch.tensor([row["input_ids"] for row in rows], dtype=torch.long),
        "attention_mask": torch.tensor([row["attention_mask"] for row in rows], dtype=torch.bool),
    }


def block_loader(blocks: datasets.Dataset, batch_size: int, shuffle_seed: int | None = None, num_workers: int = 0) -> DataLoader:
    """Batches of token blocks (see `batch_loader` for the shuffling)."""
    columns = blocks.with_format(None, columns=["input_ids", "attention_mask"])
    return batch_loader(columns, batch_size, collate_blocks, shuffle_seed, num_workers)


class TextDataModule(L.LightningDataModule):
    """Shuffled training blocks (seeded) and fixed validation blocks."""

    def __init__(self, train: datasets.Dataset, valid: datasets.Dataset, batch_size: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.train, self.valid = train, valid
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def train_dataloader(self) -> DataLoader:
        return block_loader(self.train, self.batch_size, self.seed, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return block_loader(self.valid, self.batch_size, None, self.num_workers)


def build_text_datamodule(data: DictConfig, seed: int) -> tuple[TextDataModule, TextTokenizer]:
    """The corpus's train and validation blocks (from `data.train_files` / `data.valid_files` when given),
    tokenized with `data.tokenizer` into `data.window`-token blocks, wrapped or padded."""
    tokenizer = load_tokenizer(data.tokenizer)
    corpus = get_corpus(data.corpus)
    common = {"mode": "wrap" if data.wrap else "pad", "block": data.window, "cache_dir": Path(data.cache_dir),
              "num_proc": data.num_proc}
    train = tokenized_blocks(corpus, "train", tokenizer, text_files=data.train_files, **common)
    valid = tokenized_blocks(corpus, "validation", tokenizer, text_files=data.valid_files, **common)
    return TextDataModule(train, valid, data.batch_size, seed, data.num_workers), tokenizer

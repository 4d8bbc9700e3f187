"""Lightning data for text pretraining: cached token blocks of a corpus (OpenWebText, LM1B, or local files).

Batches are dicts: tokens LongTensor[B, block] and attention_mask BoolTensor[B, block] (False on the padding
of padded blocks, which the loss skips).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import datasets
import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ...text.corpora import get_corpus, tokenized_blocks
from ...text.tokenizer import TextTokenizer, load_tokenizer
from ..settings import DataSettings
from .loaders import batch_loader


class MaskInTextError(ValueError):
    """Clean text that holds the mask token (the literal text of the tokenizer's mask, e.g. "[MASK]")."""


def collate_blocks(rows: list[dict[str, list[int]]], mask_id: int) -> dict[str, Tensor]:
    """Token blocks as tensors; checked here, on the CPU, for the mask id, which the engine does not look for
    in clean tokens (that would read the batch back from the GPU every step)."""
    tokens = torch.tensor([row["input_ids"] for row in rows], dtype=torch.long)
    if bool((tokens == mask_id).any()):
        raise MaskInTextError(f"the text holds the tokenizer's mask token (id {mask_id}), which clean training and "
                              f"evaluation text must not contain; remove its literal text from the corpus")
    return {"tokens": tokens, "attention_mask": torch.tensor([row["attention_mask"] for row in rows], dtype=torch.bool)}


def block_loader(blocks: datasets.Dataset, batch_size: int, mask_id: int, shuffle_seed: int | None = None,
                 num_workers: int = 0) -> DataLoader:
    """Batches of token blocks (see `batch_loader` for the shuffling)."""
    columns = blocks.with_format(None, columns=["input_ids", "attention_mask"])
    return batch_loader(columns, batch_size, partial(collate_blocks, mask_id=mask_id), shuffle_seed, num_workers)


class TextDataModule(L.LightningDataModule):
    """Shuffled training blocks (seeded) and fixed validation blocks."""

    def __init__(self, train: datasets.Dataset, valid: datasets.Dataset, batch_size: int, mask_id: int, seed: int,
                 num_workers: int = 0):
        super().__init__()
        self.train, self.valid = train, valid
        self.batch_size, self.mask_id, self.seed, self.num_workers = batch_size, mask_id, seed, num_workers

    def train_dataloader(self) -> DataLoader:
        return block_loader(self.train, self.batch_size, self.mask_id, self.seed, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return block_loader(self.valid, self.batch_size, self.mask_id, None, self.num_workers)


def build_text_datamodule(data: DataSettings, seed: int) -> tuple[TextDataModule, TextTokenizer]:
    """The corpus's train and validation blocks (from `data.train_files` / `data.valid_files` when given),
    tokenized with `data.tokenizer` into `data.window`-token blocks, wrapped or padded."""
    tokenizer = load_tokenizer(data.tokenizer)
    corpus = get_corpus(data.corpus)
    common = {"mode": "wrap" if data.wrap else "pad", "block": data.window, "cache_dir": Path(data.cache_dir),
              "num_proc": data.num_proc}
    train = tokenized_blocks(corpus, "train", tokenizer, text_files=data.train_files, **common)
    valid = tokenized_blocks(corpus, "validation", tokenizer, text_files=data.valid_files, **common)
    return TextDataModule(train, valid, data.batch_size, tokenizer.mask_id, seed, data.num_workers), tokenizer

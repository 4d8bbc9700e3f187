"""The batch loader every data module uses: seeded shuffling for training, dataset order for evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ...diffusion.process import make_generator


def batch_loader(dataset: Dataset, batch_size: int, collate_fn: Callable | None, shuffle_seed: int | None,
                 num_workers: int = 0) -> DataLoader:
    """A DataLoader that shuffles with its own seeded generator when `shuffle_seed` is given (training),
    and keeps dataset order otherwise (validation, test)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle_seed is not None,
        generator=None if shuffle_seed is None else make_generator(shuffle_seed, "cpu"),
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )

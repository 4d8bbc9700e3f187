"""Lightning data for DNA pretraining: random genome windows from a prepared folder (hg38 or any converted FASTA)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Sampler

from ...dna.genome import GenomeWindows, prepare_bundled_genome, prepare_held_out_genome
from ...dna.hg38 import require_prepared
from ..settings import DataSettings


class WindowStream(Sampler[tuple[int, int]]):
    """Training windows as one endless stream: stream window g is window (epoch g // n, index g % n) of the
    dataset. Each pass over the loader starts where training stands (`position()`, read when Lightning starts
    the pass), so a run resumed from any checkpoint, mid-epoch or not, sees the windows an uninterrupted run
    would have seen, with no epoch bookkeeping. Workers must not be persistent, so each pass is sampled afresh.
    """

    def __init__(self, windows: int, position: Callable[[], int]) -> None:
        self.windows = windows
        self.position = position

    def __len__(self) -> int:
        return self.windows

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start = self.position()
        return (divmod(g, self.windows) for g in range(start, start + self.windows))


class GenomeDataModule(LightningDataModule):
    """Training windows (fresh each epoch, optional reverse-complement augmentation) and a fixed validation set
    (same windows every time, no augmentation) from the train and valid splits of a prepared genome folder.

    `windows_per_epoch` and `valid_windows` default to one window per `window` bases of the split.
    Batches are dicts: tokens LongTensor[B, window], attention_mask BoolTensor[B, window] (False at PAD).
    """

    def __init__(
        self,
        data_dir: str | Path,
        window: int,
        batch_size: int,
        num_workers: int = 0,
        rc_augment: float = 0.0,
        max_n_fraction: float = 0.5,
        windows_per_epoch: int | None = None,
        valid_windows: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir, self.window, self.batch_size, self.num_workers = Path(data_dir), window, batch_size, num_workers
        self.rc_augment, self.max_n_fraction, self.seed = rc_augment, max_n_fraction, seed
        self.windows_per_epoch, self.valid_windows = windows_per_epoch, valid_windows
        self.train_set: GenomeWindows | None = None
        self.valid_set: GenomeWindows | None = None

    def setup(self, stage: str | None = None) -> None:
        common = {"max_n_fraction": self.max_n_fraction, "seed": self.seed}
        self.train_set = GenomeWindows(
            self.data_dir, "train", self.window, windows=self.windows_per_epoch, rc_augment=self.rc_augment, **common
        )
        self.valid_set = GenomeWindows(self.data_dir, "valid", self.window, windows=self.valid_windows, **common)

    def windows_trained(self) -> int:
        """Stream position: batches trained so far (a checkpoint restores the count) times the global batch.
        An epoch's short last batch skips the rest of its batch slot; windows are random, so nothing is lost."""
        if self.trainer is None:  # iterated outside a Trainer
            return 0
        batches = self.trainer.fit_loop.epoch_loop.batch_progress.total.processed
        return batches * self.batch_size * self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        dataset = self._require(self.train_set)
        return self._loader(dataset, WindowStream(len(dataset), self.windows_trained))

    def val_dataloader(self) -> DataLoader:
        dataset = self._require(self.valid_set)
        return self._loader(dataset, None)

    def _loader(self, dataset: GenomeWindows, sampler: WindowStream | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    @staticmethod
    def _require(dataset: GenomeWindows | None) -> GenomeWindows:
        if dataset is None:
            raise RuntimeError("GenomeDataModule: call setup() before asking for a dataloader")
        return dataset


def build_genome_datamodule(data: DataSettings, seed: int) -> GenomeDataModule:
    """The DataModule of a training config's `data` section. The bundled sample and a user FASTA are prepared
    on the spot (seconds, and a no-op once done); hg38 must have been prepared with `mdlm-bio data hg38`."""
    data_dir = Path(data.data_dir)
    if data.dataset == "bundled":
        prepare_bundled_genome(data_dir, list(data.valid_records))
    elif data.dataset == "fasta":
        if not data.fasta:
            raise ValueError("data.fasta must name a FASTA file when data.dataset is 'fasta'")
        prepare_held_out_genome(data.fasta, data_dir, list(data.valid_records))
    elif data.dataset == "hg38":
        require_prepared(data_dir)
    else:
        raise ValueError(f"data.dataset must be bundled, hg38 or fasta, not {data.dataset!r}")
    return GenomeDataModule(
        data_dir,
        window=data.window,
        batch_size=data.batch_size,
        num_workers=data.num_workers,
        rc_augment=data.rc_augment,
        max_n_fraction=data.max_n_fraction,
        windows_per_epoch=data.windows_per_epoch,
        valid_windows=data.valid_windows,
        seed=seed,
    )

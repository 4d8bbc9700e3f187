"""Genomic Benchmarks (Grešová et al. 2023) in the `genomic-benchmarks` package's folder layout.

The package stores a dataset as `<data_dir>/<name>/{train,test}/<class>/<id>.txt`, one sequence per file,
and downloads it from its Zenodo cache. We download through the package, and read the layout ourselves
because its `GenomicClfDataset` hard-codes `~/.genomic_benchmarks` (no `--data-dir` for offline machines)
and numbers classes in directory-listing order, which differs between file systems. Here classes are
numbered in sorted name order, so label 1 means the same class on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .download import DownloadError
from .tokenizer import SequenceError, encode

STANDARD_DATASETS = (
    "demo_coding_vs_intergenomic_seqs",
    "demo_human_or_worm",
    "human_enhancers_cohn",
    "human_enhancers_ensembl",
    "human_ensembl_regulatory",
    "human_nontata_promoters",
    "human_ocr_ensembl",
    "dummy_mouse_enhancers_ensembl",
)
# Part of the package but not of the Caduceus and MDLM tables: used when it is present in the data folder.
OPTIONAL_DATASETS = ("drosophila_enhancers_stark",)
SPLITS = ("train", "test")
VERSION = 0


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """`data_dir`, or by default the package's own cache folder, so data fetched with `genomic-benchmarks` is found."""
    if data_dir:
        return Path(data_dir)
    from genomic_benchmarks.utils.paths import CACHE_PATH

    return Path(CACHE_PATH)


@dataclass(frozen=True)
class LabelledSequences:
    """Token arrays with integer labels indexing `classes`."""

    sequences: list[np.ndarray]
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, indices: Iterable[int]) -> LabelledSequences:
        chosen = list(indices)
        return LabelledSequences([self.sequences[i] for i in chosen], self.labels[chosen], self.classes)

    def of_class(self, label: int) -> list[np.ndarray]:
        return [sequence for sequence, y in zip(self.sequences, self.labels) if y == label]


def is_present(data_dir: Path, name: str) -> bool:
    return all((Path(data_dir) / name / split).is_dir() for split in SPLITS)


def download(name: str, data_dir: Path, mirror: str | None = None) -> Path:
    """Fetch one dataset through the package's cloud-cache download (a zip from Zenodo, or `mirror`, a URL
    serving the same `files/<name>_v0.zip` paths)."""
    from genomic_benchmarks.loc2seq.cloud_caching import CLOUD_CACHE, download_from_cloud_cache

    key = (name, VERSION)
    cache = dict(CLOUD_CACHE) if mirror is None else {key: mirror.rstrip("/")}
    if key not in cache:
        raise ValueError(f"the genomic-benchmarks cloud cache has no dataset {name!r}; it has {sorted(n for n, _ in cache)}")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    print(f"downloading {name} to {data_dir}", flush=True)
    try:
        return download_from_cloud_cache(key, Path(data_dir) / name, cloud_cache=cache)
    except OSError as error:  # URLError, HTTPError, connection resets: say what failed and what to do
        raise DownloadError(
            f"could not download {name} from {cache[key]}: {getattr(error, 'reason', error)}; "
            f"retry, pass --mirror URL, or copy the dataset folder into {data_dir}"
        ) from None


def ensure_present(name: str, data_dir: Path, allow_download: bool, mirror: str | None = None) -> Path:
    """The dataset's folder, downloaded first if missing and allowed; otherwise an error saying how to get it."""
    if not is_present(data_dir, name):
        if not allow_download:
            raise FileNotFoundError(
                f"{Path(data_dir) / name} has no train/ and test/ folders; download it on a machine with internet "
                f"(mdlm-bio finetune genomic-benchmarks --datasets {name} --data-dir DIR) and copy DIR here"
            )
        download(name, data_dir, mirror)
        if not is_present(data_dir, name):
            raise FileNotFoundError(f"downloaded {name} but {Path(data_dir) / name} lacks train/ and test/ folders")
    return Path(data_dir) / name


def list_classes(dataset_dir: Path) -> tuple[str, ...]:
    """Class names (sorted) of a dataset folder; both splits must hold the same classes."""
    found = {split: sorted(p.name for p in (dataset_dir / split).iterdir() if p.is_dir()) for split in SPLITS}
    if not found["train"]:
        raise FileNotFoundError(f"{dataset_dir / 'train'} holds no class folders")
    if found["train"] != found["test"]:
        raise ValueError(f"{dataset_dir}: train classes {found['train']} differ from test classes {found['test']}")
    return tuple(found["train"])


def read_split(dataset_dir: Path, split: str) -> LabelledSequences:
    """All sequences of one split as tokens (IUPAC codes read as N), files in sorted order for determinism."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, not {split!r}")
    classes = list_classes(dataset_dir)
    files = [(label, path) for label, name in enumerate(classes) for path in sorted((dataset_dir / split / name).glob("*.txt"))]
    if not files:
        raise FileNotFoundError(f"{dataset_dir / split} holds no .txt sequence files")
    sequences, labels = [], np.empty(len(files), dtype=np.int64)
    for i, (label, path) in enumerate(tqdm(files, desc=f"reading {dataset_dir.name}/{split}", unit="seq", leave=False)):
        try:
            tokens = encode(path.read_bytes().strip())
        except SequenceError as error:
            raise SequenceError(f"{path}: {error}") from None
        if tokens.size == 0:
            raise SequenceError(f"{path}: empty sequence")
        sequences.append(tokens)
        labels[i] = label
    return LabelledSequences(sequences, labels, classes)


def carve_validation(data: LabelledSequences, fraction: float, seed: int) -> tuple[LabelledSequences, LabelledSequences]:
    """Split train into (train, validation), stratified by class so small classes keep validation examples."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1); got {fraction}")
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for label in range(len(data.classes)):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        cut = max(1, round(fraction * members.size)) if members.size > 1 else 0
        valid += members[:cut].tolist()
        train += members[cut:].tolist()
    return data.subset(sorted(train)), data.subset(sorted(valid))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. folds-1) of each example, for k-fold cross-validation: each class is shuffled with `seed` and
    dealt round-robin, continuing where the previous class stopped, so every fold holds each class in proportion and
    fold sizes differ by at most one."""
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {folds!r}")
    if len(labels) < folds:
        raise ValueError(f"{len(labels)} training examples cannot make {folds} folds")
    rng = np.random.default_rng(seed)
    assignment, dealt = np.empty(len(labels), dtype=np.int64), 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (dealt + np.arange(members.size)) % folds
        dealt += members.size
    return assignment


def fold_split(data: LabelledSequences, fold: int, folds: int, seed: int) -> tuple[LabelledSequences, LabelledSequences]:
    """(train, validation) of one cross-validation fold: the fold is the validation set, the other folds train."""
    assignment = stratified_folds(data.labels, folds, seed)
    return data.subset(np.flatnonzero(assignment != fold)), data.subset(np.flatnonzero(assignment == fold))

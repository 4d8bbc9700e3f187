"""`mdlm-bio evaluate-eqtl`: the Caduceus eQTL variant-effect probe for a DNA model, with its zero-shot score beside it.

For every variant: the model's embeddings of the reference and the alternative window averaged over the positions
around the SNP, concatenated, with the tissue's code appended; an RBF-SVM per distance-to-TSS bucket on those
features (dna/eqtl_svm.py). In the same pass, the zero-shot score of `score-variants` (log p(alt) - log p(ref) at
the masked SNP), whose AUROC needs no training: -score (the alternative is less likely) and |score| (either way).

Features are written in chunks under OUT/features/ as they are made; the same command run again reuses them, so a
run stopped after hours of embedding continues where it stopped (other settings start over).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..dna.eqtl import EqtlVariants, VariantWindows, eqtl_settings, hub_table, read_variants
from ..dna.eqtl_svm import ProbeSettings, probe_buckets, zero_shot_buckets
from ..io import atomic_output, file_identity, write_json_and_markdown
from ..sources import source_identity
from .common import load_for

if TYPE_CHECKING:
    from ..models.handle import Model

CHUNK = 256  # variants per features file: the unit a stopped run resumes from
STRANDS = ("auto", "forward", "conjoined")


@dataclass(frozen=True)
class SplitFeatures:
    """The kept variants of one split: table rows, features [n, 2D], zero-shot scores [n] (NaN where none)."""

    rows: np.ndarray
    features: np.ndarray
    scores: np.ndarray
    left_out: dict[str, int]


def conjoin_by_split(strands: str, equivariant: bool) -> dict[str, bool]:
    """Which splits read both strands. `auto` is the published choice: an RC-equivariant model (Caduceus-PS) both
    splits (free for it); any other model forward for training and both strands averaged for test."""
    if strands not in STRANDS:
        raise ValueError(f"--strands must be one of {list(STRANDS)}, not {strands!r}")
    if strands == "auto":
        return {"train": equivariant, "test": True}
    return {"train": strands == "conjoined", "test": strands == "conjoined"}


def evaluate_eqtl(ckpt: str, *, reference: Path, variants: Path | None, window: int | None, out_dir: Path,
                  strands: str, batch_size: int, device: str, trust_checkpoint: bool,
                  ignore_memory_limit: bool) -> None:
    """Embed and score every variant (resumably), probe each bucket, and write results.json/.md in `out_dir`."""
    settings = eqtl_settings()
    window = window or int(settings["window"])
    table = variants or hub_table()
    data = read_variants(table)
    windows = VariantWindows(reference, window, float(settings["max_n_fraction"]))  # a bad reference fails here
    try:
        for chrom in sorted(set(data.chrom.tolist())):  # so does a chromosome it lacks, before the model loads
            windows.contig(chrom)
        model = load_for(ckpt, device, "dna", "evaluate-eqtl", trust_checkpoint)
        model.check_memory(batch_size, window, 0, f"embedding {batch_size} windows of {window:,} bases at once",
                           "lower --batch-size, or pass a shorter --window", ignore_memory_limit)
        conjoin = conjoin_by_split(strands, bool(getattr(model.network.backbone, "rcps", False)))
        job = {"command": "evaluate-eqtl", "model": source_identity(ckpt), "variants": file_identity(table),
               "reference": file_identity(reference), "window": window, "pool_width": settings["pool_width"],
               "max_n_fraction": settings["max_n_fraction"], "conjoin": conjoin, "version": __version__}
        folder = _features_folder(Path(out_dir), job)
        splits = {split: _split_features(model, data, split, windows, conjoin[split], int(settings["pool_width"]),
                                         batch_size, folder) for split in ("train", "test")}
    finally:
        windows.close()
    summary = summarise(data, splits, ProbeSettings.of(settings["probe"]))
    payload = {"benchmark": "eqtl", "model": model.description, "window": window, "strands": conjoin,
               "summary": summary, "published": settings["published"],
               "left_out": {split: features.left_out for split, features in splits.items()}}
    markdown = write_json_and_markdown(Path(out_dir), "results", payload, markdown_table(payload))
    print(markdown.read_text())
    print(f"results in {Path(out_dir) / 'results.json'} and {markdown}")


def _features_folder(out_dir: Path, job: dict[str, Any]) -> Path:
    """OUT/features, kept from an earlier run of the same job, emptied for another."""
    folder = out_dir / "features"
    stamp = folder / "job.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != json.loads(json.dumps(job)):
        print(f"{folder} holds features of other settings; starting over", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        with atomic_output(stamp) as handle:
            handle.write(json.dumps(job, indent=2) + "\n")
    return folder


def _split_features(model: Model, data: EqtlVariants, split: str, windows: VariantWindows, conjoin: bool,
                    pool_width: int, batch_size: int, folder: Path) -> SplitFeatures:
    rows = data.rows(split)
    chunks = [rows[start : start + CHUNK] for start in range(0, len(rows), CHUNK)]
    parts = []
    with tqdm(total=len(rows), desc=f"embedding {split} variants", unit="variant") as progress:
        for index, chunk in enumerate(chunks):
            path = folder / f"{split}_{index:05d}.npz"
            if not path.is_file():
                arrays = _chunk_features(model, data, chunk, windows, conjoin, pool_width, batch_size, split == "test")
                with atomic_output(path, "wb") as handle:
                    np.savez(handle, **arrays)
            with np.load(path) as stored:
                parts.append({key: stored[key] for key in stored.files})
            progress.update(len(chunk))
    reasons = np.concatenate([part["left_out"] for part in parts])
    left_out = {str(reason): int(count) for reason, count in zip(*np.unique(reasons[reasons != ""], return_counts=True))}
    kept = [{key: part[key][part["left_out"] == ""] for key in ("rows", "features", "scores")} for part in parts
            if (part["left_out"] == "").any()]  # a chunk with no kept row has no feature width to join
    if not kept:
        raise ValueError(f"no {split} variant could be cut from the reference: {left_out}")
    return SplitFeatures(*(np.concatenate([part[key] for part in kept]) for key in ("rows", "features", "scores")),
                         left_out)


def _chunk_features(model: Model, data: EqtlVariants, chunk: np.ndarray, windows: VariantWindows, conjoin: bool,
                    pool_width: int, batch_size: int, zero_shot: bool) -> dict[str, np.ndarray]:
    """Features (and, for test variants, zero-shot scores) of one chunk of table rows; left-out rows keep a reason."""
    cut = [windows.cut(data.chrom[row], int(data.position[row]), data.alt[row],
                       None if data.ref is None else data.ref[row]) for row in chunk]
    reasons = np.array([item if isinstance(item, str) else "" for item in cut])
    kept = [item for item in cut if not isinstance(item, str)]
    positions = windows.pooled_positions(pool_width)
    features, scores = [], []
    for start in range(0, len(kept), batch_size):
        ref = np.stack([pair[0] for pair in kept[start : start + batch_size]])
        alt = np.stack([pair[1] for pair in kept[start : start + batch_size]])
        features.append(np.concatenate([model.embed(ref, conjoin, positions).mean(1),
                                        model.embed(alt, conjoin, positions).mean(1)], axis=1))
        scores.append(_zero_shot(model, ref, alt, windows.site) if zero_shot else np.full(len(ref), np.nan))
    width = features[0].shape[1] if features else 0
    return {"rows": chunk, "left_out": reasons,
            "features": _spread_rows(features, reasons, width), "scores": _spread_rows(scores, reasons, None)}


def _zero_shot(model: Model, ref: np.ndarray, alt: np.ndarray, site: int) -> np.ndarray:
    """log p(alt) - log p(ref) at the masked SNP (both strands averaged unless the model is RC-equivariant); NaN for
    a kind that does not score variants."""
    from ..models.handle import ModelMismatchError

    try:
        return model.snv_log_ratios(ref, np.full(len(ref), site), alt[:, site], not model.strand_symmetric)
    except ModelMismatchError:
        return np.full(len(ref), np.nan)


def _spread_rows(parts: list[np.ndarray], reasons: np.ndarray, width: int | None) -> np.ndarray:
    """The kept rows' values placed at their rows of the chunk, NaN at left-out rows (in the values' own precision:
    embeddings stay float32)."""
    shape = (len(reasons),) if width is None else (len(reasons), width)
    out = np.full(shape, np.nan, dtype=parts[0].dtype if parts else np.float64)
    if parts:
        out[reasons == ""] = np.concatenate(parts)
    return out


def tissue_codes(data: EqtlVariants) -> dict[str, int]:
    """Tissues numbered in sorted order (scikit-learn's LabelEncoder; the published code fits it on the test
    tissues, which are the same set as the training ones in the benchmark)."""
    return {tissue: code for code, tissue in enumerate(sorted(set(data.tissue.tolist())))}


def summarise(data: EqtlVariants, splits: dict[str, SplitFeatures], settings: ProbeSettings) -> dict[str, Any]:
    """The SVM probe and the zero-shot AUROCs per bucket, and how many variants each split kept."""
    codes = tissue_codes(data)

    def design(features: SplitFeatures) -> np.ndarray:
        tissue = np.array([codes[name] for name in data.tissue[features.rows]], dtype=np.float64)
        return np.concatenate([features.features, tissue[:, None]], axis=1)

    train, test = splits["train"], splits["test"]
    labels, distance = data.label[test.rows], data.distance[test.rows]
    probe = probe_buckets(design(train), data.label[train.rows], data.distance[train.rows], design(test), labels,
                          distance, settings)
    has_scores = bool(np.isfinite(test.scores).all()) and len(test.scores) > 0
    zero_shot = ({"minus_score": zero_shot_buckets(-test.scores, labels, distance, settings.buckets),
                  "abs_score": zero_shot_buckets(np.abs(test.scores), labels, distance, settings.buckets)}
                 if has_scores else None)
    return {"probe": probe, "zero_shot": zero_shot, "kept": {"train": len(train.rows), "test": len(test.rows)}}


def markdown_table(payload: dict[str, Any]) -> str:
    summary = payload["summary"]
    zero_shot = summary["zero_shot"]
    header = ["bucket (distance to TSS)", "train / test (causal)", "SVM AUROC", "C", "zero-shot: -score",
              "zero-shot: |score|"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for bucket, row in summary["probe"].items():
        sizes = f"{row['num_train']:,} / {row['num_test']:,} ({row['test_positives']:,})"
        probe = ["skipped", "–"] if "skipped" in row else [f"**{row['mean']:.3f} ± {row['std']:.3f}**", f"{row['c']:g}"]
        shots = ([f"{zero_shot[key][bucket]:.3f}" for key in ("minus_score", "abs_score")] if zero_shot
                 else ["–", "–"])
        lines.append("| " + " | ".join([bucket, sizes, *probe, *shots]) + " |")
    left_out = "; ".join(f"{split}: {', '.join(f'{n} {why}' for why, n in reasons.items()) or 'none'}"
                         for split, reasons in payload["left_out"].items())
    return "\n".join([
        f"# eQTL variant effects: {payload['model']}", "", *lines, "",
        f"SVM: StandardScaler + RBF SVC on [ref, alt] embeddings averaged around the SNP ({payload['window']:,}-base "
        "windows) and the tissue code; mean ± sample std of the test AUROC (from decision values) over the random "
        "training subsets, at the C with the best mean. Zero-shot: the AUROC of the masked-marginal "
        "log p(alt) - log p(ref), negated or in absolute value, with no training ('–': the model kind does not "
        "score variants).", f"Left out: {left_out}.", "", payload["published"], ""])

"""The eQTL variant-effect probe of Caduceus (Schiff et al. 2024, Section 5.3, App. D.3): per bucket of distance to
the nearest TSS, an RBF support-vector machine on standardised embedding features, trained on random subsets of the
bucket's training variants and scored by AUROC on its test variants; and the zero-shot AUROC of a score that needs
no training, in the same buckets.

AUROC is computed from the SVM's decision values (its ranking of the test variants), not from its hard 0/1
predictions: a hard prediction collapses the ranking to two levels and understates what the features separate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm


@dataclass(frozen=True)
class Bucket:
    """Variants whose distance to the nearest TSS is in [low, high], both ends inclusive as published (a variant
    exactly at a boundary is in both buckets)."""

    low: float
    high: float

    @property
    def name(self) -> str:
        return f">{self.low / 1000:g}k" if self.high == float("inf") else f"{self.low / 1000:g}-{self.high / 1000:g}k"

    def holds(self, distance: np.ndarray) -> np.ndarray:
        return (distance >= self.low) & (distance <= self.high)


@dataclass(frozen=True)
class ProbeSettings:
    """The protocol's knobs (configs/benchmarks/eqtl.yaml `probe`): buckets, the C grid, one random training subset
    per seed, and the subset's size."""

    buckets: tuple[Bucket, ...]
    cs: tuple[float, ...]
    seeds: tuple[int, ...]
    subset: int

    @classmethod
    def of(cls, probe: dict) -> ProbeSettings:
        return cls(tuple(Bucket(float(low), float(high)) for low, high in probe["buckets"]),
                   tuple(float(c) for c in probe["cs"]), tuple(int(seed) for seed in probe["seeds"]),
                   int(probe["subset"]))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when the labels hold one class only."""
    from sklearn.metrics import roc_auc_score

    return float("nan") if len(np.unique(labels)) < 2 else float(roc_auc_score(labels, scores))


def svm_auroc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, c: float) -> float:
    """StandardScaler + SVC(RBF, C=c) fitted on the training rows; AUROC of its decision values on the test rows."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    probe = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=c))
    probe.fit(train_x, train_y)
    return auroc(test_y, probe.decision_function(test_x))


def training_subset(count: int, size: int, seed: int) -> np.ndarray:
    """`size` training rows drawn as the published notebook draws them: numpy's legacy generator seeded with `seed`,
    without replacement (with replacement when the bucket holds fewer rows); the same rows for every C."""
    return np.random.RandomState(seed).choice(count, size=size, replace=size > count)


def probe_buckets(train_x: np.ndarray, train_y: np.ndarray, train_distance: np.ndarray, test_x: np.ndarray,
                  test_y: np.ndarray, test_distance: np.ndarray, settings: ProbeSettings) -> dict[str, dict]:
    """Per bucket: the AUROC of every (C, subset seed), the C with the best mean (the published choice, made on the
    test AUROCs), its mean, sample std and per-seed values, and the bucket's sizes. A subset drawn with one class
    only cannot fit an SVM; its AUROC is NaN and the means skip it."""
    results = {}
    for bucket in tqdm(settings.buckets, desc="SVM per TSS-distance bucket", unit="bucket"):
        train_rows, test_rows = np.flatnonzero(bucket.holds(train_distance)), np.flatnonzero(bucket.holds(test_distance))
        sizes = {"num_train": len(train_rows), "num_test": len(test_rows),
                 "test_positives": int(test_y[test_rows].sum())}
        if len(np.unique(train_y[train_rows])) < 2 or len(np.unique(test_y[test_rows])) < 2:
            results[bucket.name] = {"skipped": "the bucket lacks causal or non-causal variants in train or test",
                                    **sizes}
            continue
        subsets = [train_rows[training_subset(len(train_rows), settings.subset, seed)] for seed in settings.seeds]
        by_c = {c: [float("nan") if len(np.unique(train_y[chosen])) < 2 else
                    svm_auroc(train_x[chosen], train_y[chosen], test_x[test_rows], test_y[test_rows], c)
                    for chosen in subsets] for c in settings.cs}
        best = max(by_c, key=lambda c: np.nan_to_num(np.nanmean(by_c[c]), nan=-1.0))
        results[bucket.name] = {"c": best, **spread(by_c[best]), "by_c": {f"{c:g}": v for c, v in by_c.items()},
                                **sizes}
    return results


def zero_shot_buckets(scores: np.ndarray, labels: np.ndarray, distance: np.ndarray,
                      buckets: Sequence[Bucket]) -> dict[str, float]:
    """The AUROC of a training-free score (higher: more likely causal) in each bucket of the test variants."""
    return {bucket.name: auroc(labels[bucket.holds(distance)], scores[bucket.holds(distance)]) for bucket in buckets}


def spread(values: Sequence[float]) -> dict[str, float | list[float]]:
    """Mean and sample std over the finite values, and all the values."""
    finite = [value for value in values if np.isfinite(value)]
    return {"mean": statistics.fmean(finite) if finite else float("nan"),
            "std": statistics.stdev(finite) if len(finite) > 1 else 0.0, "values": list(values)}

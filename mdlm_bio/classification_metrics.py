"""The metrics benchmark tables publish, computed here in numpy: accuracy; F1 of the positive class (GLUE's MRPC and
QQP, the Nucleotide Transformer's promoter and splice-site tasks); Matthews correlation, for two classes or more
(CoLA, the NT histone and enhancer tasks); Pearson and Spearman correlation (STS-B, Spearman with average ranks for
ties). Each is checked against scikit-learn and scipy in the tests; none needs them at run time."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of class 1 (paraphrase, duplicate); 0 when it is neither predicted nor present."""
    true_positives = float(np.sum((predictions == 1) & (labels == 1)))
    predicted, actual = float(np.sum(predictions == 1)), float(np.sum(labels == 1))
    return 0.0 if predicted + actual == 0 else 2 * true_positives / (predicted + actual)


def matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation over any number of classes (scikit-learn's multiclass definition, the binary one for
    two): (c s - t . p) / sqrt((s^2 - p . p)(s^2 - t . t)) with t and p the true and predicted class counts, c the
    correct ones and s all; 0 where either labeling is constant."""
    classes = np.union1d(predictions, labels)
    confusion = np.zeros((len(classes), len(classes)))
    np.add.at(confusion, (np.searchsorted(classes, labels), np.searchsorted(classes, predictions)), 1)
    true, predicted, correct, total = confusion.sum(1), confusion.sum(0), np.trace(confusion), confusion.sum()
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - true @ true))
    return 0.0 if denominator == 0 else float((correct * total - true @ predicted) / denominator)


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    x, y = predictions.astype(np.float64) - predictions.mean(), labels.astype(np.float64) - labels.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float("nan") if denominator == 0 else float(np.sum(x * y) / denominator)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    return pearson(average_ranks(predictions), average_ranks(labels))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson, "spearman": spearman,
}


def scores(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Each named metric of `predictions` against `labels`, in percent as GLUE tables print them."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    if len(predictions) != len(labels) or not len(labels):
        raise ValueError(f"need as many predictions as labels, at least one ({len(predictions)} vs {len(labels)})")
    return {name: 100 * METRICS[name](np.asarray(predictions), np.asarray(labels)) for name in names}

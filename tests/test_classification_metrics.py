"""The benchmarks' metrics, computed in numpy by the package, against scikit-learn and scipy on known and random
predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from mdlm_bio.classification_metrics import average_ranks, scores


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, 1 - labels)
    got = scores(["accuracy", "f1", "matthews"], predictions, labels)
    assert got["accuracy"] == pytest.approx(100 * accuracy_score(labels, predictions))
    assert got["f1"] == pytest.approx(100 * f1_score(labels, predictions))
    assert got["matthews"] == pytest.approx(100 * matthews_corrcoef(labels, predictions))


@pytest.mark.parametrize("seed", range(5))
def test_matthews_correlation_of_three_classes_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 300)
    predictions = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 3, 300))
    assert scores(["matthews"], predictions, labels)["matthews"] == pytest.approx(
        100 * matthews_corrcoef(labels, predictions))
    assert scores(["matthews"], np.full(300, 2), labels)["matthews"] == 0.0  # a constant prediction


def test_known_values_and_degenerate_cases():
    labels = np.array([1, 1, 0, 0])
    assert scores(["accuracy", "f1", "matthews"], np.array([1, 0, 0, 0]), labels) == pytest.approx(
        {"accuracy": 75.0, "f1": 100 * 2 / 3, "matthews": 100 / np.sqrt(3)})
    constant = scores(["matthews", "f1"], np.zeros(4, dtype=int), labels)  # a constant prediction
    assert constant == {"matthews": 0.0, "f1": 0.0} and matthews_corrcoef(labels, np.zeros(4)) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 11, 150) / 2  # STS-B's 0-5 scale in halves: many ties
    predictions = np.round(labels + rng.normal(0, 1.0, 150), 1)
    got = scores(["pearson", "spearman"], predictions, labels)
    assert got["pearson"] == pytest.approx(100 * stats.pearsonr(predictions, labels)[0])
    assert got["spearman"] == pytest.approx(100 * stats.spearmanr(predictions, labels)[0])
    assert np.array_equal(average_ranks(labels), stats.rankdata(labels))


def test_bad_requests_are_errors():
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['auc'\]"):
        scores(["auc"], np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match=r"need as many predictions as labels, at least one \(2 vs 3\)"):
        scores(["accuracy"], np.array([1, 0]), np.array([1, 0, 1]))

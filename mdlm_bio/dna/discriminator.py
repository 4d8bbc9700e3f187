"""Can a small classifier tell a set of DNA sequences from real DNA? Held-out AUROC and F1 of one that tries.

A k-mer distance compares pooled spectra; a discriminator asks whether individual sequences give themselves
away, the check discrete-diffusion work reports for generated DNA. The classifier is deliberately small and
CPU-fast: logistic regression on each sequence's k-mer frequencies (k = 1 to 4, 340 features), standardised.
Its negatives are windows of the reference with the candidates' lengths, and every prediction is made by a
model that did not see the sequence (stratified k-fold cross-validation, seeded), so the scores are held out
while every sequence is used. AUROC 0.5: indistinguishable; 1.0: always told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .metrics import kmer_frequencies

KS = (1, 2, 3, 4)
MAX_FOLDS = 5
MIN_PER_CLASS = 2  # each fold must hold out at least one sequence of each class


@dataclass(frozen=True)
class Discrimination:
    """Held-out scores of the classifier that tells `sequences` candidates from reference windows."""

    auroc: float
    f1: float
    folds: int
    sequences: int  # per class


def kmer_features(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """[num sequences, 340]: each sequence's k-mer frequencies for k = 1..4 (k-mers with an N skipped)."""
    return np.stack([np.concatenate([kmer_frequencies(sequence, k) for k in KS]) for sequence in sequences])


def discriminate(candidates: Sequence[np.ndarray], reference: Sequence[np.ndarray], seed: int = 0) -> Discrimination:
    """Out-of-fold AUROC and F1 (threshold 0.5) of telling `candidates` from `reference` windows, which should
    match them in number and lengths."""
    per_class = min(len(candidates), len(reference))
    if per_class < MIN_PER_CLASS:
        raise ValueError(f"a discriminator needs at least {MIN_PER_CLASS} sequences of each kind, "
                         f"got {len(candidates)} candidates and {len(reference)} reference windows")
    features = kmer_features([*candidates, *reference])
    labels = np.r_[np.ones(len(candidates), int), np.zeros(len(reference), int)]
    folds = min(MAX_FOLDS, per_class)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, features, labels, cv=splits, method="predict_proba")[:, 1]
    return Discrimination(auroc=float(roc_auc_score(labels, scores)), f1=float(f1_score(labels, scores >= 0.5)),
                          folds=folds, sequences=per_class)

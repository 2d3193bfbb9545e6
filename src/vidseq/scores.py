"""Scores of multi-label predictions, pure NumPy: average precision per class (scikit-learn's definition, the
Charades metric), its mean over classes, and the decision threshold that a validation set supports best.

>>> average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))   # doctest: +ELLIPSIS
0.833...
"""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of `scores` (N,) for binary `targets` (N,): the precision at each distinct score,
    weighted by the recall it adds (scikit-learn's `average_precision_score`); NaN without a positive."""
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets).astype(bool)
    positives = targets.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last index of each run of equal scores
    tp = np.cumsum(targets)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def per_class_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of each class: `scores` and `targets` are (N, C); NaN for a class with no positive."""
    return np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])


def mean_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean average precision over the classes that have a positive (Charades' mAP)."""
    ap = per_class_ap(np.asarray(scores), np.asarray(targets))
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def best_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    """The threshold on `scores` (N, C) whose predictions (every class above it) have the best F1 over all
    (item, class) pairs against `targets`: midway between two neighbouring scores; 0.5 without a positive."""
    s, t = np.asarray(scores, np.float64).ravel(), np.asarray(targets).astype(bool).ravel()
    if not t.any():
        return 0.5
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last]
    f1 = 2 * tp / (last + 1 + t.sum())  # predicting the first k: 2 TP / (predicted + actual)
    k = last[int(np.argmax(f1))]
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-6
    return float((s[k] + below) / 2)

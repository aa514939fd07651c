"""ROC curves from scores, as pure numpy (no scikit-learn needed).

>>> fpr, tpr = roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> fpr.tolist(), tpr.tolist()
([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
>>> round(auc(fpr, tpr), 3)
0.75
"""

from __future__ import annotations

import numpy as np


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); y in {0, 1}.

    Tied scores form one step. Needs at least one positive and one negative.
    """
    y = np.asarray(y, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"ROC needs both classes, got {pos} positives and {neg} negatives")
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie block
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a piecewise-linear ROC curve (trapezoids)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))

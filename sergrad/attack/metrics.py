"""Pure metric functions for a binary attribute (F=0, M=1) and scores p = P(M).

>>> import numpy as np
>>> uar(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
0.75
>>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9]))
0.875
>>> tpr_at_fpr(np.array([0, 1]), np.array([0.2, 0.8]), fpr=0.01)
(nan, 'tpr@1%fpr: 1 negatives < 100')
"""

from __future__ import annotations

import math

import numpy as np


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted average recall (macro recall) over the classes present in y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    if len(classes) == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(y_true == np.asarray(y_pred))) if len(y_true) else float("nan")


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), np.float64)
    start = 0
    while start < len(xs):
        stop = start + 1
        while stop < len(xs) and xs[stop] == xs[start]:
            stop += 1
        ranks[order[start:stop]] = 0.5 * (start + stop - 1) + 1
        start = stop
    return ranks


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties); NaN if one class."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _midranks(np.asarray(score, np.float64))
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from the strictest (0, 0) down."""
    y = np.asarray(y_true).astype(bool)
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    s, y = np.asarray(score, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie block
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(1, (~y).sum())], np.r_[0.0, tp / max(1, y.sum())]


def tpr_at_fpr(y_true: np.ndarray, score: np.ndarray, *, fpr: float) -> tuple[float, str]:
    """Best TPR at false-positive rate <= fpr, with a note; NaN where it cannot be resolved:
    a single class, or fewer than ceil(1/fpr) negatives (the smallest nonzero FPR is 1/n_neg)."""
    y = np.asarray(y_true).astype(bool)
    n_neg, n_pos = int((~y).sum()), int(y.sum())
    label = f"tpr@{fpr:.0%}fpr"
    if n_pos == 0 or n_neg == 0:
        return float("nan"), f"{label}: single class"
    need = math.ceil(1 / fpr - 1e-9)
    if n_neg < need:
        return float("nan"), f"{label}: {n_neg} negatives < {need}"
    f, t = roc_points(y, score)
    return float(t[f <= fpr + 1e-12].max()), ""


def bootstrap_uar_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float, str]:
    """Percentile CI of UAR resampling GROUPS (clients) with replacement; resamples with a
    single class are skipped (counted in the note)."""
    if n_boot <= 0:
        return float("nan"), float("nan"), ""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    stats, skipped = [], 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        if len(np.unique(y_true[idx])) < 2:
            skipped += 1
            continue
        stats.append(uar(y_true[idx], y_pred[idx]))
    note = f"ci: {skipped}/{n_boot} single-class resamples skipped" if skipped else ""
    if not stats:
        return float("nan"), float("nan"), note or "ci: no resample"
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi), note


def binary_metrics(
    y_true: np.ndarray,
    p_male: np.ndarray,
    *,
    groups: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> dict:
    """uar, acc, auc, tpr_at_1fpr, tpr_at_10fpr, uar_ci_low/high, n_scored, note."""
    y = np.asarray(y_true, np.int64)
    p = np.asarray(p_male, np.float64)
    pred = (p >= 0.5).astype(np.int64)
    notes = []
    if len(np.unique(y)) < 2:
        notes.append("single class in targets: uar = recall of that class, auc undefined")
    t1, n1 = tpr_at_fpr(y, p, fpr=0.01)
    t10, n10 = tpr_at_fpr(y, p, fpr=0.10)
    lo, hi, nci = bootstrap_uar_ci(y, pred, groups, n_boot=n_boot, rng=rng)
    notes += [n for n in (n1, n10, nci) if n]
    return {
        "uar": uar(y, pred),
        "acc": accuracy(y, pred),
        "auc": roc_auc(y, p),
        "tpr_at_1fpr": t1,
        "tpr_at_10fpr": t10,
        "uar_ci_low": lo,
        "uar_ci_high": hi,
        "n_scored": int(len(y)),
        "note": "; ".join(notes),
    }

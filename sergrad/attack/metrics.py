"""Pure metric functions for a binary attribute (F=0, M=1) and scores p = P(M).

>>> import numpy as np
>>> uar(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
0.75
>>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9]))
0.875
>>> tpr_at_fpr(np.array([0, 1]), np.array([0.2, 0.8]), fpr=0.01)
(nan, 'tpr@1%fpr: 1 negatives < 100')
>>> prior_threshold(np.array([0.1, 0.2, 0.3, 0.4]), share_positive=0.5)
0.3
>>> oracle_threshold(np.array([0, 0, 1, 1]), np.array([0.6, 0.7, 0.8, 0.9]))
0.8

Calibration (how the decision threshold on P(male) is set; part of the threat model):
- `shadow`: 0.5, the threshold the model learned on the attacker's shadow data.
- `prior`: the attacker knows the population's class shares (public demographics, or the
  shadow data) and thresholds the target's own scores so the predicted shares match them.
  It uses the target's scores but never a target label.
- `oracle`: the UAR-maximising threshold on the target's labels. An upper bound only,
  always labelled as such, never a verdict.
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


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks [N], ties given their average rank."""
    x = np.asarray(x, np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # [U] rank of the last member of each tie block
    return (ends - (counts - 1) / 2.0)[inverse]


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties); NaN if one class."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = midranks(score)
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


CALIBRATIONS: tuple[str, ...] = ("shadow", "prior", "oracle")
SHADOW_THRESHOLD = 0.5


def prior_threshold(score: np.ndarray, *, share_positive: float) -> float:
    """Threshold t on `score` such that the share of scores >= t is as close as possible to
    `share_positive` (the known population share of the positive class). No labels used.

    Ties: t is an observed score, so a tie block is predicted together."""
    if not 0.0 <= share_positive <= 1.0:
        raise ValueError(f"share_positive must be in [0, 1], got {share_positive}")
    s = np.asarray(score, np.float64)
    if len(s) == 0:
        return float("nan")
    want = share_positive * len(s)
    # candidate thresholds: each distinct score; predicted positives = count(score >= t)
    values, counts = np.unique(s, return_counts=True)  # ascending
    n_at_least = np.cumsum(counts[::-1])[::-1]  # count(score >= values[i])
    cand = np.r_[values, np.inf]  # inf: predict nothing positive
    npos = np.r_[n_at_least, 0]
    return float(cand[int(np.argmin(np.abs(npos - want)))])


def oracle_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The observed score t maximising UAR of (score >= t) on the TARGET labels (upper bound)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, np.float64)
    if y.all() or (~y).all():
        return SHADOW_THRESHOLD
    values = np.unique(s)
    n_pos, n_neg = y.sum(), (~y).sum()
    order = np.argsort(s)
    ss, yy = s[order], y[order]
    # count(score >= v) per distinct value v, by class
    idx = np.searchsorted(ss, values, side="left")
    pos_ge = n_pos - np.r_[0, np.cumsum(yy)][idx]
    neg_ge = n_neg - np.r_[0, np.cumsum(~yy)][idx]
    u = 0.5 * (pos_ge / n_pos + 1 - neg_ge / n_neg)
    return float(values[int(np.argmax(u))])


def threshold_for(
    calibration: str, *, y_true: np.ndarray, score: np.ndarray, share_positive: float
) -> float:
    """The decision threshold on P(male) under `calibration` (see the module docstring)."""
    if calibration == "shadow":
        return SHADOW_THRESHOLD
    if calibration == "prior":
        return prior_threshold(score, share_positive=share_positive)
    if calibration == "oracle":
        return oracle_threshold(y_true, score)
    raise ValueError(f"calibration {calibration!r}: unknown; valid: {', '.join(CALIBRATIONS)}")


def is_degenerate(y_pred: np.ndarray) -> bool:
    """True when every prediction is the same class (a threshold artifact, not 'chance')."""
    y_pred = np.asarray(y_pred)
    return bool(len(y_pred) > 0 and (y_pred == y_pred[0]).all())


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
    n_groups = len(uniq)
    classes, y_index = np.unique(y_true, return_inverse=True)
    # per group and class: rows and correct predictions; a resample's counts are the
    # multiplicity-weighted sums, so its UAR needs no concatenated index (same numbers as
    # uar(y_true[idx], y_pred[idx]) over the picked groups' rows)
    count = np.zeros((n_groups, len(classes)), np.float64)
    correct = np.zeros_like(count)
    np.add.at(count, (inv, y_index), 1.0)
    np.add.at(correct, (inv, y_index), (y_pred == y_true).astype(np.float64))
    picks = rng.integers(0, n_groups, size=(n_boot, n_groups))  # = n_boot draws of n_groups
    flat = (picks + np.arange(n_boot)[:, None] * n_groups).ravel()
    mult = np.bincount(flat, minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    n = mult.astype(np.float64) @ count  # [n_boot, classes] exact small integers
    k = mult.astype(np.float64) @ correct
    present = n > 0
    n_present = present.sum(axis=1)
    keep = n_present >= 2
    skipped = int((~keep).sum())
    recall = np.where(present, k / np.maximum(n, 1.0), 0.0)
    stats = recall[keep].sum(axis=1) / n_present[keep]
    note = f"ci: {skipped}/{n_boot} single-class resamples skipped" if skipped else ""
    if not len(stats):
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
    threshold: float = SHADOW_THRESHOLD,
    clients: np.ndarray | None = None,
) -> dict:
    """uar, acc, auc, tpr_at_1fpr, tpr_at_10fpr, uar_ci_low/high, n_scored, n_clients,
    n_speakers, threshold, degenerate, note; predictions are p_male >= threshold. The CI
    resamples `groups` (the speakers: the statistical unit); n_clients counts `clients`
    (default: the groups)."""
    y = np.asarray(y_true, np.int64)
    p = np.asarray(p_male, np.float64)
    pred = (p >= threshold).astype(np.int64)
    degenerate = is_degenerate(pred)
    notes = [f"degenerate: every prediction is {'M' if pred[0] else 'F'}"] if degenerate else []
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
        "n_clients": int(len(np.unique(np.asarray(groups if clients is None else clients)))),
        "n_speakers": int(len(np.unique(np.asarray(groups)))),
        "threshold": float(threshold),
        "degenerate": degenerate,
        "note": "; ".join(notes),
    }

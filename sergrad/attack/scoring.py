"""Metric rows for categorical (3+ classes) and numeric attributes; binary ones, gender
included, keep `metrics.binary_metrics`.

Calibrations of a categorical attack (how class probabilities [N, C] become a decision):
- `shadow`: argmax, as the model learned on the shadow data.
- `prior`: the Bayes decision for UAR with the shadow population's class shares pi:
  argmax_c P(c | x) / pi_c. The model's posteriors carry the shadow priors; dividing them out
  gives the class-conditional likelihood ratio, which maximises the balanced recall when
  every class counts equally. Uses no target label.
- `oracle`: per-class log-offsets fitted on the TARGET labels by coordinate ascent on UAR
  (an upper bound only, never a verdict).
A numeric attack has no decision to calibrate: one row, calibration `shadow`, with MAE,
Spearman and the predict-the-shadow-mean baseline. Every interval is a percentile
bootstrap over target speakers (the statistical unit); a resample missing a class (or with
fewer than two speakers) is skipped and counted in the note.

>>> import numpy as np
>>> proba = np.array([[.5, .3, .2], [.5, .4, .1], [.2, .2, .6]])
>>> decide("shadow", proba, priors=np.array([.6, .2, .2])).tolist()
[0, 0, 2]
>>> decide("prior", proba, priors=np.array([.6, .2, .2])).tolist()
[1, 1, 2]
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from sergrad.attack.multiclass import categorical_scores, numeric_scores, per_class_recall, uar

OFFSETS = np.linspace(-4.0, 4.0, 33)  # oracle: candidate log-offsets per class
# columns only numeric rows fill, and the class columns they leave empty
NUMERIC_COLUMNS = dict.fromkeys(
    ("mae", "baseline_mae", "spearman", "baseline_value", "mae_gain_ci_low", "mae_gain_ci_high")
)
CLASS_METRICS = dict.fromkeys(
    ("uar", "acc", "auc", "tpr_at_1fpr", "tpr_at_10fpr", "uar_ci_low", "uar_ci_high",
     "threshold", "chance", "classes", "per_class_recall", "class_counts", "class_offsets")
)  # fmt: skip


def log_proba(proba: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(proba, np.float64), 1e-300))  # [N, C]


def offsets_for(
    calibration: str, proba: np.ndarray, *, priors: np.ndarray, y_true: np.ndarray | None = None
) -> np.ndarray:
    """The per-class log-offsets [C] of `calibration`: the decision is
    argmax_c(log P(c|x) + offset_c)."""
    c = np.asarray(proba).shape[1]
    if calibration == "shadow":
        return np.zeros(c)
    if calibration == "prior":
        return -np.log(np.maximum(np.asarray(priors, np.float64), 1e-12))
    if calibration == "oracle":
        return oracle_offsets(y_true, log_proba(proba))
    raise ValueError(f"calibration {calibration!r}: unknown; valid: shadow, prior, oracle")


def decide(
    calibration: str, proba: np.ndarray, *, priors: np.ndarray, y_true: np.ndarray | None = None
) -> np.ndarray:
    """Predicted class per row [N] from probabilities [N, C] under `calibration`."""
    off = offsets_for(calibration, proba, priors=priors, y_true=y_true)
    return (log_proba(proba) + off).argmax(axis=1)


def oracle_offsets(y_true: np.ndarray, logp: np.ndarray, *, passes: int = 3) -> np.ndarray:
    """Per-class additive log-offsets [C] maximising UAR on the target labels (coordinate
    ascent over OFFSETS, starting from zero; ties keep the smaller change)."""
    c = logp.shape[1]
    off = np.zeros(c)
    best = uar(y_true, (logp + off).argmax(axis=1), c)
    for _ in range(passes):
        for k in range(c):
            for v in OFFSETS[np.argsort(np.abs(OFFSETS))]:
                trial = off.copy()
                trial[k] = v
                u = uar(y_true, (logp + trial).argmax(axis=1), c)
                if u > best + 1e-12:
                    best, off = u, trial
    return off


def bootstrap_ci(
    stat: Callable[[np.ndarray], float],
    groups: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float | None, float | None, int]:
    """Percentile interval of stat(row indices) over resampled groups; (lo, hi, skipped)."""
    if n_boot <= 0 or len(groups) == 0:
        return None, None, 0
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    vals, skipped = [], 0
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), size=len(uniq))])
        v = stat(idx)
        if v == v:
            vals.append(v)
        else:
            skipped += 1
    if not vals:
        return None, None, skipped
    a = (1 - level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return float(lo), float(hi), skipped


def class_json(classes: tuple[str, ...], values) -> str:
    """{class: value} as JSON (NaN -> null), the store's per-class columns."""
    out = {c: (None if v is None or v != v else float(v) if isinstance(v, float) else int(v))
           for c, v in zip(classes, values)}  # fmt: skip
    return json.dumps(out)


def per_class_columns(classes: tuple[str, ...], y: np.ndarray, pred: np.ndarray) -> dict:
    """n_classes, chance, classes, per_class_recall, class_counts of class-index labels (and
    the numeric columns, empty)."""
    c = len(classes)
    return {
        **NUMERIC_COLUMNS,
        "n_classes": c,
        "chance": 1.0 / c,
        "classes": json.dumps(list(classes)),
        "per_class_recall": class_json(classes, per_class_recall(y, pred, c).tolist()),
        "class_counts": class_json(classes, [int(np.sum(y == k)) for k in range(c)]),
        "class_offsets": None,  # binary: the threshold column holds the decision
    }


def categorical_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    *,
    classes: tuple[str, ...],
    calibration: str,
    priors: np.ndarray,
    groups: np.ndarray,
    clients: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> dict:
    """One `attacks` row's metrics for class probabilities [N, C] and class indices [N]."""
    y = np.asarray(y, np.int64)
    c = len(classes)
    off = offsets_for(calibration, proba, priors=priors, y_true=y)
    pred = (log_proba(proba) + off).argmax(axis=1) if len(y) else np.zeros(0, np.int64)
    s = categorical_scores(y, proba)  # auc, counts (threshold-free)
    u = uar(y, pred, c)

    def boot(idx: np.ndarray) -> float:
        yy = y[idx]
        return float("nan") if len(np.unique(yy)) < c else uar(yy, pred[idx], c)

    lo, hi, skipped = bootstrap_ci(boot, groups, n_boot=n_boot, rng=rng)
    degenerate = bool(len(pred) and (pred == pred[0]).all())
    notes = [f"degenerate: every prediction is {classes[pred[0]]!r}"] if degenerate else []
    absent = [classes[k] for k in range(c) if s.counts[k] == 0]
    if absent:
        notes.append(f"no target update of class {absent}: uar over the classes present")
    if skipped:
        notes.append(f"ci: {skipped}/{n_boot} resamples missing a class skipped")
    return {
        "calibration": calibration, "uar": u,
        "acc": float(np.mean(pred == y)) if len(y) else float("nan"), "auc": s.auc,
        "tpr_at_1fpr": None, "tpr_at_10fpr": None, "uar_ci_low": lo, "uar_ci_high": hi,
        "n_scored": int(len(y)), "n_clients": int(len(np.unique(clients))),
        "n_speakers": int(len(np.unique(groups))), "threshold": None, "degenerate": degenerate,
        "note": "; ".join(notes), **per_class_columns(classes, y, pred),
        "class_offsets": json.dumps([float(x) for x in off]),
    }  # fmt: skip


def numeric_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    *,
    shadow_mean: float,
    groups: np.ndarray,
    clients: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> dict:
    """One `attacks` row's metrics for a numeric attribute: MAE, Spearman, the baseline MAE
    (predict the shadow mean) and a speaker-bootstrap interval of the MAE gain."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    s = numeric_scores(y, pred, shadow_mean=shadow_mean)

    def gain(idx: np.ndarray) -> float:
        if len(np.unique(groups[idx])) < 2:
            return float("nan")
        return float(np.mean(np.abs(shadow_mean - y[idx])) - np.mean(np.abs(pred[idx] - y[idx])))

    lo, hi, _ = bootstrap_ci(gain, groups, n_boot=n_boot, rng=rng)
    degenerate = bool(len(pred) and np.ptp(pred) <= 1e-9 * max(1.0, abs(float(np.mean(pred)))))
    return {
        **CLASS_METRICS, "calibration": "shadow", "n_classes": 0, "mae": s.mae,
        "baseline_value": float(shadow_mean), "baseline_mae": s.baseline_mae,
        "spearman": s.spearman, "mae_gain_ci_low": lo, "mae_gain_ci_high": hi,
        "n_scored": s.n, "n_clients": int(len(np.unique(clients))),
        "n_speakers": int(len(np.unique(groups))), "degenerate": degenerate,
        "note": "degenerate: every prediction the same value" if degenerate else "",
    }  # fmt: skip

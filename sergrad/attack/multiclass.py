"""Pure metrics for any speaker attribute: categorical (binary included) and numeric.

Categorical targets use class indices 0..C-1 in the attribute's class order
(`sergrad.attributes.Attribute.classes`) and class probabilities `proba` [N, C] (rows sum
to 1); the prediction is the most probable class. Numeric targets (e.g. age in years) are
scored against the baseline an attacker without any update has: predicting the shadow
population's mean for everyone.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1, 2, 2])
>>> proba = np.array([[.8, .1, .1], [.4, .5, .1], [.2, .7, .1], [.1, .8, .1],
...                   [.1, .2, .7], [.5, .1, .4]])
>>> s = categorical_scores(y, proba)
>>> s.uar, s.per_class_recall, s.chance
(0.6666666666666666, (0.5, 1.0, 0.5), 0.3333333333333333)
>>> float(macro_auc_ovr(y, proba))
0.9583333333333334
>>> n = numeric_scores(np.array([25.0, 40.0, 70.0]), np.array([30.0, 45.0, 60.0]),
...                    shadow_mean=45.0)
>>> n.mae, n.baseline_mae, n.spearman
(6.666666666666667, 16.666666666666668, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sergrad.attack.metrics import midranks as ranks
from sergrad.attack.metrics import roc_auc


def chance(n_classes: int) -> float:
    """UAR of a guess that ignores the input (any constant or random predictor): 1 / C."""
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}: an attribute needs at least 2 classes")
    return 1.0 / n_classes


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class 0..C-1 [C]; NaN for a class absent from y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        rows = y_true == c
        if rows.any():
            out[c] = float(np.mean(y_pred[rows] == c))
    return out


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted average recall over the classes present in y_true (NaN if none)."""
    recall = per_class_recall(y_true, y_pred, n_classes)
    present = recall[~np.isnan(recall)]
    return float(present.mean()) if present.size else float("nan")


def macro_auc_ovr(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean one-vs-rest AUC over the classes present in y_true (and absent from no row).

    proba [N, C]. NaN when fewer than two classes are present.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, np.float64)
    aucs = [roc_auc(y_true == c, proba[:, c]) for c in range(proba.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if len(aucs) >= 2 else float("nan")


@dataclass(frozen=True)
class CategoricalScores:
    uar: float
    acc: float
    auc: float  # macro one-vs-rest
    per_class_recall: tuple[float, ...]
    counts: tuple[int, ...]  # true rows per class
    chance: float
    degenerate: bool  # every prediction the same class (not the same as "at chance")
    n: int


def categorical_scores(y_true: np.ndarray, proba: np.ndarray) -> CategoricalScores:
    """All categorical metrics from class indices y_true [N] and probabilities [N, C]."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, np.float64)
    if proba.ndim != 2 or proba.shape[0] != y_true.shape[0]:
        raise ValueError(f"proba shape {proba.shape} does not match {y_true.shape[0]} labels")
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)  # [N]
    recall = per_class_recall(y_true, pred, n_classes)
    return CategoricalScores(
        uar=uar(y_true, pred, n_classes),
        acc=float(np.mean(pred == y_true)) if len(y_true) else float("nan"),
        auc=macro_auc_ovr(y_true, proba),
        per_class_recall=tuple(float(r) for r in recall),
        counts=tuple(int(np.sum(y_true == c)) for c in range(n_classes)),
        chance=chance(n_classes),
        degenerate=len(np.unique(pred)) <= 1,
        n=int(len(y_true)),
    )


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks); NaN if either is constant."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(np.sqrt(np.sum(rx * rx) * np.sum(ry * ry)))
    return float(np.sum(rx * ry) / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class NumericScores:
    mae: float
    baseline_mae: float  # predicting the shadow population's mean for everyone
    mae_gain: float  # baseline_mae - mae: > 0 when the updates tell more than the prior
    spearman: float  # the baseline's is undefined (constant): 0 in effect
    n: int


def numeric_scores(y_true: np.ndarray, y_pred: np.ndarray, *, shadow_mean: float) -> NumericScores:
    """MAE and Spearman correlation beside the predict-the-shadow-mean baseline."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    mae = float(np.mean(np.abs(y_pred - y_true))) if len(y_true) else float("nan")
    base = float(np.mean(np.abs(shadow_mean - y_true))) if len(y_true) else float("nan")
    return NumericScores(
        mae=mae, baseline_mae=base, mae_gain=base - mae,
        spearman=spearman(y_true, y_pred) if len(y_true) > 1 else float("nan"),
        n=int(len(y_true)),
    )  # fmt: skip

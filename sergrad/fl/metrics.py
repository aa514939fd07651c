"""SER metrics in pure numpy: UAR (unweighted average recall) and accuracy.

UAR is the mean over the classes present in `y_true` of each class's recall, which equals
sklearn.metrics.balanced_accuracy_score.

>>> import numpy as np
>>> uar(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
0.75
>>> accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
0.75
"""

from __future__ import annotations

import numpy as np


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro recall over the classes present in y_true; NaN for empty input."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.size == 0:
        return float("nan")
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(np.asarray(y_pred) == y_true))

"""Multi-class and numeric attack metrics against sklearn and scipy (independent oracles)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import (
    balanced_accuracy_score,
    mean_absolute_error,
    recall_score,
    roc_auc_score,
)

from sergrad.attack import metrics as binary
from sergrad.attack.multiclass import (
    categorical_scores,
    chance,
    macro_auc_ovr,
    numeric_scores,
    per_class_recall,
    ranks,
    spearman,
    uar,
)


def draw(seed: int, n_classes: int, n: int, *, ties: bool):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    logits = rng.normal(size=(n, n_classes)) + 1.2 * np.eye(n_classes)[y] * rng.random()
    if ties:
        logits = np.round(logits)  # many tied scores
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if n_classes == 2:  # exactly complementary, so ties in P(1) are ties in P(0)
        proba[:, 1] = np.round(proba[:, 1], 6)
        proba[:, 0] = 1.0 - proba[:, 1]
    return y, proba


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_categorical_against_sklearn(seed, n_classes):
    y, proba = draw(seed, n_classes, 40 + 7 * seed, ties=seed % 2 == 0)
    s = categorical_scores(y, proba)
    pred = proba.argmax(axis=1)
    np.testing.assert_allclose(
        s.per_class_recall, recall_score(y, pred, average=None, labels=range(n_classes))
    )
    assert s.uar == pytest.approx(balanced_accuracy_score(y, pred))
    assert s.acc == pytest.approx(np.mean(pred == y))
    ref = roc_auc_score(y, proba[:, 1]) if n_classes == 2 else roc_auc_score(
        y, proba, multi_class="ovr", average="macro"
    )  # fmt: skip
    assert s.auc == pytest.approx(ref)
    assert s.chance == pytest.approx(1 / n_classes)
    assert s.counts == tuple(int(np.sum(y == c)) for c in range(n_classes))


def test_binary_case_equals_the_binary_metrics():
    y, proba = draw(3, 2, 60, ties=True)
    s = categorical_scores(y, proba)
    assert s.auc == pytest.approx(binary.roc_auc(y, proba[:, 1]))
    assert s.uar == pytest.approx(binary.uar(y, proba.argmax(axis=1)))


def test_absent_class_and_degenerate_predictions():
    y = np.array([0, 0, 2, 2])
    pred = np.array([0, 1, 2, 2])
    recall = per_class_recall(y, pred, 3)
    assert recall[0] == 0.5 and np.isnan(recall[1]) and recall[2] == 1.0
    assert uar(y, pred, 3) == pytest.approx(0.75)
    const = np.tile([0.2, 0.5, 0.3], (4, 1))
    s = categorical_scores(y, const)
    assert s.degenerate and s.uar == 0.0 and s.auc == pytest.approx(0.5)
    assert np.isnan(macro_auc_ovr(np.zeros(4, int), const))
    with pytest.raises(ValueError, match="at least 2 classes"):
        chance(1)


@pytest.mark.parametrize("seed", range(10))
def test_numeric_against_scipy_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, 50).astype(float)  # integer ages: ties
    pred = age + rng.normal(0.0, 5.0 + 3 * seed, 50)
    if seed % 3 == 0:
        pred = np.round(pred / 10) * 10  # tied predictions
    s = numeric_scores(age, pred, shadow_mean=44.0)
    assert s.mae == pytest.approx(mean_absolute_error(age, pred))
    assert s.baseline_mae == pytest.approx(mean_absolute_error(age, np.full(50, 44.0)))
    assert s.mae_gain == pytest.approx(s.baseline_mae - s.mae)
    assert s.spearman == pytest.approx(stats.spearmanr(age, pred).statistic)
    np.testing.assert_allclose(ranks(pred), stats.rankdata(pred))


def test_spearman_of_a_constant_is_nan_and_shapes_must_match():
    assert np.isnan(spearman(np.arange(5.0), np.ones(5)))
    with pytest.raises(ValueError, match="differ in shape"):
        numeric_scores(np.ones(3), np.ones(4), shadow_mean=0.0)

"""Attack metrics against scikit-learn and hand-computed edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from sergrad.attack.metrics import (
    accuracy,
    binary_metrics,
    bootstrap_uar_ci,
    roc_auc,
    tpr_at_fpr,
    uar,
)


@settings(max_examples=50, deadline=None)
@given(
    y=st.lists(st.integers(0, 1), min_size=2, max_size=60).filter(lambda v: 0 < sum(v) < len(v)),
    seed=st.integers(0, 2**31),
    levels=st.integers(2, 6),
)
@example(y=[0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1], seed=2172, levels=4)
def test_against_sklearn_with_ties(y, seed, levels):
    y = np.array(y)
    rng = np.random.default_rng(seed)
    score = rng.integers(0, levels, size=len(y)) / levels  # many ties
    pred = (score >= 0.5).astype(int)
    assert uar(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    assert accuracy(y, pred) == pytest.approx(np.mean(y == pred))
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    # every threshold: sklearn's default drops collinear ROC points, which can hide the best
    # TPR at an FPR limit (e.g. (0.25, 4/7) between (0, 1/7) and (0.5, 1))
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    for target in (0.01, 0.1, 0.3):
        got, note = tpr_at_fpr(y, score, fpr=target)
        if (y == 0).sum() >= math.ceil(1 / target):
            assert note == "" and got == pytest.approx(tpr[fpr <= target + 1e-12].max())
        else:
            assert math.isnan(got) and "negatives" in note


def test_tpr_at_low_fpr_needs_enough_negatives():
    y = np.r_[np.zeros(99), np.ones(50)].astype(int)
    s = np.r_[np.linspace(0, 0.5, 99), np.linspace(0.4, 1, 50)]
    v, note = tpr_at_fpr(y, s, fpr=0.01)
    assert math.isnan(v) and note == "tpr@1%fpr: 99 negatives < 100"
    y2 = np.r_[np.zeros(100), np.ones(50)].astype(int)
    s2 = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.4, 1, 50)]
    v2, note2 = tpr_at_fpr(y2, s2, fpr=0.01)
    fpr, tpr, _ = roc_curve(y2, s2)
    assert note2 == "" and v2 == pytest.approx(tpr[fpr <= 0.01].max())


def test_single_class_targets():
    y = np.ones(5, int)
    p = np.array([0.9, 0.2, 0.7, 0.6, 0.8])
    assert uar(y, (p >= 0.5).astype(int)) == pytest.approx(0.8)  # recall of the one class
    assert math.isnan(roc_auc(y, p))
    v, note = tpr_at_fpr(y, p, fpr=0.1)
    assert math.isnan(v) and "single class" in note
    m = binary_metrics(y, p, groups=np.arange(5), n_boot=20, rng=np.random.default_rng(0))
    assert "single class" in m["note"] and math.isnan(m["auc"])


def test_perfect_and_inverted_scores():
    y = np.array([0, 0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.full(5, 0.5)) == 0.5  # all tied


def test_bootstrap_resamples_clients_not_updates():
    # two clients, each entirely right or entirely wrong: a client-level resample is either
    # {right, wrong} mixtures; an update-level bootstrap would give a much narrower CI
    y = np.array([0] * 10 + [1] * 10 + [0] * 10 + [1] * 10)
    pred = np.array([0] * 10 + [1] * 10 + [1] * 10 + [0] * 10)
    groups = np.repeat([0, 1, 2, 3], 10)
    lo, hi, note = bootstrap_uar_ci(y, pred, groups, n_boot=400, rng=np.random.default_rng(0))
    assert lo <= 0.25 and hi >= 0.75  # per-client outcomes are all-or-nothing
    # oracle: a naive loop over the same resampling draws
    rng = np.random.default_rng(0)
    stats = []
    for _ in range(400):
        pick = rng.integers(0, 4, size=4)
        idx = np.concatenate([np.flatnonzero(groups == g) for g in pick])
        if len(set(y[idx])) == 2:
            stats.append(balanced_accuracy_score(y[idx], pred[idx]))
    assert (lo, hi) == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])))
    assert ("skipped" in note) == (len(stats) < 400)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    p = rng.integers(0, 2, 80)
    g = np.repeat(np.arange(16), 5)
    a = bootstrap_uar_ci(y, p, g, n_boot=100, rng=np.random.default_rng(1))
    b = bootstrap_uar_ci(y, p, g, n_boot=100, rng=np.random.default_rng(1))
    assert a == b


def _naive_bootstrap(y, pred, groups, *, n_boot, rng, level=0.95):
    """The loop the vectorised bootstrap replaces: concatenate each resample's rows, uar()."""
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    stats, skipped = [], 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        if len(np.unique(y[idx])) < 2:
            skipped += 1
            continue
        stats.append(uar(y[idx], pred[idx]))
    if not stats:
        return float("nan"), float("nan"), skipped
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi), skipped


@settings(max_examples=60, deadline=None)
@given(
    n_groups=st.integers(1, 12),
    n_rows=st.integers(1, 80),
    n_classes=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_bootstrap_equals_naive_resampling_loop(n_groups, n_rows, n_classes, seed):
    # same draws, same numbers, bit for bit: unbalanced groups, multi-class labels, resamples
    # that lose a class (skipped) and groups with a single row
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    pred = rng.integers(0, n_classes, n_rows)
    groups = rng.integers(0, n_groups, n_rows) * 7 + 3  # arbitrary group labels
    fast, naive = np.random.default_rng(seed), np.random.default_rng(seed)
    lo, hi, note = bootstrap_uar_ci(y, pred, groups, n_boot=50, rng=fast)
    nlo, nhi, skipped = _naive_bootstrap(y, pred, groups, n_boot=50, rng=naive)
    assert (math.isnan(lo) and math.isnan(nlo)) or (lo, hi) == (nlo, nhi)
    assert fast.integers(2**62) == naive.integers(2**62)  # the caller's stream goes on alike
    assert (f"{skipped}/50 single-class" in note) == (skipped > 0)

"""The metadata-only attacker's numpy models against scikit-learn's pipelines (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sergrad.attack.metadata_model import LinearModel, LogisticModel, Scaler, _design, objective


def _data(rng, n: int, k: int, *, signal: float):
    y = rng.integers(0, k, n)
    x = np.column_stack([np.log1p(20 + 15 * y + rng.integers(0, 30, n)), rng.integers(1, 50, n)])
    x[:, 0] += signal * rng.standard_normal(n)
    return x.astype(np.float64), y


@pytest.mark.parametrize(("k", "signal"), [(2, 0.3), (2, 5.0), (4, 0.2), (3, 0.0)])
def test_logistic_model_reaches_the_optimum_scikit_learn_approaches(k, signal):
    rng = np.random.default_rng(k)
    x, y = _data(rng, 400, k, signal=signal)
    ours = LogisticModel.fit(x, y)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    xt, _ = _data(rng, 200, k, signal=signal)
    assert ours.classes_.tolist() == ref[-1].classes_.tolist()
    # lbfgs stops within its gradient tolerance: probabilities agree to about 1e-4 (softmax 1e-3)
    tol = 2e-4 if k == 2 else 1e-3
    np.testing.assert_allclose(ours.predict_proba(xt), ref.predict_proba(xt), atol=tol)
    # the same objective, and ours at least as low (scikit-learn stops within a tolerance)
    a = _design(Scaler.fit(x)(x))
    theta_ref = np.column_stack([ref[-1].coef_, ref[-1].intercept_])
    binary = k == 2
    targets = y[:, None].astype(float) if binary else np.eye(k)[y]
    f_ours = objective(a, targets, ours.theta.reshape(len(theta_ref), -1), binary=binary)
    f_ref = objective(a, targets, theta_ref, binary=binary)
    assert f_ours <= f_ref + 1e-9
    assert f_ref - f_ours < 1e-3 * max(1.0, abs(f_ref))


def test_separable_labels_and_a_constant_feature_stay_finite():
    x = np.column_stack([np.r_[np.zeros(50), np.ones(50)], np.full(100, 7.0)])
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    p = LogisticModel.fit(x, y).predict_proba(x)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, ref.predict_proba(x), atol=1e-4)
    with pytest.raises(ValueError, match="two classes"):
        LogisticModel.fit(x, np.zeros(100, int))


def test_linear_model_is_least_squares():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 2)) * [3.0, 0.1] + [40.0, 2.0]
    y = 1.5 * x[:, 0] - 20 * x[:, 1] + rng.standard_normal(120)
    xt = rng.standard_normal((30, 2))
    ref = make_pipeline(StandardScaler(), LinearRegression()).fit(x, y)
    np.testing.assert_allclose(LinearModel.fit(x, y).predict(xt), ref.predict(xt), rtol=1e-9)

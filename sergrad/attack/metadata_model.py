"""The metadata-only attacker's models in numpy: standardised L2 logistic regression and
least squares, fitted by Newton's method to the exact optimum.

They replace scikit-learn's `make_pipeline(StandardScaler(), LogisticRegression())` and
`... LinearRegression()` for the `no_updates` baseline: importing `sklearn.linear_model`
(with the `scipy.stats` it pulls in) took 1.15 s of every evaluation process, for a model of
two features. Same model, same objective: features standardised by their mean and population
std (a constant column is left unscaled), then the negative log-likelihood plus
0.5 * ||coefficients||^2 (C = 1; the intercepts are not penalised); two classes have one
coefficient vector (sigmoid), more have one per class (softmax). scikit-learn's lbfgs stops
within its tolerance of that optimum; Newton's method reaches it (tests/test_metadata_model.py
holds the two side by side).

>>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
>>> m = LogisticModel.fit(x, y)
>>> m.classes_.tolist(), m.predict_proba(np.array([[1.5]]))[0].round(6).tolist()
([0, 1], [0.5, 0.5])
>>> LinearModel.fit(x, 2 * x[:, 0] + 1).predict(np.array([[10.0]])).round(9).tolist()
[21.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_NEWTON_STEPS = 100
GRAD_TOL = 1e-10  # stop when the gradient's max norm is below this times the rows


@dataclass(frozen=True)
class Scaler:
    """StandardScaler: (x - mean) / std, std (ddof 0) below 10 * eps taken as 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x = np.asarray(x, np.float64)
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) / self.scale


def _design(z: np.ndarray) -> np.ndarray:
    return np.column_stack([z, np.ones(len(z))])  # [n, d + 1], the intercept last


@dataclass(frozen=True)
class LogisticModel:
    """P(class | x); `classes_` the sorted labels seen in fitting (as scikit-learn's)."""

    scaler: Scaler
    theta: np.ndarray  # [d + 1] (two classes) or [K, d + 1], intercepts last
    classes_: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> LogisticModel:
        x = np.asarray(x, np.float64)
        classes, idx = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a logistic regression needs two classes; the labels hold {classes}")
        scaler = Scaler.fit(x)
        a = _design(scaler(x))  # [n, d + 1]
        if len(classes) == 2:
            theta = _newton(a, idx.astype(np.float64)[:, None], binary=True)[0]
        else:
            theta = _newton(a, np.eye(len(classes))[idx], binary=False)
        return cls(scaler, theta, classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, n_classes] probabilities, columns in `classes_` order."""
        a = _design(self.scaler(np.asarray(x, np.float64).reshape(-1, len(self.scaler.mean))))
        if self.theta.ndim == 1:
            p = _sigmoid(a @ self.theta)
            return np.column_stack([1.0 - p, p])
        return _softmax(a @ self.theta.T)


@dataclass(frozen=True)
class LinearModel:
    """Ordinary least squares with an intercept (on standardised features: the same fit)."""

    scaler: Scaler
    coef: np.ndarray  # [d + 1], intercept last

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> LinearModel:
        scaler = Scaler.fit(x)
        coef = np.linalg.lstsq(_design(scaler(x)), np.asarray(y, np.float64), rcond=None)[0]
        return cls(scaler, coef)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1, len(self.scaler.mean))
        return _design(self.scaler(x)) @ self.coef


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -t))


def _softmax(t: np.ndarray) -> np.ndarray:
    e = np.exp(t - t.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def objective(a: np.ndarray, targets: np.ndarray, theta: np.ndarray, *, binary: bool) -> float:
    """Negative log-likelihood + 0.5 * ||coefficients||^2 (intercepts, the last column, free).
    `theta` [K, d + 1] (binary: K = 1, the sigmoid's vector); `targets` [n, K] one-hot
    (binary: [n, 1] of 0/1)."""
    t = a @ theta.T  # [n, K]
    if binary:
        nll = np.sum(np.logaddexp(0.0, t[:, 0]) - targets[:, 0] * t[:, 0])
    else:
        m = t.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(t - m).sum(axis=1, keepdims=True)))[:, 0]
        nll = np.sum(lse - np.sum(targets * t, axis=1))
    return float(nll + 0.5 * np.sum(theta[:, :-1] ** 2))


def _newton(a: np.ndarray, targets: np.ndarray, *, binary: bool) -> np.ndarray:
    """Minimise `objective` by damped Newton steps from zero; [K, d + 1]."""
    n, p = a.shape
    k = targets.shape[1]
    theta = np.zeros((k, p))
    penalty = np.ones(p)
    penalty[-1] = 0.0  # no penalty on the intercept
    f = objective(a, targets, theta, binary=binary)
    for _ in range(MAX_NEWTON_STEPS):
        t = a @ theta.T
        prob = _sigmoid(t) if binary else _softmax(t)  # [n, K]
        grad = (prob - targets).T @ a + theta * penalty  # [K, p]
        if np.max(np.abs(grad)) < GRAD_TOL * max(1, n):
            break
        hess = np.zeros((k * p, k * p))
        for i in range(k):
            for j in range(k):
                w = prob[:, i] * ((i == j) - prob[:, j])  # binary (K = 1): p (1 - p)
                block = a.T @ (a * w[:, None])
                if i == j:
                    block = block + np.diag(penalty)
                hess[i * p : (i + 1) * p, j * p : (j + 1) * p] = block
        # softmax intercepts are free up to a common shift: the least-squares step ignores it
        step = np.linalg.lstsq(hess, grad.reshape(-1), rcond=None)[0].reshape(k, p)
        scale = 1.0
        while True:  # halve until the objective does not rise
            cand = theta - scale * step
            fc = objective(a, targets, cand, binary=binary)
            if fc <= f or scale < 1e-10:
                break
            scale /= 2
        if fc > f:
            break
        theta, f = cand, fc
    return theta

"""The model and statistics of the secure-aggregation attacks (sergrad.attack.secagg).

Dual ridge regression on element-wise normalised layer vectors (n shadow rows << p
elements): centred on the shadow mean (of all rows, or of the same FL round) and scaled by
the shadow std; centering and penalty chosen by leave-one-shadow-run-out MAE. Spearman,
bootstrap and permutation statistics of the cohort-composition regression.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(60, 40)); w = rng.normal(size=40)
>>> y = 1 / (1 + np.exp(-x @ w / 6)); groups = np.repeat([0, 1, 2], 20)
>>> m = fit_ridge(x, y, groups, np.tile(np.arange(20), 3))
>>> bool(np.mean(np.abs(m.predict(x, np.tile(np.arange(20), 3)) - y)) < np.mean(np.abs(y - y.mean())))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sergrad.errors import DataError

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # x mean(diag K)


# --- the model: dual ridge on shadow-normalised vectors ---------------------------------------
CENTERINGS = ("global", "round")  # subtract the shadow mean over all rows | of the same round


@dataclass
class Ridge:
    centering: str
    means: dict  # round -> shadow mean [p] ("round"), or {None: mean} ("global")
    std: np.ndarray
    z: np.ndarray  # normalised shadow rows [n, p]
    coef: np.ndarray  # dual coefficients [n]
    intercept: float
    alpha: float

    def predict(self, x: np.ndarray, rounds: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        zt = _centred(x, rounds, self.means, self.centering) / self.std
        return zt @ self.z.T @ self.coef / self.z.shape[1] + self.intercept


def _round_means(x: np.ndarray, rounds: np.ndarray, centering: str) -> dict:
    overall = x.mean(0)
    if centering == "global":
        return {None: overall}
    return {None: overall, **{int(r): x[rounds == r].mean(0) for r in np.unique(rounds)}}


def _centred(x, rounds, means: dict, centering: str) -> np.ndarray:
    if centering == "global":
        return x - means[None]
    return x - np.stack([means.get(int(r), means[None]) for r in rounds])


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray, rounds: np.ndarray) -> Ridge:
    """Dual ridge y ~ z w. z: each element centred (on the shadow mean of all rows, or of the
    same FL round: shadow runs share the target's init and schedule, so this removes the
    round's common direction) and scaled by its shadow std. The centering and the penalty
    (ALPHAS x mean diag K) are chosen by leave-one-group-out MAE (groups = shadow runs;
    with one group: global centering, the middle penalty). Rows with an unknown label drop."""
    keep = ~np.isnan(y)
    x, y, groups, rounds = x[keep], y[keep], groups[keep], rounds[keep]
    if len(y) < 3:
        raise DataError(f"{len(y)} labelled shadow aggregates: too few to train an attack")
    uniq = np.unique(groups)
    best, best_err = ("global", ALPHAS[len(ALPHAS) // 2]), np.inf
    for centering in CENTERINGS if len(uniq) >= 2 else ("global",):
        z, _, _ = _normalised(x, rounds, centering)
        k = z @ z.T / z.shape[1]  # [n, n]
        scale = float(np.mean(np.diag(k))) or 1.0
        for alpha in ALPHAS if len(uniq) >= 2 else ():
            err = 0.0
            for g in uniq:  # leave one shadow run out; its rows also leave the round means
                tr, te = np.flatnonzero(groups != g), np.flatnonzero(groups == g)
                zt, _, _ = _normalised(x[tr], rounds[tr], centering, apply=(x[te], rounds[te]))
                ztr = zt[: len(tr)]
                kk = ztr @ ztr.T / z.shape[1] + alpha * scale * np.eye(len(tr))
                b = float(y[tr].mean())
                c = np.linalg.solve(kk, y[tr] - b)
                err += float(np.abs(zt[len(tr) :] @ ztr.T @ c / z.shape[1] + b - y[te]).sum())
            if err < best_err:
                best, best_err = (centering, alpha), err
    centering, alpha = best
    z, means, std = _normalised(x, rounds, centering)
    k = z @ z.T / z.shape[1]
    scale = float(np.mean(np.diag(k))) or 1.0
    b = float(y.mean())
    c = np.linalg.solve(k + alpha * scale * np.eye(len(y)), y - b)
    return Ridge(centering=centering, means=means, std=std, z=z, coef=c, intercept=b, alpha=alpha)


def _normalised(x, rounds, centering, *, apply=None):
    """(rows of x [and of `apply`'s rows after them] centred and scaled by x's statistics,
    the means, the std)."""
    means = _round_means(x, rounds, centering)
    cx = _centred(x, rounds, means, centering)
    std = cx.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    z = cx / std
    if apply is not None:
        z = np.concatenate([z, _centred(apply[0], apply[1], means, centering) / std])
    return z, means, std


# --- statistics --------------------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def composition_metrics(y, pred, baseline: float, *, n_boot: int, n_perm: int, rng) -> dict:
    """MAE vs the shadow-mean baseline, Spearman with a bootstrap interval over aggregates and
    a one-sided permutation p-value (H0: no association)."""
    ok = ~np.isnan(y)
    y, pred = y[ok], np.clip(pred[ok], 0.0, 1.0)
    rho = spearman(y, pred)
    boots = []
    for _ in range(n_boot if rho == rho else 0):
        i = rng.integers(0, len(y), len(y))
        r = spearman(y[i], pred[i])
        if r == r:
            boots.append(r)
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    hits = sum(spearman(rng.permutation(y), pred) >= rho - 1e-12 for _ in range(n_perm))
    out = {
        "mae": float(np.mean(np.abs(pred - y))) if len(y) else np.nan,
        "baseline_mae": float(np.mean(np.abs(baseline - y))) if len(y) else np.nan,
        "baseline_value": float(baseline),
        "spearman": rho, "spearman_ci_low": float(lo), "spearman_ci_high": float(hi),
        "p_value": (1 + hits) / (1 + n_perm) if rho == rho and n_perm else None,
        "n_scored": int(len(y)), "uar": None,
    }  # fmt: skip
    if len(y) and set(np.unique(y)) <= {0.0, 1.0}:  # cohorts of one: a per-client classifier
        hit = (pred >= 0.5) == (y == 1)
        recalls = [float(hit[y == v].mean()) for v in (0.0, 1.0) if (y == v).any()]
        out["uar"] = float(np.mean(recalls)) if len(recalls) == 2 else None
    return out

"""Closed-form privacy facts shared by defenses, attacks and analysis (no torch).

- `dp_attack_ceiling`: the best balanced accuracy any attacker can reach under (eps, delta)-DP.
- `clopper_pearson`: exact one-sided binomial bounds.
- `empirical_epsilon`: a 1 - alpha lower bound on epsilon from an attack's decisions (a
  distinguishing test between two populations with a threshold fixed in advance):
      eps_lb = max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo)))
  with Clopper-Pearson bounds at alpha / 2 each (union bound), floored at 0.
- `gaussian_epsilon`: the exact epsilon of the Gaussian mechanism at a given delta (the analytic
  Gaussian mechanism, Balle & Wang 2018, Theorem 8), and its n-fold composition (a Gaussian
  mechanism with sensitivity sqrt(n) * Delta, i.e. mu = sqrt(n) * Delta / sigma).

>>> round(dp_attack_ceiling(0.0, 0.0), 3)
0.5
>>> round(dp_attack_ceiling(1.0, 1e-5), 4)
0.7311
>>> empirical_epsilon(tp=50, n_pos=100, fp=50, n_neg=100, delta=0.0)
0.0
>>> round(empirical_epsilon(tp=990, n_pos=1000, fp=10, n_neg=1000, delta=0.0), 2)
3.98
>>> round(gaussian_epsilon(mu=1.0, delta=1e-5), 3)
4.377
"""

from __future__ import annotations

import functools
import math


def dp_attack_ceiling(epsilon: float, delta: float) -> float:
    """Upper bound on balanced attack accuracy under (epsilon, delta)-DP: (e^eps + delta)/(1 + e^eps)."""
    if epsilon < 0 or not 0 <= delta < 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta < 1, got {epsilon}, {delta}")
    if epsilon > 700:
        return 1.0
    e = math.exp(epsilon)
    return min(1.0, (e + delta) / (1.0 + e))


def clopper_pearson(k: int, n: int, *, alpha: float, upper: bool) -> float:
    """Exact one-sided (1 - alpha) bound on a binomial proportion from k successes in n (the
    beta quantile by `scipy.special.betaincinv`: the values of `scipy.stats.beta.ppf`, without
    its per-call overhead of ~45 us or the import of scipy.stats)."""
    from scipy.special import betaincinv

    if n <= 0:
        return 1.0 if upper else 0.0
    if upper:
        return 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1 - alpha))
    return 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, alpha))


def empirical_epsilon(
    *, tp: int, n_pos: int, fp: int, n_neg: int, delta: float, confidence: float = 0.95
) -> float:
    """Lower bound on epsilon at `confidence` from tp / n_pos positives and fp / n_neg negatives
    predicted positive (each sample one independent draw; threshold fixed before seeing them)."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    a = (1 - confidence) / 2
    tpr_lo = clopper_pearson(tp, n_pos, alpha=a, upper=False)
    fpr_hi = clopper_pearson(fp, n_neg, alpha=a, upper=True)
    out = 0.0
    if fpr_hi > 0 and tpr_lo - delta > 0:
        out = max(out, math.log((tpr_lo - delta) / fpr_hi))
    if tpr_lo < 1 and 1 - fpr_hi - delta > 0:
        out = max(out, math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return out


def gaussian_delta(*, mu: float, epsilon: float) -> float:
    """delta(eps) of a Gaussian mechanism with mu = sensitivity / sigma (Balle & Wang 2018);
    Phi and log Phi by scipy.special (`ndtr`, `log_ndtr`: what scipy.stats.norm calls)."""
    from scipy.special import log_ndtr, ndtr

    if mu <= 0:
        return 0.0
    # e^eps * Phi(.) in log space: eps reaches mu^2 / 2 (hundreds) for small noise
    second = math.exp(min(700.0, epsilon + float(log_ndtr(-mu / 2 - epsilon / mu))))
    return float(ndtr(mu / 2 - epsilon / mu) - second)


@functools.lru_cache(maxsize=4096)
def gaussian_epsilon(*, mu: float, delta: float) -> float:
    """Smallest epsilon with gaussian_delta(mu, epsilon) <= delta; inf when mu = inf (a root
    search: memoised, as every attack row of a run asks again)."""
    from scipy.optimize import brentq

    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if math.isinf(mu):
        return math.inf
    if mu <= 0 or gaussian_delta(mu=mu, epsilon=0.0) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_delta(mu=mu, epsilon=hi) > delta:
        hi *= 2
    return float(brentq(lambda e: gaussian_delta(mu=mu, epsilon=e) - delta, 0.0, hi, xtol=1e-10))


def local_gaussian_epsilon(*, noise_multiplier: float, n_updates: int, delta: float) -> float:
    """Epsilon of n updates of one client under local user-level DP (clip S, noise z*S per
    coordinate), against REPLACEMENT of the client's data: sensitivity 2S per update, so
    mu = sqrt(n) * 2 / z. inf without noise."""
    if noise_multiplier <= 0:
        return math.inf
    return gaussian_epsilon(mu=math.sqrt(max(1, n_updates)) * 2.0 / noise_multiplier, delta=delta)

"""Epsilon lower bound from one run with m random canaries (Steinke, Nasr, Jagielski 2023).

Each of m canaries is included independently with probability 1/2. The auditor abstains on
most canaries and guesses "in" for the k_pos highest scores and "out" for the k_neg lowest
(k_pos, k_neg fixed before looking at the result). Under (eps, delta)-DP the number of correct
guesses v among r = k_pos + k_neg is (up to a delta term) dominated by Binomial(r, q) with
q = e^eps / (1 + e^eps), the accuracy of eps-randomized response (the paper's Theorem 3 and
Appendix D). `p_value` is the probability of >= v correct guesses under that null, and
`epsilon_lower_bound` the largest eps whose p-value is below 1 - confidence.

>>> round(epsilon_lower_bound(m=1000, r=100, v=100, delta=0.0), 2)
3.49
>>> epsilon_lower_bound(m=1000, r=100, v=50, delta=1e-5)
0.0
"""

from __future__ import annotations

import math

import numpy as np


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[>= v correct of r guesses] under (epsilon, delta)-DP with m canaries."""
    from scipy.stats import binom

    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta <= 1, got {epsilon}, {delta}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))
    if delta == 0:
        return min(tail, 1.0)
    # delta term: max over i of P[v - i <= Bin(r, q) < v] / i, times 2 m delta
    pmf = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[Bin = v-1], P[Bin = v-2], ...
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1))) if v > 0 else 0.0
    return min(tail + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(
    *, m: int, r: int, v: int, delta: float, confidence: float = 0.95, tol: float = 1e-6
) -> float:
    """Largest epsilon rejected at `confidence` (0 when even epsilon = 0 is not rejected)."""
    level = 1.0 - confidence
    if p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m=m, r=r, v=v, epsilon=hi, delta=delta) < level:
        lo, hi = hi, hi * 2
        if hi > 200:
            return lo
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if p_value(m=m, r=r, v=v, epsilon=mid, delta=delta) < level:
            lo = mid
        else:
            hi = mid
    return lo


def guesses(scores: np.ndarray, included: np.ndarray, *, k_pos: int, k_neg: int) -> tuple[int, int]:
    """(r, v): guess "in" for the k_pos highest scores, "out" for the k_neg lowest."""
    scores, included = np.asarray(scores, np.float64), np.asarray(included, bool)
    if k_pos + k_neg > len(scores):
        raise ValueError(f"k_pos + k_neg = {k_pos + k_neg} > {len(scores)} canaries")
    order = np.argsort(scores, kind="mergesort")
    v = int(included[order[len(order) - k_pos :]].sum()) if k_pos else 0
    v += int((~included[order[:k_neg]]).sum())
    return k_pos + k_neg, v

"""Summary statistics across runs (folds x seeds): mean, spread and a t interval when honest.

Every run (one fold x one seed) or attack evaluation is one observation. For a group of n
observations x_1..x_n we report the mean, the sample standard deviation s (n - 1 in the
denominator), and, only when n >= MIN_N_INTERVAL (3), the two-sided Student-t interval

    mean +- t_{1 - alpha/2, n-1} * s / sqrt(n)          (alpha = 1 - confidence, default 0.95)

clipped to the metric's range (`bounds`, default [0, 1]). With n = 2 the t-interval is
12.7 standard errors wide and crosses the range ("65.2 +- 144.0"): it is left null. NaN values
are dropped. Attack verdicts use a cluster bootstrap over speakers instead (verdicts.py);
`INTERVAL` names this one for captions.

>>> round(t_critical(4), 4)
3.1824
>>> s = summarize(pl.DataFrame({"g": ["a"] * 4, "v": [0.60, 0.62, 0.64, 0.66]}), ["g"], "v")
>>> [round(x, 4) for x in s.row(0)[1:]]
[4, 0.63, 0.0258, 0.5889, 0.6711]
"""

from __future__ import annotations

import math

import polars as pl

CONFIDENCE = 0.95
MIN_N_INTERVAL = 3
INTERVAL = "95% t-interval over runs (n >= 3 only, clipped to the range)"


def t_critical(n: int, *, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for a mean of n observations (nan when n < 2)."""
    if n < 2:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def summarize(
    frame: pl.DataFrame,
    by: list[str],
    value: str,
    *,
    prefix: str | None = None,
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> pl.DataFrame:
    """One row per group of `by`: n, mean, std, ci_low, ci_high of column `value`.

    Output columns are `{prefix}_n, {prefix}_mean, ...` (prefix defaults to `value`); the
    interval is null below MIN_N_INTERVAL observations and clipped to `bounds`.
    """
    p = prefix or value
    v = pl.col(value).cast(pl.Float64)
    clean = frame.filter(v.is_not_null() & v.is_not_nan())
    out = clean.group_by(by, maintain_order=True).agg(
        v.count().alias(f"{p}_n"), v.mean().alias(f"{p}_mean"), v.std(ddof=1).alias(f"{p}_std")
    )
    crit = pl.Series(
        [t_critical(int(n), confidence=confidence) for n in out[f"{p}_n"]], dtype=pl.Float64
    )
    half = pl.lit(crit) * pl.col(f"{p}_std") / pl.col(f"{p}_n").cast(pl.Float64).sqrt()
    half = pl.when(pl.col(f"{p}_n") >= MIN_N_INTERVAL).then(half)
    lo, hi = bounds
    return out.with_columns(
        (pl.col(f"{p}_mean") - half).clip(lo, hi).alias(f"{p}_ci_low"),
        (pl.col(f"{p}_mean") + half).clip(lo, hi).alias(f"{p}_ci_high"),
    ).with_columns(pl.when(pl.col(f"{p}_n") >= 2).then(pl.col(f"{p}_std")).alias(f"{p}_std"))


def t_interval(
    values: list[float], *, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float | None, float | None]:
    """`summarize`'s rule for a plain list: the t-interval of the mean with n >= 3, clipped
    to `bounds`; (None, None) below that."""
    n = len(values)
    if n < MIN_N_INTERVAL:
        return None, None
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_critical(n) * std / math.sqrt(n)
    return max(bounds[0], mean - half), min(bounds[1], mean + half)


# bootstrap resamples and permutations of every verdict a user sees (table, report, figures):
# one count, so one cell prints the same interval and p-value wherever it appears
N_BOOT = 1000
N_PERM = 1000

"""Verdicts for numeric attributes (age): the strongest legitimate attacker's MAE gain over
the predict-the-shadow-mean baseline, with a cluster-bootstrap interval and a p-value.

Per cell (the verdict cell keys, `cells.CELL_KEYS`), the attacker (attack model x
adaptive x protocol; numeric rows have one calibration) with the largest mean gain
(baseline_mae - mae) over the cell's target runs wins. From its stored predictions
(`value`, `prediction`) and each evaluation's baseline prediction (`baseline_value`, the
shadow mean): pooled gain = (sum |baseline - y| - sum |prediction - y|) / n over runs; the
interval resamples runs, then speakers within runs (95% percentile); the one-sided
permutation test permutes speaker values within each run (p = (1 + #{perm gain >= observed})
/ (1 + n_perm)), Bonferroni-adjusted over the attackers that competed. `spearman` is the
mean over runs of the rows' Spearman correlation.

>>> runs = [(np.array([20.0, 60.0]), [np.array([25.0]), np.array([50.0])], 40.0)]
>>> pooled_gain(runs)
7.5
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from sergrad.analysis import load
from sergrad.analysis import tables as T
from sergrad.analysis.cells import (
    ATTACKER_KEYS,
    VERDICT_PROTOCOLS,
    cell_keys,
    evidence_rng,
    selection_adjusted,
    strongest,
)
from sergrad.analysis.stats import N_BOOT, N_PERM

INTERVAL = "95% cluster bootstrap of the MAE gain (runs, then speakers within runs)"
# One run: (true value per speaker [S], that speaker's predictions, the baseline's prediction)
Run = tuple[np.ndarray, list[np.ndarray], float]


def pooled_gain(runs: list[Run], weights: list[np.ndarray] | None = None) -> float:
    """(sum |baseline - y| - sum |prediction - y|) / n over every prediction of the runs."""
    gain = n = 0.0
    for i, (y, preds, base) in enumerate(runs):
        w = np.ones(len(y)) if weights is None else weights[i]
        for yy, p, ww in zip(y, preds, w):
            gain += ww * float(np.sum(np.abs(base - yy) - np.abs(p - yy)))
            n += ww * len(p)
    return gain / n if n > 0 else float("nan")


def bootstrap(runs: list[Run], *, n_boot: int, rng: np.random.Generator) -> tuple:
    if not runs or n_boot <= 0:
        return None, None
    stats = []
    for _ in range(n_boot):
        chosen = [runs[i] for i in rng.integers(0, len(runs), size=len(runs))]
        weights = [rng.multinomial(len(r[0]), np.full(len(r[0]), 1 / len(r[0]))) for r in chosen]
        g = pooled_gain(chosen, weights)
        if g == g:
            stats.append(g)
    if not stats:
        return None, None
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)


def permutation_pvalue(runs: list[Run], *, n_perm: int, rng: np.random.Generator):
    observed = pooled_gain(runs)
    if observed != observed or n_perm <= 0:
        return None
    hits = sum(
        pooled_gain([(rng.permutation(y), p, b) for y, p, b in runs]) >= observed - 1e-12
        for _ in range(n_perm)
    )
    return float((1 + hits) / (1 + n_perm))


def run_of(preds: pl.DataFrame, baseline: float) -> Run:
    """One evaluation's speakers: value, predictions, and the baseline's prediction."""
    p = preds.filter(pl.col("value").is_not_null() & pl.col("prediction").is_not_null())
    spk = pl.coalesce(pl.col("speaker_id"), pl.col("client_id").cast(pl.String)).alias("_spk")
    g = p.with_columns(spk).group_by("_spk").agg(pl.col("value").first(), pl.col("prediction"))
    g = g.sort("_spk")
    preds_ = [np.asarray(x, np.float64) for x in g["prediction"].to_list()]
    return g["value"].to_numpy().astype(np.float64), preds_, float(baseline)


def numeric_verdicts(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    n_avg: int = 1,
    extra_keys: list[str] | None = None,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    seed: int = 0,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
) -> pl.DataFrame:
    """One row per numeric cell: the attacker with the largest mean MAE gain, its pooled gain
    with interval and p-value, mae, baseline_mae, spearman, n_runs, n_speakers."""
    rows = T.attack_rows(store_uri, where=where)
    if "mae" not in rows.columns:
        return pl.DataFrame()
    rows = rows.filter(
        pl.col("protocol").is_in(protocols)
        & (pl.col("n_avg") == n_avg)
        & (pl.col("layer") != "none")
        & pl.col("mae").is_not_null()
    )
    if rows.is_empty():
        return pl.DataFrame()
    keys = cell_keys(extra_keys)
    attacker = [k for k in ATTACKER_KEYS if k not in keys]
    cand = rows.group_by([*keys, *attacker], maintain_order=True).agg(
        (pl.col("baseline_mae") - pl.col("mae")).mean().alias("gain_mean"),
        pl.col("mae").mean().alias("mae"),
        pl.col("baseline_mae").mean().alias("baseline_mae"),
        pl.col("spearman").mean().alias("spearman"),
        pl.col("degenerate").fill_null(False).any().alias("degenerate"),
        pl.col("eval_id").alias("eval_ids"),
        pl.col("baseline_value").alias("baselines"),
    )
    best = strongest(cand, keys, "gain_mean")
    ids = [e for lst in best["eval_ids"] for e in lst]
    preds = (
        load.scan(store_uri, "predictions")
        .filter(pl.col("eval_id").is_in(ids) & (pl.col("n_avg") == n_avg))
        .select("eval_id", "layer", "protocol", "speaker_id", "client_id", "value", "prediction")
        .collect()
    )
    by_eval = preds.partition_by(["eval_id", "layer", "protocol"], as_dict=True)
    out = []
    for row in best.iter_rows(named=True):
        evals = sorted(zip(row["eval_ids"], row["baselines"]))
        rng = evidence_rng(seed, row["layer"], row["protocol"], evals)
        runs = []
        for eid, base in evals:
            p = by_eval.get((eid, row["layer"], row["protocol"]))
            if p is not None and not p.is_empty() and base is not None:
                runs.append(run_of(p, base))
        full = len(runs) == len(evals)
        gain = pooled_gain(runs) if full else row["gain_mean"]
        lo, hi = bootstrap(runs, n_boot=n_boot, rng=rng) if full else (None, None)
        pval = permutation_pvalue(runs, n_perm=n_perm, rng=rng) if full else None
        out.append({
            **{k: row[k] for k in [*keys, *attacker]},
            "mae_gain": gain, "mae_gain_ci_low": lo, "mae_gain_ci_high": hi,
            "mae": row["mae"], "baseline_mae": row["baseline_mae"], "spearman": row["spearman"],
            **selection_adjusted(pval, row["n_candidates"]),
            "degenerate": row["degenerate"], "n_runs": len(evals),
            "n_speakers": int(sum(len(r[0]) for r in runs)) if full else None,
            "n_candidates": row["n_candidates"],
            "interval": INTERVAL if full else "none (no stored predictions)",
        })  # fmt: skip
    return pl.DataFrame(out, infer_schema_length=None).sort(keys, nulls_last=False)


def numeric_text(row: dict) -> str:
    """'MAE 7.4 vs 14.3 (baseline) ...: gain 6.9 [4.1, 10.7] (Spearman 0.82, p=0.002, 24
    speakers, 2 runs; logreg_stats)', or 'no leak detected at this sample size: ...'."""
    g = row["mae_gain"]
    ci = (f" [{row['mae_gain_ci_low']:.2f}, {row['mae_gain_ci_high']:.2f}]"
          if row.get("mae_gain_ci_low") is not None else " (no interval)")  # fmt: skip
    p = row.get("p_value")
    stat = f"p={p:.2g}, " if p is not None else ""
    n = f"{row['n_speakers']} speakers, " if row.get("n_speakers") else ""
    rho = row.get("spearman")
    rho_txt = f"Spearman {rho:.2f}, " if rho is not None and rho == rho else ""
    base = (f"MAE {row['mae']:.2f} vs {row['baseline_mae']:.2f} predicting the shadow mean: "
            f"gain {g:.2f}{ci} ({rho_txt}{stat}{n}{row['n_runs']} runs; {row['attack']})")  # fmt: skip
    if row.get("significant") is False:
        return f"no leak detected at this sample size: {base}"
    return base

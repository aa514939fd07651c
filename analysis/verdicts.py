"""One verdict per cell: the strongest legitimate attacker, with an honest interval and a p-value.

A cell is target corpus x feature set x algorithm x defense x level x layer. Its verdict is the
attacker (attack model x adaptive x calibration x protocol) with the highest mean per-client
success (UAR of the per-client protocols at one `n_avg`) over the cell's target runs. The
`oracle` calibration is an upper bound and never competes; a degenerate attacker (every
prediction one class, UAR 0.5 by construction) is chosen only when no other exists. Extra keys (e.g. adaptive,
calibration) split cells to compare attacker families.

Interval (clients are the unit): a cluster bootstrap pooled over the cell's runs (folds x
seeds): resample runs with replacement, then speakers within each run with replacement, and
recompute the pooled UAR of the stored predictions with each evaluation's own threshold
(`threshold` in `attacks`, fixed: the threshold's own variability is not resampled). Percentile
interval, so always inside [0, 1].

Test against chance: one-sided permutation test, permuting speaker labels within each run
(a speaker keeps one label); p = (1 + #{perm UAR >= observed}) / (1 + n_perm). A verdict that is
not significant reads "no leak detected at this sample size", never "chance". Selecting the
best of several attackers makes the observed maximum optimistic: `n_candidates` says how many
competed, and `significant` uses the Bonferroni-adjusted p (p x n_candidates, capped at 1:
`p_value_adjusted`); the interval is the winner's own, not adjusted for the selection. `eps_lb` is the cell's largest empirical epsilon lower bound over the competing
(shadow-calibrated) attackers, not only the winner's.

Cells whose evaluations have no stored predictions keep the mean over runs with no interval.

>>> y, k, n = np.array([1, 0]), np.array([3, 1]), np.array([4, 4])
>>> pooled_uar([(y, k, n)])
0.75
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import polars as pl

from sergrad.analysis import load
from sergrad.analysis import tables as T
from sergrad.analysis.stats import t_interval
from sergrad.privacy_bound import dp_attack_ceiling

VERDICT_PROTOCOLS: tuple[str, ...] = ("per_client", "per_client_vote")
LEGITIMATE: tuple[str, ...] = ("shadow", "prior")  # calibrations that may give a verdict
CELL_KEYS: list[str] = [*T.SETTING_KEYS, *T.DEFENSE_KEYS, "layer"]
ATTACKER_KEYS: list[str] = ["attack", "adaptive", "calibration", "protocol"]
ALPHA = 0.05
INTERVAL = "95% cluster bootstrap (runs, then speakers within runs)"

# One run's clusters: (label per speaker [C], predicted-male count [C], predictions [C]).
Clusters = tuple[np.ndarray, np.ndarray, np.ndarray]


def pooled_uar(runs: list[Clusters], weights: list[np.ndarray] | None = None) -> float:
    """UAR of all predictions pooled over runs; `weights` multiply each speaker's counts."""
    tp = pos = tn = neg = 0.0
    for i, (y, k, n) in enumerate(runs):
        w = 1.0 if weights is None else weights[i]
        m = y == 1
        tp += float(np.sum((w * k)[m]))
        pos += float(np.sum((w * n)[m]))
        tn += float(np.sum((w * (n - k))[~m]))
        neg += float(np.sum((w * n)[~m]))
    if pos == 0 or neg == 0:
        return float("nan")
    return 0.5 * (tp / pos + tn / neg)


def cluster_bootstrap(
    runs: list[Clusters], *, n_boot: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the pooled UAR: runs resampled, then speakers within runs."""
    if not runs or n_boot <= 0:
        return float("nan"), float("nan")
    stats = []
    for _ in range(n_boot):
        picks = rng.integers(0, len(runs), size=len(runs))
        chosen = [runs[i] for i in picks]
        weights = [rng.multinomial(len(r[0]), np.full(len(r[0]), 1 / len(r[0]))) for r in chosen]
        u = pooled_uar(chosen, weights)
        if u == u:
            stats.append(u)
    if not stats:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi)


def permutation_pvalue(runs: list[Clusters], *, n_perm: int, rng: np.random.Generator) -> float:
    """One-sided p-value of the pooled UAR against chance, permuting speaker labels in runs."""
    observed = pooled_uar(runs)
    if observed != observed or n_perm <= 0:
        return float("nan")
    hits = 0
    for _ in range(n_perm):
        perm = [(rng.permutation(y), k, n) for y, k, n in runs]
        hits += pooled_uar(perm) >= observed - 1e-12
    return (1 + hits) / (1 + n_perm)


def clusters_of(preds: pl.DataFrame, threshold: float) -> Clusters:
    """Per speaker of one evaluation: label, count predicted male at `threshold`, count."""
    g = (
        preds.filter(pl.col("gender").is_in(["F", "M"]))
        .with_columns(
            (pl.col("p_male") >= threshold).cast(pl.Int64).alias("_hit"),
            pl.coalesce(pl.col("speaker_id"), pl.col("client_id").cast(pl.String)).alias("_spk"),
        )
        .group_by("_spk")
        .agg(
            (pl.col("gender").first() == "M").cast(pl.Int64).alias("y"),
            pl.col("_hit").sum().alias("k"),
            pl.len().alias("n"),
        )
        .sort("_spk")
    )
    return tuple(g[c].to_numpy().astype(np.int64 if c == "y" else np.float64) for c in "ykn")  # type: ignore[return-value]


def candidates(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    n_avg: int = 1,
    extra_keys: list[str] | None = None,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
) -> pl.DataFrame:
    """Mean per-client success per cell x attacker (legitimate calibrations only)."""
    rows = T.attack_rows(store_uri, where=where)
    cal = pl.col("calibration").fill_null("shadow")
    rows = rows.with_columns(cal.alias("calibration")).filter(
        pl.col("protocol").is_in(protocols)
        & (pl.col("n_avg") == n_avg)
        & (pl.col("layer") != "none")
        & pl.col("calibration").is_in(LEGITIMATE)
        & pl.col("uar").is_not_null()
    )
    keys = [*CELL_KEYS, *(extra_keys or [])]
    attacker = [k for k in ATTACKER_KEYS if k not in keys]
    return rows.group_by([*keys, *attacker], maintain_order=True).agg(
        pl.col("uar").mean().alias("uar_mean"),
        pl.col("auc").mean().alias("auc_mean"),
        pl.col("tpr_at_10fpr").mean().alias("tpr_at_10fpr_mean"),
        pl.col("degenerate").fill_null(False).any().alias("degenerate"),
        pl.col("eval_id").alias("eval_ids"),
        pl.col("threshold").fill_null(0.5).alias("thresholds"),
        pl.col("ser_uar").alias("ser_uars"),
        pl.col("eps_lb").max().alias("eps_lb"),
        pl.col("epsilon").max().alias("epsilon"),
        pl.col("delta").max().alias("delta"),
        pl.col("dp_protects").drop_nulls().first().alias("dp_protects"),
    )


def verdicts(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    n_avg: int = 1,
    extra_keys: list[str] | None = None,
    n_boot: int = 1000,
    n_perm: int = 1000,
    seed: int = 0,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
) -> pl.DataFrame:
    """One row per cell (x extra_keys): the strongest attacker, its pooled per-client UAR with
    the cluster-bootstrap interval, p-value, n_runs, n_clients and how many attackers competed."""
    keys = [*CELL_KEYS, *(extra_keys or [])]
    cand = candidates(
        store_uri, where=where, n_avg=n_avg, extra_keys=extra_keys, protocols=protocols
    )
    if cand.is_empty():
        return pl.DataFrame()
    counted = cand.group_by(keys, maintain_order=True).agg(
        pl.len().alias("n_candidates"), pl.col("eps_lb").max().alias("cell_eps_lb")
    )
    best = (
        cand.sort(["degenerate", "uar_mean"], descending=[False, True], nulls_last=True)
        .unique(subset=keys, keep="first", maintain_order=True)
        .join(counted, on=keys, how="left", nulls_equal=True)
    )
    ids = [e for lst in best["eval_ids"] for e in lst]
    preds = (
        load.scan(store_uri, "predictions")
        .filter(
            pl.col("eval_id").is_in(ids)
            & (pl.col("n_avg") == n_avg)
            & pl.col("protocol").is_in(protocols)
        )
        .select("eval_id", "layer", "protocol", "speaker_id", "client_id", "gender", "p_male")
        .collect()
    )
    by_eval = preds.partition_by(["eval_id", "layer", "protocol"], as_dict=True)
    out = []
    for row in best.iter_rows(named=True):
        runs, speakers = [], set()
        evals = sorted(zip(row["eval_ids"], row["thresholds"]))
        rng = _evidence_rng(seed, row["layer"], row["protocol"], evals)
        for eid, t in evals:
            p = by_eval.get((eid, row["layer"], row["protocol"]))
            if p is not None and not p.is_empty():
                runs.append(clusters_of(p, t))
                speakers.update(p["speaker_id"].drop_nulls().to_list())
        full = len(runs) == len(row["eval_ids"])
        uar = pooled_uar(runs) if full else row["uar_mean"]
        lo, hi = cluster_bootstrap(runs, n_boot=n_boot, rng=rng) if full else (None, None)
        pval = permutation_pvalue(runs, n_perm=n_perm, rng=rng) if full else None
        ser = [s for s in row["ser_uars"] if s is not None and s == s]
        ser_lo, ser_hi = t_interval(ser)
        out.append({
            **{k: row[k] for k in [*keys, *ATTACKER_KEYS]},
            "uar": uar, "uar_ci_low": lo, "uar_ci_high": hi, "p_value": pval,
            "p_value_adjusted": None if pval is None else min(1.0, pval * row["n_candidates"]),
            "significant": None if pval is None else pval * row["n_candidates"] < ALPHA,
            "auc": row["auc_mean"], "tpr_at_10fpr": row["tpr_at_10fpr_mean"],
            "degenerate": row["degenerate"], "eps_lb": row["cell_eps_lb"],
            "epsilon": row["epsilon"], "delta": row["delta"], "dp_protects": row["dp_protects"],
            "n_runs": len(row["eval_ids"]),
            "n_clients": int(sum(len(r[0]) for r in runs)) if full else None,
            "n_speakers": len(speakers) if full else None,
            "n_candidates": row["n_candidates"],
            "ser_uar_mean": float(np.mean(ser)) if ser else None, "ser_n": len(ser),
            "ser_ci_low": ser_lo, "ser_ci_high": ser_hi,
            "interval": INTERVAL if full else "none (no stored predictions)",
        })  # fmt: skip
    frame = pl.DataFrame(out, infer_schema_length=None)
    return frame.sort(keys, nulls_last=False)


def _evidence_rng(seed: int, layer: str, protocol: str, evals: list) -> np.random.Generator:
    """A generator seeded by the evidence itself (evaluations, thresholds, layer, protocol), so a
    cell's interval and p-value are the same whatever else the query selects or its order."""
    ident = json.dumps([seed, layer, protocol, [[e, float(t)] for e, t in evals]])
    return np.random.default_rng(
        int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "little")
    )


def verdict_tradeoff(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
    n_avg: int = 1,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
    n_boot: int = 1000,
    n_perm: int = 1000,
) -> pl.DataFrame:
    """Verdicts on one layer (default fc1) with the SER UAR of the defended target runs, the
    accountant's epsilon and the DP ceiling where a user-level guarantee applies."""
    v = verdicts(store_uri, where=where, n_avg=n_avg, protocols=protocols, n_boot=n_boot,
                 n_perm=n_perm)  # fmt: skip
    if v.is_empty():
        return v
    v = v.filter(pl.col("layer") == T.resolve_layer(v, layer))
    ceil = [
        None if e is None or e != e else dp_attack_ceiling(e, d if d is not None and d == d else 0)
        for e, d in zip(v["epsilon"], v["delta"])
    ]
    return v.with_columns(
        pl.Series("ceiling", ceil, dtype=pl.Float64),
        (pl.col("dp_protects") == "speakers").fill_null(False).alias("ceiling_applies"),
    )


def verdict_text(row: dict) -> str:
    """'83.1% [75.2, 90.0] (AUC 0.90, p=0.001, 40 speakers, 4 runs; cnn, prior)', or the honest
    'no leak detected at this sample size' / 'degenerate threshold' forms; never 'chance'."""
    u = row["uar"]
    if u is None or u != u:
        return "no data"
    ci = (
        f" [{row['uar_ci_low'] * 100:.1f}, {row['uar_ci_high'] * 100:.1f}]"
        if row.get("uar_ci_low") is not None
        else " (no interval)"
    )
    who = f"{row['attack']}{' adaptive' if row['adaptive'] else ''}, {row['calibration']}"
    n = f"{row['n_speakers']} speakers, " if row.get("n_speakers") else ""
    p = row.get("p_value")
    pa = row.get("p_value_adjusted")
    stat = f"p={p:.2g}, " if p is not None else ""
    if pa is not None and p is not None and pa != p:
        stat = f"p={p:.2g} (x{row['n_candidates']} attackers: {pa:.2g}), "
    auc = row.get("auc")
    auc_txt = f"AUC {auc:.2f}" if auc is not None and auc == auc else "AUC unknown"
    base = f"{u * 100:.1f}%{ci} ({auc_txt}, {stat}{n}{row['n_runs']} runs; {who})"
    if row.get("degenerate") and row.get("significant") is not True:
        return f"degenerate threshold (every prediction one class; {auc_txt}), not evidence of privacy: {base}"
    if row.get("significant") is False:
        return f"no leak detected at this sample size: {base}"
    return base

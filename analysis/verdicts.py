"""One verdict per cell: the strongest legitimate attacker, with an honest interval and a p-value.

A cell is attacked attribute x target corpus x feature set x algorithm x defense x level x
layer (rows written before attributes existed are gender). Its verdict is the
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
Binary and categorical attributes share this machinery: the pooled UAR is the mean over
classes of the pooled recall, each evaluation's decision replayed from its stored threshold
(binary) or class offsets (categorical: argmax of log P(c|x) + offset_c); `chance` = 1 /
classes. Numeric attributes (age) get their verdict from `verdicts_numeric` (MAE gain over
the predict-the-shadow-mean baseline), appended below the class rows.

>>> y, k, n = np.array([1, 0]), np.array([3, 1]), np.array([4, 4])
>>> pooled_uar([(y, k, n)])
0.75
"""

from __future__ import annotations

import json
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
from sergrad.analysis.stats import N_BOOT, N_PERM, t_interval
from sergrad.analysis.verdicts_numeric import numeric_text, numeric_verdicts
from sergrad.privacy_bound import dp_attack_ceiling

LEGITIMATE: tuple[str, ...] = ("shadow", "prior")  # calibrations that may give a verdict
INTERVAL = "95% cluster bootstrap (runs, then speakers within runs)"

# One run's clusters, per speaker S: (class index [S], predicted-class counts [S, C] (binary:
# predicted-male count [S]), predictions [S]).
Clusters = tuple[np.ndarray, np.ndarray, np.ndarray]


def _class_counts(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """[S, C] predicted-class counts; a binary [S] predicted-male count becomes [n - k, k]."""
    k = np.asarray(k, np.float64)
    return np.column_stack([np.asarray(n, np.float64) - k, k]) if k.ndim == 1 else k


def pooled_uar(runs: list[Clusters], weights: list[np.ndarray] | None = None) -> float:
    """UAR (mean over classes of the pooled recall) of all predictions pooled over runs;
    `weights` multiply each speaker's counts. NaN when a class has no prediction."""
    hit = total = None
    for i, (y, k, n) in enumerate(runs):
        w = np.ones(len(y)) if weights is None else np.asarray(weights[i], np.float64)
        counts = _class_counts(k, n)  # [S, C]
        if hit is None:
            hit, total = np.zeros(counts.shape[1]), np.zeros(counts.shape[1])
        y = np.asarray(y, np.int64)
        np.add.at(hit, y, w * counts[np.arange(len(y)), y])
        np.add.at(total, y, w * np.asarray(n, np.float64))
    if hit is None or (total == 0).any():
        return float("nan")
    return float(np.mean(hit / total))


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


def categorical_clusters(preds: pl.DataFrame, classes: list[str], offsets: list[float]) -> Clusters:
    """Per speaker of one categorical evaluation: class index, predicted-class counts [S, C]
    under the decision argmax(log P(c|x) + offset_c), count."""
    p = preds.filter(pl.col("label").is_in(classes) & pl.col("proba").is_not_null())
    if p.is_empty():
        return np.zeros(0, np.int64), np.zeros((0, len(classes))), np.zeros(0)
    spk = p.select(
        pl.coalesce(pl.col("speaker_id"), pl.col("client_id").cast(pl.String))
    ).to_series()
    proba = np.array(p["proba"].to_list(), np.float64)  # [N, C]
    pred = (np.log(np.maximum(proba, 1e-300)) + np.asarray(offsets)).argmax(axis=1)
    names, inv = np.unique(spk.to_numpy().astype(str), return_inverse=True)
    counts = np.zeros((len(names), len(classes)))
    np.add.at(counts, (inv, pred), 1.0)
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros(len(names), np.int64)
    y[inv] = [index[c] for c in p["label"].to_list()]
    return y, counts, counts.sum(axis=1)


def clusters_of(
    preds: pl.DataFrame, threshold: float, classes: tuple[str, str] = ("F", "M")
) -> Clusters:
    """Per speaker of one binary evaluation: label (1 = classes[1]: male for gender), count
    predicted classes[1] at `threshold` (`p_male` holds P(classes[1])), count. The label is
    the predictions' `label`, else (older stores) their `gender`."""
    truth = pl.coalesce(pl.col("label"), pl.col("gender")) if "label" in preds.columns else None
    truth = pl.col("gender") if truth is None else truth
    g = (
        preds.with_columns(truth.alias("_truth"))
        .filter(pl.col("_truth").is_in(list(classes)))
        .with_columns(
            (pl.col("p_male") >= threshold).cast(pl.Int64).alias("_hit"),
            pl.coalesce(pl.col("speaker_id"), pl.col("client_id").cast(pl.String)).alias("_spk"),
        )
        .group_by("_spk")
        .agg(
            (pl.col("_truth").first() == classes[1]).cast(pl.Int64).alias("y"),
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
    keys = cell_keys(extra_keys)
    attacker = [k for k in ATTACKER_KEYS if k not in keys]
    return rows.group_by([*keys, *attacker], maintain_order=True).agg(
        pl.col("uar").mean().alias("uar_mean"),
        pl.col("auc").mean().alias("auc_mean"),
        pl.col("tpr_at_10fpr").mean().alias("tpr_at_10fpr_mean"),
        pl.col("degenerate").fill_null(False).any().alias("degenerate"),
        pl.col("eval_id").alias("eval_ids"),
        pl.col("threshold").fill_null(0.5).alias("thresholds"),
        pl.col("class_offsets").alias("offsets"),
        pl.col("classes").drop_nulls().first().alias("classes"),
        pl.col("chance").fill_null(0.5).first().alias("chance"),
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
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    seed: int = 0,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
) -> pl.DataFrame:
    """One row per cell (x extra_keys): the strongest attacker, its pooled per-client UAR with
    the cluster-bootstrap interval, p-value, n_runs, n_clients and how many attackers competed."""
    keys = cell_keys(extra_keys)
    cand = candidates(
        store_uri, where=where, n_avg=n_avg, extra_keys=extra_keys, protocols=protocols
    )
    if cand.is_empty():
        return numeric_verdicts(store_uri, where=where, n_avg=n_avg, extra_keys=extra_keys,
                                n_boot=n_boot, n_perm=n_perm, seed=seed, protocols=protocols)  # fmt: skip
    best = strongest(cand, keys, "uar_mean", pl.col("eps_lb").max().alias("cell_eps_lb"))
    ids = [e for lst in best["eval_ids"] for e in lst]
    preds = (
        load.scan(store_uri, "predictions")
        .filter(
            pl.col("eval_id").is_in(ids)
            & (pl.col("n_avg") == n_avg)
            & pl.col("protocol").is_in(protocols)
        )
        .select(
            "eval_id",
            "layer",
            "protocol",
            "speaker_id",
            "client_id",
            "gender",
            "p_male",
            "label",
            "proba",
        )  # fmt: skip
        .collect()
    )
    by_eval = preds.partition_by(["eval_id", "layer", "protocol"], as_dict=True)
    out = []
    for row in best.iter_rows(named=True):
        runs, speakers = [], set()
        evals = sorted(zip(row["eval_ids"], row["thresholds"]))
        offsets = dict(zip(row["eval_ids"], row["offsets"]))
        classes = json.loads(row["classes"]) if row["classes"] else None
        rng = evidence_rng(seed, row["layer"], row["protocol"], [[e, float(t)] for e, t in evals])
        for eid, t in evals:
            p = by_eval.get((eid, row["layer"], row["protocol"]))
            if p is not None and not p.is_empty():
                if offsets.get(eid):  # categorical: replay its class offsets
                    runs.append(categorical_clusters(p, classes, json.loads(offsets[eid])))
                else:
                    runs.append(clusters_of(p, t, tuple(classes or ("F", "M"))))
                speakers.update(p["speaker_id"].drop_nulls().to_list())
        full = len(runs) == len(row["eval_ids"])
        uar = pooled_uar(runs) if full else row["uar_mean"]
        lo, hi = cluster_bootstrap(runs, n_boot=n_boot, rng=rng) if full else (None, None)
        pval = permutation_pvalue(runs, n_perm=n_perm, rng=rng) if full else None
        ser = [s for s in row["ser_uars"] if s is not None and s == s]
        ser_lo, ser_hi = t_interval(ser)
        out.append({
            **{k: row[k] for k in [*keys, *ATTACKER_KEYS]},
            "uar": uar, "chance": row["chance"], "uar_ci_low": lo, "uar_ci_high": hi,
            **selection_adjusted(pval, row["n_candidates"]),
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
    numeric = numeric_verdicts(store_uri, where=where, n_avg=n_avg, extra_keys=extra_keys,
                               n_boot=n_boot, n_perm=n_perm, seed=seed, protocols=protocols)  # fmt: skip
    if not numeric.is_empty():
        frame = pl.concat([frame, numeric], how="diagonal_relaxed") if out else numeric
    return frame.sort(keys, nulls_last=False)


def verdict_tradeoff(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
    n_avg: int = 1,
    protocols: tuple[str, ...] = VERDICT_PROTOCOLS,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
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
    if row.get("uar") is None and row.get("mae_gain") is not None:
        return numeric_text(row)
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
    chance = row.get("chance")
    chance_txt = f"chance {chance * 100:.0f}%, " if chance is not None and chance != 0.5 else ""
    base = f"{u * 100:.1f}%{ci} ({chance_txt}{auc_txt}, {stat}{n}{row['n_runs']} runs; {who})"
    if row.get("degenerate") and row.get("significant") is not True:
        return f"degenerate threshold (every prediction one class; {auc_txt}), not evidence of privacy: {base}"
    if row.get("significant") is False:
        return f"no leak detected at this sample size: {base}"
    return base

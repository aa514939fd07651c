"""Leakage against the cohort size under secure aggregation (sergrad.attack.secagg rows).

Two threat models, two panels per attacked attribute (a row each), x = clients per round
(the cohort size k), one line per algorithm and sampling:
- composition (`secagg_aggregate`, honest sampling): Spearman correlation between the
  predicted and the true fraction of the attribute in each round's cohort. One target run:
  its 95% bootstrap interval over rounds and its permutation p; several runs: the mean with
  a 95% Student-t interval over runs (n >= 3) and the largest p (conservative).
- differencing (`secagg_controlled_sampling`, the server chooses the cohorts): the verdict
  machinery's pooled per-client UAR (95% cluster bootstrap over runs and speakers,
  permutation p adjusted for the thresholds that competed) of the per-client attack on (S + {i}) - S aggregate differences, per way
  the server formed them (two rounds: approximate; two sessions of one round: exact).
Hollow markers: p >= 0.05 (no leak detected at this sample size, not proof of privacy).
"""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl

from sergrad.analysis import figure as F
from sergrad.analysis import load
from sergrad.analysis import verdicts as V
from sergrad.analysis.query import apply_where
from sergrad.analysis.stats import t_interval
from sergrad.errors import DataError

AGGREGATE, CONTROLLED = "secagg_aggregate", "secagg_controlled_sampling"
SAMPLING_LABELS = {  # runs' defense label -> how the server formed the cohorts
    "secure_aggregation": "uniform sampling",
    "secure_aggregation_differencing": "S+{i}, S in two rounds",
    "secure_aggregation_same_round": "S+{i}, S in one round",
}
SAMPLING_STYLES = {"secure_aggregation_differencing": "--", "secure_aggregation_same_round": ":"}


def _rows(store_uri, where) -> pl.DataFrame:
    lf = load.results(store_uri).filter(pl.col("status") == "ok")
    if "threat_model" not in lf.collect_schema().names():
        return pl.DataFrame()
    lf = lf.filter(pl.col("threat_model").is_in([AGGREGATE, CONTROLLED]))
    return apply_where(lf, where).collect().with_columns(pl.col("attribute").fill_null("gender"))


def has_secagg_rows(store_uri: str | os.PathLike) -> bool:
    try:
        return not _rows(store_uri, None).is_empty()
    except (DataError, pl.exceptions.PolarsError, OSError):
        return False


def cohort_table(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """One row per (threat model, attribute, algorithm, defense, cohort size, layer): the
    leakage statistic, its interval, p-value and n (runs, and aggregates or clients scored)."""
    rows = _rows(store_uri, where)
    if rows.is_empty():
        raise DataError("no secure-aggregation attack rows (threat_model secagg_*)")
    keys = ["attribute", "algorithm", "defense_name", "cohort_size", "layer"]
    out = []
    comp = rows.filter(pl.col("threat_model") == AGGREGATE)
    for key, g in comp.group_by(keys, maintain_order=True):
        rho = [v for v in g["spearman"].to_list() if v is not None and v == v]
        single = g.height == 1
        lo, hi = ((g["spearman_ci_low"][0], g["spearman_ci_high"][0]) if single
                  else t_interval(rho, bounds=(-1.0, 1.0)))  # fmt: skip
        ps = [p for p in g["p_value"].to_list() if p is not None]
        out.append({"threat_model": AGGREGATE, **dict(zip(keys, key)),
                    "statistic": "spearman", "regressed": _regressed(g["config"].to_list()),
                    "value": float(np.mean(rho)) if rho else None,
                    "ci_low": lo, "ci_high": hi, "p_value": max(ps) if ps else None,
                    "mae": g["mae"].mean(), "baseline_mae": g["baseline_mae"].mean(),
                    "uar": g["uar"].mean(),
                    "n_runs": g.height, "n_scored": int(g["n_scored"].sum())})  # fmt: skip
    if rows.filter(pl.col("threat_model") == CONTROLLED).height:
        v = V.verdicts(store_uri, where=_and(where, "threat_model", CONTROLLED),
                       protocols=("per_client",))  # fmt: skip
        on = ["attribute", "algorithm", "defense_name", "level"]
        sizes = rows.filter(pl.col("threat_model") == CONTROLLED).group_by(on).agg(
            pl.col("cohort_size").first())  # fmt: skip
        for r in v.join(sizes, on=on).iter_rows(named=True):
            out.append({"threat_model": CONTROLLED, **{k: r[k] for k in keys},
                        "statistic": "per-client UAR", "regressed": None, "value": r["uar"],
                        "ci_low": r["uar_ci_low"], "ci_high": r["uar_ci_high"],
                        "p_value": r["p_value_adjusted"], "mae": None, "baseline_mae": None,
                        "uar": r["uar"],
                        "n_runs": r["n_runs"], "n_scored": r["n_clients"]})  # fmt: skip
    return pl.DataFrame(out, infer_schema_length=None).sort(["threat_model", *keys])


def cohort_one_check(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """With one client per round the aggregate is the client's update and the composition
    regression is a per-client classifier: its UAR (threshold 0.5) beside the per-update
    attack on the undefended runs of the same sweep (individual_updates, shadow calibration,
    the best attack model), per attribute, algorithm and layer. Empty when either side is missing."""
    rows = _rows(store_uri, where)
    one = rows.filter((pl.col("threat_model") == AGGREGATE) & (pl.col("cohort_size") == 1))
    if one.is_empty():
        return pl.DataFrame()
    direct = apply_where(load.results(store_uri).filter(pl.col("status") == "ok"), where)
    direct = direct.with_columns(pl.col("attribute").fill_null("gender")).filter(
        (pl.col("threat_model") == "individual_updates") & (pl.col("defense_name") == "none")
        & (pl.col("protocol") == "per_update") & (pl.col("calibration") == "shadow")
    ).collect()  # fmt: skip
    if direct.is_empty():
        return pl.DataFrame()
    keys = ["attribute", "algorithm", "layer"]  # one attribute's cohort beside its own attack
    best = (direct.sort("uar", descending=True, nulls_last=True)
            .unique(subset=keys, keep="first", maintain_order=True)
            .select(*keys, pl.col("attack").alias("per_update_attack"),
                    pl.col("uar").alias("per_update_uar"), pl.col("uar_ci_low").alias("per_update_ci_low"),
                    pl.col("uar_ci_high").alias("per_update_ci_high"),
                    pl.col("n_scored").alias("per_update_n")))  # fmt: skip
    mine = one.group_by(keys).agg(pl.col("uar").mean().alias("cohort1_uar"),
                                  pl.col("n_scored").sum().alias("cohort1_n"))  # fmt: skip
    return mine.join(best, on=keys, how="inner").sort(keys)


def _regressed(configs: list) -> str | None:
    """ "attribute=value" whose share the rows' evaluation regressed (its stored config)."""
    for text in configs:
        cfg = json.loads(text or "{}")
        if cfg.get("positive") is not None:
            return f"{cfg.get('attribute', 'gender')}={cfg['positive']}"
    return None


def _and(where: str | None, column: str, value: str) -> str:
    clause = f"{column} = '{value}'"
    return clause if not where else f"({where}) AND {clause}"


def plot_cohort(
    store_uri: str | os.PathLike, out: str | os.PathLike, *, where: str | None = None
) -> pl.DataFrame:
    F.check_output(out)
    data = cohort_table(store_uri, where=where)
    attributes = sorted(data["attribute"].unique().to_list())
    fig, axes = F.panels(2 * len(attributes), width=4.8, height=3.6, max_cols=2)
    titles = {AGGREGATE: "Cohort composition from the aggregate\n(honest sampling)",
              CONTROLLED: "Per-client by differencing\n(server controls sampling)"}  # fmt: skip
    series = data.select("algorithm", "defense_name").unique().sort(["defense_name", "algorithm"])
    algos = list(series.iter_rows())
    ticks = sorted(data["cohort_size"].unique().to_list())
    panels = [(a, tm) for a in attributes for tm in (AGGREGATE, CONTROLLED)]
    for ax, (attribute, tm) in zip(axes, panels):
        sub = data.filter((pl.col("threat_model") == tm) & (pl.col("attribute") == attribute))
        ns: set[int] = set()
        if tm == AGGREGATE:  # honest sampling only (the table keeps every sampling)
            sub = sub.filter(pl.col("defense_name") == "secure_aggregation")
        for i, (algo, dname) in enumerate(algos):
            s = sub.filter((pl.col("algorithm") == algo) & (pl.col("defense_name") == dname))
            s = s.sort("cohort_size")
            if s.is_empty():
                continue
            x = s["cohort_size"].to_numpy().astype(float) * (1 + F.dodge(i, len(algos)))
            y = s["value"].to_numpy().astype(float)
            lo = s["ci_low"].fill_null(np.nan).to_numpy().astype(float)
            hi = s["ci_high"].fill_null(np.nan).to_numpy().astype(float)
            err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
            c = F.colour(i)
            how = SAMPLING_LABELS.get(dname, dname)
            ax.errorbar(x, y, yerr=err, color=c, lw=1.2, capsize=3, label=f"{algo}, {how}",
                        ls=SAMPLING_STYLES.get(dname, "-"))  # fmt: skip
            sig = s["p_value"].fill_null(1.0).to_numpy() < 0.05
            ax.scatter(x[sig], y[sig], color=c, zorder=3, s=25)
            ax.scatter(x[~sig], y[~sig], facecolor="white", edgecolor=c, zorder=3, s=25)
            ns.update(s["n_scored"].to_list())
        ax.axhline(0.0 if tm == AGGREGATE else 0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        unit = "aggregates" if tm == AGGREGATE else "speakers"
        span = f"{min(ns)}" if len(ns) == 1 else f"{min(ns)}-{max(ns)}" if ns else "0"
        shown = f"n = {span} {unit} per point"
        ax.set_xlabel(f"clients per round (cohort size); {shown}")
        what = next((r for r in sub["regressed"].to_list() if r), attribute)
        ax.set_ylabel(f"Spearman(predicted, true share {what})"
                      if tm == AGGREGATE else f"per-client UAR, {attribute}")  # fmt: skip
        ax.set_title(f"{attribute}: {titles[tm]}", fontsize=9)
        ax.grid(alpha=0.3)
        if sub.is_empty():
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    F.legend_outside(fig, axes, title="algorithm, sampling (hollow: p >= 0.05)")
    F.suptitle(fig, "Leakage under secure aggregation against the cohort size (bars: 95% "
               "intervals; dotted: chance)", fontsize=10)  # fmt: skip
    F.save(fig, out)
    return data

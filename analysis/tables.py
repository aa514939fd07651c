"""Tables in the paper's shape, from a results store (mean over folds x seeds; a 95% t-interval
only with n >= 3 runs, clipped to [0, 1]: see stats.py).

Every attack table carries, beside the chosen metric, the means of the threshold-free metrics
(`auc_mean`, `tpr_at_1fpr_mean`, `tpr_at_10fpr_mean`) and `n_degenerate` (evaluations whose
predictions were all one class: a threshold artifact, never "chance"). Rows are split by
`calibration` (shadow | prior | oracle; oracle is an upper bound, never a verdict).

- `ser_table`: SER test UAR and accuracy per corpus x feature set x algorithm (undefended
  target runs by default; shadow runs and failed runs excluded).
- `layer_table`: attack metric per attribute x target corpus x feature x algorithm x attack x
  layer (every attack table is split by the attacked `attribute`).
- `updates_table`: attack metric against the number of averaged updates (n_avg; 0 = all).
- `tradeoff_table`: per defense and level, the SER UAR of the defended target runs beside
  the attack metric, with epsilon and the DP ceiling on balanced attack accuracy where the
  runs report a user-level guarantee.

Defenses are labelled by `defense_name` / `level`: the in-loop defense of the target run, or
"<posthoc> (post-hoc)" for a defense applied to stored updates by the attack (the target
run's SER UAR is then the undefended one). See stats.py for the interval.
"""

from __future__ import annotations

import os

import polars as pl

from sergrad.analysis import load
from sergrad.analysis.query import apply_where
from sergrad.analysis.stats import summarize
from sergrad.errors import ConfigError, DataError
from sergrad.privacy_bound import dp_attack_ceiling

METRICS: tuple[str, ...] = ("uar", "acc", "auc", "tpr_at_1fpr", "tpr_at_10fpr")
CHANCE: dict[str, float] = {
    "uar": 0.5,
    "acc": 0.5,
    "auc": 0.5,
    "tpr_at_1fpr": 0.01,
    "tpr_at_10fpr": 0.1,
}


def chance_of(frame: pl.DataFrame, metric: str = "uar") -> float:
    """Chance level of `metric` for the rows of one panel: 1/classes of their attribute (the
    rows' `chance` column) for UAR and accuracy, else `CHANCE[metric]`."""
    if metric in ("uar", "acc") and "chance" in frame.columns:
        known = frame["chance"].drop_nulls()
        if known.len():
            return float(known[0])
    return CHANCE[metric]


SER_KEYS: list[str] = ["corpus", "feature_set", "algorithm"]
# the attacked attribute is a facet of every attack table, figure and verdict (older stores:
# gender); a gender UAR and an age_group UAR are never averaged together
SETTING_KEYS: list[str] = ["attribute", "target_corpus", "feature_set", "algorithm"]
DEFENSE_KEYS: list[str] = ["defense_name", "level"]
ATTACKER_KEYS: list[str] = ["attack", "adaptive", "calibration"]
THRESHOLD_FREE: tuple[str, ...] = ("auc", "tpr_at_1fpr", "tpr_at_10fpr")
NO_DEFENSE = load.NO_DEFENSE


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"metric {metric!r}: unknown; valid: {', '.join(METRICS)}")
    return metric


def attack_rows(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """Successful attack rows joined to their target run, with defense_name and level."""
    lf = load.results(store_uri).filter(pl.col("status") == "ok")
    lf = lf.with_columns(pl.col("calibration").fill_null("shadow"))  # stores before calibration
    return apply_where(lf, where).collect()


def attack_summary(rows: pl.DataFrame, keys: list[str], metric: str) -> pl.DataFrame:
    """summarize(metric) per group, plus the threshold-free metrics' means and n_degenerate.
    Numeric attributes (n_classes 0: MAE, no UAR) are left out: see verdicts_numeric."""
    if "n_classes" in rows.columns:
        rows = rows.filter(pl.col("n_classes").fill_null(2) != 0)
    out = summarize(rows, keys, metric)
    extra = rows.group_by(keys, maintain_order=True).agg(
        *[pl.col(m).mean().alias(f"{m}_mean") for m in THRESHOLD_FREE if m != metric],
        pl.col("degenerate").fill_null(False).sum().cast(pl.Int64).alias("n_degenerate"),
        *([pl.col("chance").first()] if "chance" in rows.columns and "chance" not in keys else []),
    )
    return out.join(extra, on=keys, how="left", nulls_equal=True)


def resolve_layer(rows: pl.DataFrame, layer: str | None) -> str:
    """`layer`, or by default fc1 if present, else the first layer name in sorted order."""
    layers = sorted(x for x in rows["layer"].drop_nulls().unique() if x != "none")
    if layer is not None:
        if layer not in layers:
            raise DataError(f"layer {layer!r}: not in the attacks table; present: {layers}")
        return layer
    if not layers:
        raise DataError("no attack rows with a layer (attacks table empty or filtered out)")
    return "fc1" if "fc1" in layers else layers[0]


def _sort_defenses(frame: pl.DataFrame, extra: list[str] | None = None) -> pl.DataFrame:
    """Settings, then the undefended row first, then defenses by name and level."""
    keys = [k for k in SETTING_KEYS + ATTACKER_KEYS if k in frame.columns]
    defended = (pl.col("defense_name") != NO_DEFENSE).alias("_defended")
    order = [*keys, "_defended", "defense_name", "level", *(extra or [])]
    return frame.with_columns(defended).sort(order, nulls_last=False).drop("_defended")


def ser_table(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    defense: str | None = NO_DEFENSE,
    include_shadow: bool = False,
) -> pl.DataFrame:
    """SER test UAR and accuracy per corpus x feature set x algorithm (x defense, level when
    `defense` is None), aggregated over folds and seeds: *_n, *_mean, *_std, *_ci_low/high,
    plus n_folds and n_seeds."""
    lf = load.scan(store_uri, "runs").filter(pl.col("status") == "ok")
    if not include_shadow:
        lf = lf.filter(pl.col("role").fill_null("") != "shadow")
    lf = lf.with_columns(pl.col("defense").fill_null(NO_DEFENSE))
    if defense is not None:
        lf = lf.filter(pl.col("defense") == defense)
    runs = apply_where(lf, where).collect()
    keys = SER_KEYS if defense is not None else [*SER_KEYS, "defense", "defense_level"]
    counts = runs.group_by(keys, maintain_order=True).agg(
        pl.col("fold").n_unique().alias("n_folds"), pl.col("seed").n_unique().alias("n_seeds")
    )
    uar = summarize(runs, keys, "test_uar", prefix="uar")
    acc = summarize(runs, keys, "test_acc", prefix="acc")
    out = counts.join(uar, on=keys, how="left", nulls_equal=True)
    out = out.join(acc, on=keys, how="left", nulls_equal=True)
    return out.sort(keys)


def layer_table(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    protocol: str = "per_update",
    n_avg: int = 1,
    defense: str | None = NO_DEFENSE,
) -> pl.DataFrame:
    """Attack `metric` per target corpus x feature x algorithm x attack x layer (over folds x
    seeds), for one protocol / n_avg and (by default) undefended targets; layer "fusion" is
    the parameter-weighted fusion of the per-layer attacks."""
    check_metric(metric)
    rows = attack_rows(store_uri, where=where)
    rows = rows.filter((pl.col("protocol") == protocol) & (pl.col("n_avg") == n_avg))
    rows = rows.filter(pl.col("layer") != "none")
    if defense is not None:
        rows = rows.filter(pl.col("defense_name") == defense)
    keys = [*SETTING_KEYS, *ATTACKER_KEYS, *DEFENSE_KEYS, "layer"]
    return attack_summary(rows, keys, metric).sort(keys, nulls_last=False)


def updates_table(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    layer: str | None = None,
    protocol: str = "per_client",
) -> pl.DataFrame:
    """Attack `metric` against the number of updates averaged per prediction, per defense and
    level; `n_avg` 0 means all of a client's updates (sorted last, label "all")."""
    check_metric(metric)
    rows = attack_rows(store_uri, where=where).filter(pl.col("protocol") == protocol)
    keys = [*SETTING_KEYS, *ATTACKER_KEYS, *DEFENSE_KEYS, "layer", "n_avg"]
    if not rows.is_empty():
        rows = rows.filter(pl.col("layer") == resolve_layer(rows, layer))
    out = attack_summary(rows, keys, metric)
    label = (
        pl.when(pl.col("n_avg") == 0).then(pl.lit("all")).otherwise(pl.col("n_avg").cast(pl.String))
    )
    order = pl.when(pl.col("n_avg") == 0).then(2**30).otherwise(pl.col("n_avg")).alias("_order")
    out = out.with_columns(label.alias("n_avg_label"), order)
    return _sort_defenses(out, ["_order"]).drop("_order")


def tradeoff_table(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    layer: str | None = None,
    protocol: str = "per_client",
    n_avg: int = 1,
) -> pl.DataFrame:
    """Privacy vs utility: one row per setting x attacker x defense x level with the SER UAR
    of the (distinct) target runs (`ser_*`), the attack metric (`{metric}_*`), epsilon (max and
    mean over runs), delta, dp_protects and `ceiling` = dp_attack_ceiling(max epsilon, delta)
    (`ceiling_applies` is true only for user-level guarantees, dp_protects = "speakers")."""
    check_metric(metric)
    rows = attack_rows(store_uri, where=where).filter(
        (pl.col("protocol") == protocol) & (pl.col("n_avg") == n_avg)
    )
    keys = [*SETTING_KEYS, *ATTACKER_KEYS, *DEFENSE_KEYS]
    layer = resolve_layer(rows, layer) if not rows.is_empty() else (layer or "")
    rows = rows.filter(pl.col("layer") == layer)
    attack = attack_summary(rows, keys, metric)
    runs = rows.unique(subset=[*keys, "target_run"], keep="first", maintain_order=True)
    ser = summarize(runs, keys, "ser_uar", prefix="ser")
    priv = runs.group_by(keys, maintain_order=True).agg(
        pl.col("epsilon").max().alias("epsilon"),
        pl.col("epsilon").mean().alias("epsilon_mean"),
        pl.col("delta").max().alias("delta"),
        pl.col("dp_protects").drop_nulls().first().alias("dp_protects"),
        pl.col("target_run").n_unique().alias("n_runs"),
    )
    out = attack.join(ser, on=keys, how="left", nulls_equal=True)
    out = out.join(priv, on=keys, how="left", nulls_equal=True)
    ceil = [
        None
        if e is None or e != e
        else dp_attack_ceiling(e, d if d is not None and d == d else 0.0)
        for e, d in zip(out["epsilon"], out["delta"])
    ]
    out = out.with_columns(
        pl.Series("ceiling", ceil, dtype=pl.Float64),
        (pl.col("dp_protects") == "speakers").fill_null(False).alias("ceiling_applies"),
        pl.lit(layer).alias("layer"),
    )
    return _sort_defenses(out)


def eps_aggregates() -> list[pl.Expr]:
    """Per cell: the largest empirical epsilon lower bound over attackers (and its delta),
    the mechanism's and the accountant's epsilon, and whether any row violated the mechanism."""
    return [
        pl.col("eps_lb").max().alias("eps_lb"),
        pl.col("eps_lb_delta").max().alias("eps_lb_delta"),
        pl.col("epsilon").max().alias("epsilon"),
        pl.col("mechanism_epsilon").max().alias("mechanism_epsilon"),
        pl.col("eps_violation").fill_null(False).any().alias("eps_violation"),
    ]

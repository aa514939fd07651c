"""Figures from per-round and per-prediction data: epsilon against rounds, ROC curves.

Both return the frame they plotted: `plot_epsilon` the per-round mean / min / max epsilon of
each series, `plot_roc` the curve points (group columns, fpr, tpr) with each curve's auc.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import polars as pl
from matplotlib.ticker import MaxNLocator

from sergrad.analysis import figure as F
from sergrad.analysis import load
from sergrad.analysis import tables as T
from sergrad.analysis.query import apply_where
from sergrad.analysis.roc import auc, roc_curve
from sergrad.errors import DataError

EPSILON_SERIES: list[str] = ["corpus", "feature_set", "algorithm", "defense", "defense_level"]
ROC_GROUPS: list[str] = [*T.SETTING_KEYS, "attack", "defense_name", "level"]


def epsilon_frame(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """Per series (corpus, feature, algorithm, defense, level) and round: epsilon mean, min,
    max and the number of runs, over runs that report an epsilon (rounds of a run without a
    readable `runs` row are left out: `skipped_runs` names them)."""
    return _epsilon_series(_epsilon_rows(store_uri, where)[0])


def _epsilon_rows(store_uri, where) -> tuple[pl.DataFrame, list[str]]:
    """(per-round epsilon rows of described runs, ids of runs whose rounds have no `runs` row:
    its file is missing or unreadable, so the run's defense and level are unknown)."""
    rows = apply_where(load.round_results(store_uri), where).collect()
    rows = rows.filter(pl.col("epsilon").is_not_null() & pl.col("epsilon").is_not_nan())
    orphan = pl.col("defense").is_null()
    skipped = sorted(rows.filter(orphan)["run_id"].unique().to_list())
    return rows.filter(~orphan), skipped


def skipped_runs(store_uri: str | os.PathLike, *, where: str | None = None) -> list[str]:
    """Runs with per-round epsilons but no readable `runs` row (left out of the plot)."""
    return _epsilon_rows(store_uri, where)[1]


def _epsilon_series(rows: pl.DataFrame) -> pl.DataFrame:
    eps = pl.col("epsilon")
    out = rows.group_by([*EPSILON_SERIES, "round"]).agg(
        eps.mean().alias("epsilon_mean"), eps.min().alias("epsilon_min"),
        eps.max().alias("epsilon_max"), pl.col("run_id").n_unique().alias("n_runs"),
        pl.col("delta").max().alias("delta"), pl.col("dp_protects").first().alias("dp_protects"),
    )  # fmt: skip
    return out.sort([*EPSILON_SERIES, "round"], nulls_last=False)


def plot_epsilon(
    store_uri: str | os.PathLike, out: str | os.PathLike, *, where: str | None = None
) -> pl.DataFrame:
    """epsilon spent so far against the round, one line per series (band = min..max over runs)."""
    F.check_output(out)
    rows, skipped = _epsilon_rows(store_uri, where)
    data = _epsilon_series(rows)
    note = ""
    if skipped:
        shown = ", ".join(skipped[:3]) + (
            f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        )
        note = (f"{len(skipped)} run(s) left out: their runs row is missing or unreadable "
                f"({shown})")  # fmt: skip
        warnings.warn(f"epsilon plot: {note}", stacklevel=2)
    if data.is_empty():
        raise DataError(
            "no data for the epsilon plot (no run reports epsilon per round"
            + (f"; {note})" if note else ")")
        )
    # One panel per defense; one line per algorithm x level, pooled over the other keys
    # (corpora, features, seeds): mean line, min..max band. Log scale: epsilons span decades.
    series = ["algorithm", "defense_level"]
    pooled = (
        data.group_by(["defense", *series, "round"], maintain_order=True)
        .agg(
            pl.col("epsilon_mean").mean(),
            pl.col("epsilon_min").min(),
            pl.col("epsilon_max").max(),
            pl.col("delta").first(),
            pl.col("dp_protects").first(),
        )  # fmt: skip
        .sort(["defense", *series, "round"])
    )
    defenses = pooled["defense"].unique(maintain_order=True).to_list()
    fig, axes = F.panels(len(defenses), width=5.0, height=3.8)
    family = F.colour_map(defenses)
    algo_style = {a: F.LINESTYLES[i % len(F.LINESTYLES)]
                  for i, a in enumerate(sorted(pooled["algorithm"].unique().to_list()))}  # fmt: skip
    for ax, defense in zip(axes, defenses):
        sub = pooled.filter(pl.col("defense") == defense)
        levels = sorted(sub["defense_level"].unique().to_list(), key=lambda v: (v is None, v))
        for algorithms, level, s in _merge_equal_curves(sub, series):
            x = s["round"].to_numpy()
            k = levels.index(level)
            colour = F.shade(family[defense], k, len(levels))
            ls = algo_style[algorithms[0]] if len(algorithms) == 1 else "-"
            label = f"{defense} {F.fmt_level(level)} · {' = '.join(algorithms)}"
            ax.plot(x, s["epsilon_mean"].to_numpy(), marker=F.marker(k), ms=3, color=colour,
                    ls=ls, label=label)  # fmt: skip
            ax.fill_between(x, s["epsilon_min"].to_numpy(), s["epsilon_max"].to_numpy(),
                            color=colour, alpha=0.15, lw=0)  # fmt: skip
        delta, protects = sub["delta"][0], sub["dp_protects"][0]
        delta_txt = f"δ={delta:.0e}, " if delta is not None else ""
        ax.set_title(f"{defense} ({delta_txt}protects {protects})", fontsize=10)
        ax.set_xlabel("FL round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("ε spent so far")
        ax.set_yscale("log")
        F.plain_log_ticks(ax.yaxis)
        ax.grid(alpha=0.3, which="both")
    F.legend_outside(fig, axes, title="defense level · algorithm ('=': same curve)")
    F.suptitle(fig, "Privacy loss against rounds (line: mean over runs; band: min..max)"
               + (f"\n{note}" if note else ""), fontsize=11)  # fmt: skip
    F.save(fig, out)
    return data


def _merge_equal_curves(
    sub: pl.DataFrame, series: list[str]
) -> list[tuple[list[str], object, pl.DataFrame]]:
    """[(algorithms, level, curve)]: algorithms of one level whose curves are equal (to 1e-9
    relative, e.g. FedAvg = FedSGD under the same accountant) share one line."""
    out: list[tuple[list[str], object, pl.DataFrame]] = []
    for (algorithm, level), s in sub.group_by(series, maintain_order=True):
        curve = s.select("round", "epsilon_mean", "epsilon_min", "epsilon_max").to_numpy()
        for algorithms, lv, other in out:
            ref = other.select("round", "epsilon_mean", "epsilon_min", "epsilon_max").to_numpy()
            if lv == level and ref.shape == curve.shape and np.allclose(ref, curve, rtol=1e-9):
                algorithms.append(algorithm)
                break
        else:
            out.append(([algorithm], level, s))
    return out


def roc_frame(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
    protocol: str = "per_update",
    n_avg: int = 1,
    by: list[str] | None = None,
) -> pl.DataFrame:
    """ROC points of the pooled predictions of each group `by` (default: setting x attack x
    defense x level): columns by..., fpr, tpr, auc, n_pos, n_neg. Unlabelled rows are skipped."""
    by = by or ROC_GROUPS
    lf = load.scored_predictions(store_uri)
    rows = apply_where(lf, where).collect()
    rows = rows.filter(
        (pl.col("protocol") == protocol) & (pl.col("n_avg") == n_avg) & pl.col("y").is_not_null()
    )
    if rows.is_empty():
        raise DataError("no data for the roc plot (predictions table empty or filtered out)")
    rows = rows.filter(pl.col("layer") == T.resolve_layer(rows, layer))
    parts = []
    for key, g in rows.group_by(by, maintain_order=True):
        y, p = g["y"].to_numpy(), g["p_male"].to_numpy()
        if y.min() == y.max():
            continue  # one class only: no curve
        fpr, tpr = roc_curve(y, p)
        part = pl.DataFrame({"fpr": fpr, "tpr": tpr}).with_columns(
            *[pl.lit(v, dtype=rows.schema[k]).alias(k) for k, v in zip(by, key)],
            pl.lit(auc(fpr, tpr)).alias("auc"), pl.lit(int(y.sum())).alias("n_pos"),
            pl.lit(int(len(y) - y.sum())).alias("n_neg"), pl.lit(g["layer"][0]).alias("layer"),
            pl.lit(_binary_classes(g)).alias("classes"),
        )  # fmt: skip
        parts.append(part)
    if not parts:
        raise DataError("no data for the roc plot (no group has both genders)")
    out = pl.concat(parts)
    return out.select([*by, "layer", "fpr", "tpr", "auc", "n_pos", "n_neg", "classes"])


def _binary_classes(g: pl.DataFrame) -> str:
    """'negative/positive' class names of a binary group (gender: F/M; y = 1 is the second)."""
    classes = g["classes"][0] if "classes" in g.columns else None
    names = json.loads(classes) if classes else None
    return "/".join(names) if names and len(names) == 2 else "F/M"


def _roc_axis_labels(data: pl.DataFrame) -> tuple[str, str]:
    """Axis labels naming the classes: gender's 'female predicted male', another binary
    attribute's own classes, or the generic rule when attributes are mixed."""
    pairs = data.select("classes").unique()["classes"].to_list()
    if len(pairs) != 1:
        return "false positive rate", "true positive rate (positive: each attribute's 2nd class)"
    neg, pos = pairs[0].split("/", 1)
    if (neg, pos) == ("F", "M"):
        return "false positive rate (female predicted male)", "true positive rate (male detected)"
    return f"false positive rate ({neg} predicted {pos})", f"true positive rate ({pos} detected)"


def _fmt(v) -> str:
    if v is None or isinstance(v, float):
        return F.fmt_level(v)
    return "no defense" if v == T.NO_DEFENSE else str(v)


DEFAULT_ROC_WHERE = "defense_name = 'none'"
MAX_ROC_CURVES = 12


def plot_roc(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
    protocol: str = "per_update",
    n_avg: int = 1,
    by: list[str] | None = None,
) -> pl.DataFrame:
    """ROC curves (TPR against FPR, both log scale) of the attacks chosen by `where`.

    Without `where`, only undefended targets are drawn (defense_name = 'none'), and at most
    MAX_ROC_CURVES curves (the highest AUCs) so the figure stays readable.
    """
    F.check_output(out)
    by = by or ROC_GROUPS
    if where is None:
        where = DEFAULT_ROC_WHERE
    data = roc_frame(store_uri, where=where, layer=layer, protocol=protocol, n_avg=n_avg, by=by)
    ranked = data.group_by(by, maintain_order=True).agg(pl.col("auc").first()).sort("auc")
    if ranked.height > MAX_ROC_CURVES:  # keep the strongest attacks
        data = data.join(
            ranked.tail(MAX_ROC_CURVES).select(by), on=by, how="semi", nulls_equal=True
        )
    F.save(roc_figure(data, by=by, protocol=protocol, n_avg=n_avg), out)
    return data


def roc_figure(data: pl.DataFrame, *, by: list[str], protocol: str, n_avg: int) -> F.Figure:
    """ROC curves of a roc_frame (see plot_roc); the legend sits below the axes."""
    varying = [k for k in by if data[k].n_unique() > 1] or by[-2:]
    fig, (ax,) = F.panels(1, width=5.5, height=4.8)
    floor, curves = 1.0, []
    for key, s in data.group_by(by, maintain_order=True):
        row = dict(zip(by, key))
        floor = min(floor, 0.5 / int(s["n_neg"][0]), 0.5 / int(s["n_pos"][0]))
        parts = [_fmt(row[k]) for k in varying]
        label = " · ".join(p for p in parts if p) + f" (AUC {s['auc'][0]:.2f})"
        curves.append((s, label, row.get("attack")))
    curves.sort(key=lambda c: -c[0]["auc"][0])  # legend from the strongest attack down
    attack_style = {a: F.LINESTYLES[i % len(F.LINESTYLES)]
                    for i, a in enumerate(sorted({str(c[2]) for c in curves}))}  # fmt: skip
    for i, (s, label, attack) in enumerate(curves):
        # values below the floor (fpr or tpr of 0) are drawn on the axis edge
        fpr, tpr = (np.maximum(s[c].to_numpy(), floor) for c in ("fpr", "tpr"))
        ax.plot(fpr, tpr, color=F.colour(i), lw=1.6, ls=attack_style[str(attack)], label=label)
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, "--", color="0.4", lw=1, label="chance (TPR = FPR)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    F.plain_log_ticks(ax.xaxis)
    F.plain_log_ticks(ax.yaxis)
    ax.set_xlim(floor, 1.05)
    ax.set_ylim(floor, 1.05)
    xlabel, ylabel = _roc_axis_labels(data)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    n_txt = "all" if n_avg == 0 else str(n_avg)
    ax.set_title(
        f"Attack ROC, log-log ({data['layer'][0]}, {protocol}, n_avg={n_txt})", fontsize=10
    )
    ax.grid(alpha=0.3, which="both")
    title = " · ".join(varying) + ("  (line style: attack model)" if len(attack_style) > 1 else "")
    F.legend_below(fig, ax, title=title, ncols=2 if len(curves) > 6 else 1)
    return fig

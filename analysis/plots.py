"""Privacy-utility figures from a results store; each returns the frame it plotted.

    plot_tradeoff  SER UAR against attack success per defense and level (epsilon labelled,
                   the no-defense point, chance, the DP ceiling for user-level guarantees)
    plot_updates   attack success against the number of averaged updates, per defense level
    plot_layers    per-layer leakage heatmap, rows = corpus x feature x algorithm (x attack)
    plot_epsilon   epsilon against rounds (rounds table)   -- plots_runs.py
    plot_roc       ROC curves on log-log axes (predictions) -- plots_runs.py

`where` is a Polars SQL condition on the row-level data (the `results` view for attack
plots), applied before aggregation. Values are shown in percent.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from sergrad.analysis import audits as A
from sergrad.analysis import figure as F
from sergrad.analysis import tables as T
from sergrad.errors import ConfigError, DataError

PANEL_KEYS = T.SETTING_KEYS
LABEL_BOX = {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}


def _panel_title(key: tuple) -> str:
    return " · ".join(str(k) for k in key)


def _require(frame: pl.DataFrame, what: str, column: str) -> pl.DataFrame:
    frame = frame.filter(pl.col(column).is_not_null()) if column in frame.columns else frame
    if frame.is_empty():
        raise DataError(f"no data for the {what} plot (table empty or filtered out by --where)")
    return frame


def _series_label(name: str, attack: str, adaptive: bool, attackers: int) -> str:
    label = "no defense" if name == T.NO_DEFENSE else name
    if adaptive:
        label += " [adaptive]"
    return f"{label} ({attack})" if attackers > 1 else label


def _colours(names: list[str]) -> dict[str, str]:
    others = sorted(n for n in set(names) if n != T.NO_DEFENSE)
    return {T.NO_DEFENSE: F.NO_DEFENSE_COLOR, **{n: F.colour(i) for i, n in enumerate(others)}}


def _err(frame: pl.DataFrame, prefix: str) -> np.ndarray | None:
    """Error bars in percent: the standard error of the mean over folds x seeds.

    (The tables carry the 95% t-interval too; with 2-3 observations its half-width is
    4-13 standard errors, which would bury the figure. None when n = 1 everywhere.)
    """
    std, n = (frame[f"{prefix}_{s}"].to_numpy().astype(float) for s in ("std", "n"))
    if np.all(np.isnan(std)):
        return None
    return np.nan_to_num(std / np.sqrt(np.maximum(n, 1))) * 100


def _clip_percent(ax, *, room_right: bool = False) -> None:
    """Keep percentage axes inside [0, 100] whatever the error bars reach; `room_right` keeps
    a marker drawn at x = 100 (a DP ceiling) inside the frame."""
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(lo, 0.0), min(hi, 103.0 if room_right else 100.0))
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0.0), min(hi, 100.0))


def _series(name: str, adaptive: bool) -> str:
    return f"{name} [adaptive]" if adaptive else name


def _verdict_err(frame: pl.DataFrame, mean: str, lo: str, hi: str) -> np.ndarray | None:
    """Asymmetric error bars in percent from an interval; zero where there is none."""
    m = frame[mean].to_numpy().astype(float)
    low = frame[lo].cast(pl.Float64).to_numpy()
    high = frame[hi].cast(pl.Float64).to_numpy()
    if np.all(np.isnan(low)):
        return None
    return np.vstack([np.nan_to_num(m - low), np.nan_to_num(high - m)]) * 100


def plot_tradeoff(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    layer: str | None = None,
    protocol: str | None = None,
    n_avg: int = 1,
) -> pl.DataFrame:
    """SER UAR (y) against the VERDICT (x): per defense level, the strongest legitimate
    attacker's per-client UAR (max over attack models, shadow/prior calibration, adaptive or
    not, per_client / per_client_vote; `protocol` restricts it to one), with its cluster-
    bootstrap interval. Hollow markers: no leak detected at this sample size (adjusted p >= 0.05)."""
    from sergrad.analysis.verdicts import VERDICT_PROTOCOLS, verdict_tradeoff

    F.check_output(out)
    if metric != "uar":
        raise ConfigError(f"metric {metric!r}: the trade-off's x axis is the verdict (uar)")
    protocols = VERDICT_PROTOCOLS if protocol is None else (protocol,)
    data = verdict_tradeoff(store_uri, where=where, layer=layer, n_avg=n_avg, protocols=protocols)
    data = _require(data, "tradeoff", "uar")
    F.save(tradeoff_figure(data, n_avg=n_avg), out)
    return data


def tradeoff_figure(data: pl.DataFrame, *, n_avg: int = 1) -> F.Figure:
    """The trade-off figure of a verdict_tradeoff frame (see plot_tradeoff)."""
    from sergrad.analysis.verdicts import INTERVAL

    keys = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    names = data["defense_name"].to_list()
    colours, markers = F.colour_map(names), F.marker_map(n for n in names if n != T.NO_DEFENSE)
    markers[T.NO_DEFENSE] = "*"
    fig, axes = F.panels(len(keys))
    labels_per_ax, ceilings = [], False
    for ax, key in zip(axes, keys):
        sub = data.filter(pl.all_horizontal([pl.col(k) == v for k, v in zip(PANEL_KEYS, key)]))
        labels, seen, shifted = [], {}, []
        for (name,), s in sub.group_by(["defense_name"], maintain_order=True):
            s = s.sort("level", nulls_last=False)
            x, y = s["uar"].to_numpy() * 100, s["ser_uar_mean"].to_numpy().astype(float) * 100
            c, m, none = colours[name], markers[name], name == T.NO_DEFENSE
            xerr = _verdict_err(s, "uar", "uar_ci_low", "uar_ci_high")
            yerr = _verdict_err(s, "ser_uar_mean", "ser_ci_low", "ser_ci_high")
            shift = F.coincident_shift(seen, name, x, y)  # equal points drawn side by side
            drawn = ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker=m, ls="none" if none else "-",
                        ms=12 if none else 6, color=c, elinewidth=0.8, capsize=2,
                        label="no defense" if none else name, zorder=5 if none else 4,
                        mfc=c)  # fmt: skip
            shifted.append(([drawn], shift))
            sig = s["significant"].to_list()
            hollow = [i for i, v in enumerate(sig) if v is False]
            if hollow:
                shifted.append((ax.plot(x[hollow], y[hollow], ls="none", marker=m,
                                        ms=12 if none else 6, mfc="white", mec=c, zorder=6),
                                shift))  # fmt: skip
            for k, (row, xi, yi) in enumerate(zip(s.iter_rows(named=True), x, y)):
                if row["ceiling_applies"] and row["ceiling"] is not None:
                    cx = min(row["ceiling"] * 100, 100.0)
                    ceilings = True
                    ax.plot([xi, cx], [yi, yi], ":", color=c, lw=0.9, zorder=3)
                    ax.plot([cx], [yi], marker="|", ms=12, mew=2, color=c, ls="none", zorder=3,
                            label="DP ceiling on attack UAR (user-level ε)")  # fmt: skip
                if none:
                    continue
                eps = row["epsilon"]
                text = (
                    f"ε={eps:.3g}" if eps is not None and eps == eps else F.fmt_level(row["level"])
                )
                ends = 2 if k in (0, s.height - 1) else 1  # a series' first and last level first
                labels.append((xi, yi, text, c, ends))
        chance = T.chance_of(sub) * 100  # 1/classes of the panel's attribute
        ax.axvline(chance, color="0.4", ls="--", lw=1, label=f"{chance:.3g}% (no information)",
                   zorder=1)  # fmt: skip
        ax.set_title(_panel_title(key), fontsize=10)
        ax.set_xlabel("verdict: attack UAR (%)  ← more private")
        ax.set_ylabel("SER test UAR (%)  ↑ more useful")
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.12)
        _clip_percent(ax, room_right=ceilings)
        for artists, shift in shifted:
            F.shift_artists(fig, ax, artists, shift)
        labels_per_ax.append(labels)
    n_txt = "all" if n_avg == 0 else str(n_avg)
    F.legend_outside(fig, axes, title="defense (labels: ε, else level)")
    F.suptitle(fig, f"Privacy-utility trade-off (attack on {data['layer'][0]}, n_avg={n_txt}); x: "
                    "strongest legitimate attacker's per-client UAR, "
                    f"{INTERVAL}\ny: SER mean, 95% t-interval with n >= 3 runs; "
                    "hollow: no leak detected at this sample size (adjusted p >= 0.05)")  # fmt: skip
    for ax, labels in zip(axes, labels_per_ax):
        F.place_labels(fig, ax, labels, box=LABEL_BOX)
    return fig


def plot_updates(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    layer: str | None = None,
    protocol: str = "per_client",
) -> pl.DataFrame:
    """Attack `metric` against the number of averaged updates, one line per defense level."""
    F.check_output(out)
    data = T.updates_table(store_uri, where=where, metric=metric, layer=layer, protocol=protocol)
    data = _require(data, "updates", f"{metric}_mean")
    F.save(updates_figure(data, metric=metric, protocol=protocol), out)
    return data


def updates_figure(
    data: pl.DataFrame, *, metric: str = "uar", protocol: str = "per_client"
) -> F.Figure:
    """The averaged-updates figure of an updates_table frame (see plot_updates)."""
    keys = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    ns = sorted(data["n_avg"].unique().to_list(), key=lambda n: (n == 0, n))
    pos = {n: i for i, n in enumerate(ns)}
    series_keys = [*T.DEFENSE_KEYS, *T.ATTACKER_KEYS]
    style = _level_styles(data)
    attackers = data.select(T.ATTACKER_KEYS).n_unique()
    calibrations = data["calibration"].n_unique() if "calibration" in data.columns else 1
    fig, axes = F.panels(len(keys))
    for ax, key in zip(axes, keys):
        sub = data.filter(pl.all_horizontal([pl.col(k) == v for k, v in zip(PANEL_KEYS, key)]))
        groups = list(sub.group_by(series_keys, maintain_order=True))
        for j, (skey, s) in enumerate(groups):
            name, level, attack, adaptive, calibration = skey
            s = s.with_columns(pl.col("n_avg").replace_strict(pos).alias("_x")).sort("_x")
            c, m, ls = style[(name, level, attack, calibration)]
            label = _series_label(name, attack, adaptive, attackers)
            if calibrations > 1:
                label += f" [{calibration}]"
            if name != T.NO_DEFENSE:
                label += f" {F.fmt_level(level)}"
            degenerate = bool((s["n_degenerate"] >= s[f"{metric}_n"]).all())
            if degenerate:  # hollow markers: every evaluation predicted one class
                label += " (degenerate: one class)"
            x = s["_x"].to_numpy() + F.dodge(j, len(groups))  # equal values stay visible
            ax.errorbar(x, s[f"{metric}_mean"].to_numpy() * 100, yerr=_err(s, metric), marker=m,
                        ms=8 if m == "*" else 5, color=c, ls=ls, capsize=2, elinewidth=0.8,
                        label=label, zorder=4 if name == T.NO_DEFENSE else 3,
                        mfc="white" if degenerate else c)  # fmt: skip
        chance = T.chance_of(sub, metric) * 100
        ax.axhline(chance, color="0.4", ls="--", lw=1, zorder=1,
                   label=f"{chance:.3g}% (no information)")  # fmt: skip
        ax.set_xticks(range(len(ns)), ["all" if n == 0 else str(n) for n in ns])
        ax.set_xlim(-0.4, len(ns) - 0.6)
        ax.set_xlabel("updates averaged per prediction (n)")
        ax.set_ylabel(f"{F.METRIC_LABELS[metric]} (%)")
        ax.set_title(_panel_title(key), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 0.0), min(hi, 100.0))
    F.legend_outside(fig, axes, title="defense level (attack model)")
    F.suptitle(fig, f"Attack success vs averaged updates ({data['layer'][0]}, {protocol}; "
                    "mean ± s.e. over folds x seeds; series side by side at each n)")  # fmt: skip
    return fig


def _level_styles(data: pl.DataFrame) -> dict[tuple, tuple[str, str, object]]:
    """(defense_name, level, attack, calibration) -> (colour, marker, linestyle): a colour
    family per defense (shades by level; black/greys for no defense), a marker per attack
    model, a line style per calibration (else per level), so no two series look alike."""
    family = F.colour_map(data["defense_name"].to_list())
    attack_marker = F.marker_map(data["attack"].to_list())
    cal = data["calibration"] if "calibration" in data.columns else pl.Series([None] * data.height)
    cal_style = {c: F.LINESTYLES[i] for i, c in enumerate(sorted(set(cal.fill_null("-"))))}
    out = {}
    for (name,), g in data.group_by(["defense_name"], maintain_order=True):
        levels = sorted(set(g["level"].to_list()), key=lambda v: (v is None, v))
        gcal = g["calibration"] if "calibration" in g.columns else pl.Series([None] * g.height)
        for k, level in enumerate(levels):
            for attack in set(g["attack"].to_list()):
                for c in set(gcal.to_list()):
                    ls = cal_style[c or "-"] if len(cal_style) > 1 else F.LINESTYLES[k % 6]
                    out[(name, level, attack, c)] = (F.shade(family[name], k, len(levels)),
                                                     attack_marker[attack], ls)  # fmt: skip
    return out


def _fmt_value(v) -> str:
    return F.fmt_level(v) if isinstance(v, float) else str(v)


def _layer_order(layers: list[str]) -> list[str]:
    return sorted(layers, key=lambda x: (x == "fusion", len(x), x))


def plot_layers(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    metric: str = "uar",
    protocol: str = "per_update",
    n_avg: int = 1,
    defense: str | None = T.NO_DEFENSE,
) -> pl.DataFrame:
    """Heatmap of attack `metric` per layer (columns) for each corpus x feature x algorithm."""
    F.check_output(out)
    data = T.layer_table(store_uri, where=where, metric=metric, protocol=protocol, n_avg=n_avg,
                         defense=defense)  # fmt: skip
    data = _require(data, "layers", f"{metric}_mean")
    row_keys = [*PANEL_KEYS, *T.ATTACKER_KEYS, *T.DEFENSE_KEYS]
    varying = [k for k in row_keys if data[k].n_unique() > 1 or k in PANEL_KEYS]
    rows = data.select(varying).unique(maintain_order=True).rows()
    layers = _layer_order(data["layer"].unique().to_list())
    grid = np.full((len(rows), len(layers)), np.nan)
    index = {r: i for i, r in enumerate(rows)}
    for r in data.iter_rows(named=True):
        grid[index[tuple(r[k] for k in varying)], layers.index(r["layer"])] = (
            r[f"{metric}_mean"] * 100
        )
    fig = F.Figure(
        figsize=(2.2 + 1.1 * len(layers) + 2.5, max(3.0, 1.4 + 0.42 * len(rows))),
        layout="constrained",
    )
    ax = fig.subplots()
    chance = T.CHANCE[metric] * 100
    im = ax.imshow(
        grid,
        cmap="cividis",
        vmin=min(chance, np.nanmin(grid)),
        vmax=max(np.nanmax(grid), chance + 10),  # a few points above chance never look saturated
        aspect="auto",
    )
    for (i, j), v in np.ndenumerate(grid):
        if v == v:
            light = (v - im.norm.vmin) / max(im.norm.vmax - im.norm.vmin, 1e-9) > 0.6
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if light else "white")  # fmt: skip
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yticks(
        range(len(rows)),
        [" · ".join(F.fmt_level(v) if isinstance(v, float) else str(v) for v in r) for r in rows],
        fontsize=8,
    )
    ax.set_xlabel("layer (parameter group attacked)")
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label(f"{F.METRIC_LABELS[metric]} (%)  [chance {chance:g}%]")
    who = "undefended targets" if defense == T.NO_DEFENSE else f"defense {defense or 'all'}"
    same = [f"{k} = {_fmt_value(data[k][0])}" for k in row_keys
            if k not in varying and k not in T.DEFENSE_KEYS]  # fmt: skip
    F.suptitle(fig, f"Per-layer leakage ({protocol}, n_avg={'all' if n_avg == 0 else n_avg}; "
                    f"{who})\nrows: {' · '.join(varying)}"
                    + (f"; every row: {', '.join(same)}" if same else ""))  # fmt: skip
    F.save(fig, out)
    return data


def eps_table(
    store_uri: str | os.PathLike, *, where: str | None = None, layer: str | None = None
) -> pl.DataFrame:
    """Per setting x defense x level: the largest empirical epsilon lower bound (eps_lb, shadow
    threshold, one update per client) over attackers, the accountant's epsilon (max over runs)
    and, for user_dp local, the mechanism's per-update epsilon and any violation."""
    rows = T.attack_rows(store_uri, where=where).filter(
        pl.col("eps_lb").is_not_null() & (pl.col("n_avg") == 1) & (pl.col("layer") != "none")
    )
    canary = _canary_columns(store_uri, where)
    if rows.is_empty():
        return canary
    rows = rows.filter(pl.col("layer") == T.resolve_layer(rows, layer))
    keys = [*T.SETTING_KEYS, *T.DEFENSE_KEYS, "layer"]
    attack = (
        rows.group_by(keys, maintain_order=True)
        .agg(*T.eps_aggregates(), pl.col("n_clients").max().alias("n_clients"))
        .sort(keys, nulls_last=False)
    )
    if canary.is_empty():
        return attack
    return attack.join(canary, on=A.CELL_KEYS, how="full", coalesce=True).sort(
        keys, nulls_last=False
    )


def _canary_columns(store_uri, where) -> pl.DataFrame:
    """The canary audits per cell (analysis.audits), columns prefixed `canary_`; empty when
    the store has none or `where` names a column the audits table lacks."""
    c = A.canary_table_or_empty(store_uri, where=where)
    if c.is_empty():
        return pl.DataFrame()
    return c.select(
        *A.CELL_KEYS,
        pl.col("mechanism").alias("canary_mechanism"),
        "canary_eps_lb",
        pl.col("accountant_epsilon").alias("canary_accountant_epsilon"),
        "canary_violation",
        pl.col("n_canaries").alias("canary_n_canaries"),
        pl.col("n_audits").alias("canary_n_audits"),
        pl.col("delta").alias("canary_delta"),
    )


def plot_eps_lb(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
) -> pl.DataFrame:
    """Effective epsilon per defense level: the attack's 95% lower bound (bars) beside the
    accountant's epsilon and the local mechanism's epsilon (markers), one panel per setting."""
    F.check_output(out)
    data = eps_table(store_uri, where=where, layer=layer)
    if "canary_eps_lb" not in data.columns:
        data = _require(data, "empirical epsilon", "eps_lb")
        data = data.with_columns(pl.lit(None, pl.Float64).alias("canary_eps_lb"),
                                 pl.lit(False).alias("canary_violation"),
                                 pl.lit(None, pl.Int64).alias("canary_n_canaries"))  # fmt: skip
    if "eps_lb" not in data.columns:  # canary audits only
        data = data.with_columns(pl.lit(None, pl.Float64).alias("eps_lb"),
                                 pl.lit(None, pl.Float64).alias("epsilon"),
                                 pl.lit(None, pl.Float64).alias("mechanism_epsilon"),
                                 pl.lit(False).alias("eps_violation"),
                                 pl.lit(None, pl.String).alias("layer"))  # fmt: skip
    data = data.filter(pl.col("eps_lb").is_not_null() | pl.col("canary_eps_lb").is_not_null())
    if data.is_empty():
        raise DataError("no data for the empirical epsilon plot (no eps_lb, no canary audits)")
    keys = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    fig, axes = F.panels(len(keys), width=5.2)
    colours = _colours(data["defense_name"].to_list())
    for ax, key in zip(axes, keys):
        sub = data.filter(pl.all_horizontal([pl.col(k) == v for k, v in zip(PANEL_KEYS, key)]))
        labels = [
            "no defense" if n == T.NO_DEFENSE else f"{n} {F.fmt_level(lv)}"
            for n, lv in zip(sub["defense_name"], sub["level"])
        ]
        if "canary_mechanism" in sub.columns:  # central user_dp is told apart from local
            labels = [f"{lb} (central)" if m == "user_dp_central" else lb
                      for lb, m in zip(labels, sub["canary_mechanism"])]  # fmt: skip
        x = np.arange(sub.height)
        ax.bar(x, sub["eps_lb"].cast(pl.Float64).to_numpy(),
               color=[colours[n] for n in sub["defense_name"]],
               alpha=0.8, label="empirical ε lower bound (attribute attack, 95%)")  # fmt: skip
        acc = sub["epsilon"].cast(pl.Float64).to_numpy()
        if "canary_accountant_epsilon" in sub.columns:  # the audited mechanism's accountant
            acc = np.where(np.isfinite(acc), acc,
                           sub["canary_accountant_epsilon"].cast(pl.Float64).to_numpy())  # fmt: skip
        can = sub["canary_eps_lb"].cast(pl.Float64).to_numpy()
        fc = np.isfinite(can)
        if fc.any():
            m = int(sub["canary_n_canaries"].max())
            ax.plot(x[fc], can[fc], "*", color="#1a7f37", ms=11, ls="none",
                    label=f"canary audit ε lower bound (95%, {m} canaries): tests the DP "
                    "guarantee itself")  # fmt: skip
            for i in np.flatnonzero(fc):
                ax.annotate(f"{can[i]:.2f}", (i, can[i]), color="#1a7f37", ha="left",
                            xytext=(6, -3), fontsize=7, textcoords="offset points")  # fmt: skip
        mech = sub["mechanism_epsilon"].cast(pl.Float64).to_numpy()
        finite = np.isfinite(acc)
        if finite.any():
            ax.plot(x[finite], acc[finite], "kD", ms=6, ls="none", label="accountant ε")
        fm = np.isfinite(mech)
        if fm.any():
            ax.plot(x[fm], mech[fm], "v", color="#a00", ms=7, ls="none",
                    label="local mechanism ε (per update, replacement)")  # fmt: skip
        for i, v in enumerate(sub["eps_lb"].to_list()):
            if v is not None:
                ax.annotate(f"{v:.2f}", (i, v), ha="center", xytext=(0, 2), fontsize=7,
                            textcoords="offset points")  # fmt: skip
        bad = sub["eps_violation"].fill_null(False) | sub["canary_violation"].fill_null(False)
        for i, b in enumerate(bad.to_list()):
            if b:
                top = np.nanmax([sub["eps_lb"][i] or np.nan, can[i]])
                ax.annotate("DP VIOLATION (bug)", (i, top), color="#a00", ha="center",
                            xytext=(0, 12), textcoords="offset points", fontsize=8,
                            fontweight="bold")  # fmt: skip
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("ε")
        ax.set_yscale("symlog", linthresh=1.0)
        tops = [v for v in (*sub["eps_lb"], *acc[finite], *mech[fm], *can[fc]) if v is not None]
        ax.set_ylim(0, max(2.0, 2.0 * max(tops, default=1.0)))
        ax.set_title(_panel_title(key), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    layers = [v for v in data["layer"].to_list() if v is not None]
    fig.suptitle(f"Effective ε on {layers[0] if layers else '-'}: the attribute attack's 95% "
                 "Clopper-Pearson lower bound\n(shadow threshold, one update per client; max "
                 "over attackers) and the canary audit's (dp_sgd, central user_dp) beside the "
                 "accountant's ε", fontsize=10)  # fmt: skip
    F.legend_outside(fig, axes)
    F.save(fig, out)
    return data

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

from sergrad.analysis import figure as F
from sergrad.analysis import tables as T
from sergrad.errors import ConfigError, DataError

PANEL_KEYS = T.SETTING_KEYS
LABEL_BOX = {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}
NO_DEFENSE_MARKERS = ("*", "P", "X", "D")  # undefended point of each attack model


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


def _clip_percent(ax) -> None:
    """Keep percentage axes inside [0, 100] whatever the error bars reach."""
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(lo, 0.0), min(hi, 100.0))
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
    bootstrap interval. Hollow markers: no leak detected at this sample size (p >= 0.05)."""
    from sergrad.analysis.verdicts import INTERVAL, VERDICT_PROTOCOLS, verdict_tradeoff

    F.check_output(out)
    if metric != "uar":
        raise ConfigError(f"metric {metric!r}: the trade-off's x axis is the verdict (uar)")
    protocols = VERDICT_PROTOCOLS if protocol is None else (protocol,)
    data = verdict_tradeoff(store_uri, where=where, layer=layer, n_avg=n_avg, protocols=protocols)
    data = _require(data, "tradeoff", "uar")
    keys = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    colours = _colours(data["defense_name"].to_list())
    fig, axes = F.panels(len(keys))
    for ax, key in zip(axes, keys):
        sub = data.filter(pl.all_horizontal([pl.col(k) == v for k, v in zip(PANEL_KEYS, key)]))
        for (name,), s in sub.group_by(["defense_name"], maintain_order=True):
            s = s.sort("level", nulls_last=False)
            x, y = s["uar"].to_numpy() * 100, s["ser_uar_mean"].to_numpy().astype(float) * 100
            c = colours[name]
            xerr = _verdict_err(s, "uar", "uar_ci_low", "uar_ci_high")
            yerr = _verdict_err(s, "ser_uar_mean", "ser_ci_low", "ser_ci_high")
            none = name == T.NO_DEFENSE
            idx = sorted(colours).index(name)
            m = "*" if none else F.marker(idx)
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker=m, ls="none" if none else "-",
                        ms=12 if none else 6, color=c, elinewidth=0.8, capsize=2,
                        label="no defense" if none else name, zorder=5 if none else 4,
                        mfc=c)  # fmt: skip
            sig = s["significant"].to_list()
            hollow = [i for i, v in enumerate(sig) if v is False]
            if hollow:
                ax.plot(x[hollow], y[hollow], ls="none", marker=m, ms=12 if none else 6,
                        mfc="white", mec=c, zorder=6)  # fmt: skip
            for row, xi, yi in zip(s.iter_rows(named=True), x, y):
                if none:
                    continue
                eps = row["epsilon"]
                text = (
                    f"ε={eps:.3g}" if eps is not None and eps == eps else F.fmt_level(row["level"])
                )
                ax.annotate(text, (xi, yi), xytext=(4, 4), textcoords="offset points",
                            fontsize=8, color=c, bbox=LABEL_BOX)  # fmt: skip
                if row["ceiling_applies"] and row["ceiling"] is not None:
                    cx = row["ceiling"] * 100
                    ax.plot([xi, cx], [yi, yi], ":", color=c, lw=0.9, zorder=3)
                    ax.plot([cx], [yi], marker="|", ms=12, mew=2, color=c, ls="none", zorder=3,
                            label="DP ceiling on attack UAR (user-level ε)")  # fmt: skip
        ax.axvline(50, color="0.4", ls="--", lw=1, label="50% (no information)", zorder=1)
        ax.set_title(_panel_title(key), fontsize=10)
        ax.set_xlabel("verdict: attack UAR (%)  ← more private")
        ax.set_ylabel("SER test UAR (%)  ↑ more useful")
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.12)
        _clip_percent(ax)
    n_txt = "all" if n_avg == 0 else str(n_avg)
    fig.suptitle(f"Privacy-utility trade-off (attack on {data['layer'][0]}, n_avg={n_txt}); x: "
                 "strongest legitimate attacker's per-client UAR, "
                 f"{INTERVAL}\ny: SER mean, 95% t-interval with n >= 3 runs; "
                 "hollow: no leak detected at this sample size (p >= 0.05)", fontsize=10)  # fmt: skip
    F.legend_outside(fig, axes, title="defense (level or ε)")
    F.save(fig, out)
    return data


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
    keys = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    ns = sorted(data["n_avg"].unique().to_list(), key=lambda n: (n == 0, n))
    pos = {n: i for i, n in enumerate(ns)}
    series = data.select([*T.DEFENSE_KEYS, *T.ATTACKER_KEYS]).unique(maintain_order=True).rows()
    style = {s: i for i, s in enumerate(x for x in series if x[0] != T.NO_DEFENSE)}
    attackers = data.select(T.ATTACKER_KEYS).n_unique()
    fig, axes = F.panels(len(keys))
    for ax, key in zip(axes, keys):
        sub = data.filter(pl.all_horizontal([pl.col(k) == v for k, v in zip(PANEL_KEYS, key)]))
        for (name, level, attack, adaptive, calibration), s in sub.group_by(
            [*T.DEFENSE_KEYS, *T.ATTACKER_KEYS], maintain_order=True
        ):
            s = s.with_columns(pl.col("n_avg").replace_strict(pos).alias("_x")).sort("_x")
            i = style.get((name, level, attack, adaptive, calibration))
            c, m = (F.NO_DEFENSE_COLOR, "*") if i is None else (F.colour(i), F.marker(i))
            label = _series_label(name, attack, adaptive, attackers)
            if data["calibration"].n_unique() > 1:
                label += f" [{calibration}]"
            if name != T.NO_DEFENSE:
                label += f" {F.fmt_level(level)}"
            ax.errorbar(s["_x"].to_numpy(), s[f"{metric}_mean"].to_numpy() * 100,
                        yerr=_err(s, metric), marker=m, ms=7 if m == "*" else 5, color=c,
                        capsize=2, elinewidth=0.8, label=label)  # fmt: skip
        ax.axhline(T.CHANCE[metric] * 100, color="0.4", ls="--", lw=1, label="chance")
        ax.set_xticks(range(len(ns)), ["all" if n == 0 else str(n) for n in ns])
        ax.set_xlabel("updates averaged per prediction (n)")
        ax.set_ylabel(f"{F.METRIC_LABELS[metric]} (%)")
        ax.set_title(_panel_title(key), fontsize=10)
        ax.grid(alpha=0.3)
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 0.0), min(hi, 100.0))
    fig.suptitle(f"Attack success vs averaged updates ({data['layer'][0]}, {protocol}; "
                 "mean ± s.e. over folds x seeds)", fontsize=11)  # fmt: skip
    F.legend_outside(fig, axes, title="defense level")
    F.save(fig, out)
    return data


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
        figsize=(2.2 + 1.1 * len(layers) + 2.5, 1.4 + 0.42 * len(rows)), layout="constrained"
    )
    ax = fig.subplots()
    chance = T.CHANCE[metric] * 100
    im = ax.imshow(
        grid,
        cmap="cividis",
        vmin=min(chance, np.nanmin(grid)),
        vmax=max(np.nanmax(grid), chance + 1),
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
    ax.set_title(f"Per-layer leakage ({protocol}, n_avg={'all' if n_avg == 0 else n_avg}; {who})\n"
                 f"rows: {' · '.join(varying)}", fontsize=10)  # fmt: skip
    F.save(fig, out)
    return data

"""`sergrad plot attributes`: per-attribute leakage, layer x attribute, from the verdicts.

One panel per target corpus x feature set x algorithm (undefended targets by default); for
each attacked layer one bar per attribute: the verdict (strongest legitimate attacker,
per-client UAR at n_avg) minus that attribute's chance (1 / classes), in points, with the
95% cluster-bootstrap interval. Hollow bars: no leak detected at this sample size (adjusted
permutation p >= 0.05). Numeric attributes (age) have no chance level: their verdict is the
MAE gain over the predict-the-shadow-mean baseline, drawn in a second row of panels (years)
when the store holds one.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
from matplotlib.patches import Patch

from sergrad.analysis import figure as F
from sergrad.analysis import tables as T
from sergrad.analysis import verdicts as V
from sergrad.analysis.stats import N_BOOT, N_PERM
from sergrad.errors import DataError

PANEL_KEYS = [k for k in T.SETTING_KEYS if k != "attribute"]
MAX_COLS = 3
FIXED_COLOURS = ("gender", "age_group", "language", "age", "race", "ethnicity")


def attribute_table(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    n_avg: int = 1,
    defense: str | None = T.NO_DEFENSE,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
) -> pl.DataFrame:
    """The verdicts of every attribute x layer (undefended by default), with `leak` = uar -
    chance (classes) or the MAE gain (numeric) and its interval in the same unit."""
    v = V.verdicts(store_uri, where=where, n_avg=n_avg, n_boot=n_boot, n_perm=n_perm)
    if v.is_empty():
        raise DataError("no verdicts for the attributes plot (no per-client attack rows)")
    if defense is not None:
        v = v.filter(pl.col("defense_name") == defense)
    for col in ("chance", "mae_gain", "mae_gain_ci_low", "mae_gain_ci_high"):
        if col not in v.columns:
            v = v.with_columns(pl.lit(None, pl.Float64).alias(col))
    numeric = pl.col("uar").is_null()
    return v.with_columns(
        pl.when(numeric).then(pl.col("mae_gain")).otherwise(pl.col("uar") - pl.col("chance"))
        .alias("leak"),
        pl.when(numeric).then(pl.col("mae_gain_ci_low"))
        .otherwise(pl.col("uar_ci_low") - pl.col("chance")).alias("leak_ci_low"),
        pl.when(numeric).then(pl.col("mae_gain_ci_high"))
        .otherwise(pl.col("uar_ci_high") - pl.col("chance")).alias("leak_ci_high"),
        pl.when(numeric).then(pl.lit("numeric")).otherwise(pl.lit("classes")).alias("scale"),
    ).sort([*PANEL_KEYS, "attribute", "layer"])  # fmt: skip


def has_several_attributes(store_uri: str | os.PathLike, where: str | None = None) -> bool:
    """Whether the (filtered) attack rows hold more than one attacked attribute."""
    rows = T.attack_rows(store_uri, where=where)
    return "attribute" in rows.columns and rows["attribute"].n_unique() > 1


SUMMARY_COLUMNS = ["attribute", *PANEL_KEYS, "layer", "attack", "calibration", "protocol",
                   "uar", "chance", "uar_ci_low", "uar_ci_high", "mae_gain", "mae_gain_ci_low",
                   "mae_gain_ci_high", "p_value_adjusted", "significant", "n_runs",
                   "n_speakers"]  # fmt: skip


def attribute_summary(store_uri: str | os.PathLike, *, where: str | None = None) -> pl.DataFrame:
    """The report's table under the figure: attribute_table's verdict columns."""
    data = attribute_table(store_uri, where=where)
    return data.select([c for c in SUMMARY_COLUMNS if c in data.columns])


def plot_attributes(
    store_uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    n_avg: int = 1,
    defense: str | None = T.NO_DEFENSE,
) -> pl.DataFrame:
    """Grouped bars: per layer, one bar per attribute of verdict minus chance (points)."""
    F.check_output(out)
    data = attribute_table(store_uri, where=where, n_avg=n_avg, defense=defense)
    if data.is_empty():
        raise DataError(f"no verdicts for the attributes plot (defense {defense!r})")
    panels = data.select(PANEL_KEYS).unique(maintain_order=True).rows()
    scales = [s for s in ("classes", "numeric") if s in data["scale"].to_list()]
    cols = min(MAX_COLS, len(panels))
    grid_rows = -(-len(panels) // cols)  # panel rows per scale
    fig = F.Figure(figsize=(1.0 + 4.4 * cols, 0.9 + 3.2 * grid_rows * len(scales)),
                   layout="constrained")  # fmt: skip
    axes = fig.subplots(grid_rows * len(scales), cols, squeeze=False)
    attributes = sorted(data["attribute"].unique().to_list())
    order = [*FIXED_COLOURS, *(a for a in attributes if a not in FIXED_COLOURS)]
    colours = {a: F.colour(order.index(a)) for a in attributes}  # one colour per attribute
    layers = sorted(data["layer"].unique().to_list(), key=lambda s: (s == "fusion", s))
    labels: dict[str, str] = {}
    for row_block, scale in enumerate(scales):
        used = []
        for i, key in enumerate(panels):
            ax = axes[row_block * grid_rows + i // cols, i % cols]
            sub = data.filter(pl.col("scale") == scale)
            for k, name in enumerate(PANEL_KEYS):
                sub = sub.filter(pl.col(name) == key[k])
            if sub.is_empty():
                ax.set_visible(False)
                continue
            used.append(ax)
            _bars(ax, sub, scale, attributes, colours, layers, labels)
            ax.set_title(" · ".join(str(v) for v in key), fontsize=9)
        for i in range(len(panels), grid_rows * cols):
            axes[row_block * grid_rows + i // cols, i % cols].set_visible(False)
        lims = [ax.get_ylim() for ax in used]
        for ax in used:  # one y range per scale: panels compare at a glance
            ax.set_ylim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    handles = [Patch(facecolor=colours[a], edgecolor=colours[a], label=lab)
               for a, lab in labels.items()]  # fmt: skip
    if not data["significant"].fill_null(True).all():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="no leak detected at this sample size"))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)),
               fontsize=8, frameon=False)  # fmt: skip
    F.suptitle(fig, f"Leakage per attribute (per-client, n_avg={'all' if n_avg == 0 else n_avg};"
                    f" {'undefended targets' if defense == T.NO_DEFENSE else defense or 'all'})\n"
                    "bars: 95% cluster bootstrap over runs and speakers")  # fmt: skip
    F.save(fig, out)
    return data


def _bars(ax, sub: pl.DataFrame, scale: str, attributes, colours, layers, labels) -> None:
    """One panel: per layer, one bar per attribute (hollow when not significant), with
    the verdict's interval."""
    present = [a for a in attributes if a in sub["attribute"].to_list()]
    width = 0.8 / max(1, len(present))
    scale_by = 100.0 if scale == "classes" else 1.0  # points; years for numeric
    for j, attr in enumerate(present):
        s = sub.filter(pl.col("attribute") == attr)
        x = np.array([layers.index(name) for name in s["layer"]])
        x = x + (j - (len(present) - 1) / 2) * width
        y = s["leak"].to_numpy().astype(float) * scale_by
        lo = s["leak_ci_low"].to_numpy().astype(float) * scale_by
        hi = s["leak_ci_high"].to_numpy().astype(float) * scale_by
        chance = s["chance"][0]
        labels[attr] = attr if scale == "numeric" else f"{attr} (chance {chance * 100:.0f}%)"
        bars = ax.bar(x, y, width * 0.92, color=colours[attr], edgecolor=colours[attr])
        for b, ok in zip(bars, s["significant"].fill_null(True).to_list()):
            if not ok:
                b.set_facecolor("white")
                b.set_hatch("///")
        err = np.vstack([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])
        if not np.all(np.isnan(err)):
            ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(layers)), layers)
    ax.set_xlabel("layer (parameter group attacked)")
    ax.set_ylabel("verdict UAR − chance (points)" if scale == "classes"
                  else "MAE gain over baseline (years)")  # fmt: skip

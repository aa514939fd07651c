"""Key findings: the report's opening section, generated from the store (never hand-written).

Per target corpus x feature set x algorithm:
- SER utility without defense (mean test UAR of the undefended target runs, interval, n);
- per layer, the strongest legitimate attacker on undefended targets (verdicts.py);
- per defense and level: the SER cost, the strongest attack left on the first layer with one
  update and with all of a client's updates averaged, the empirical epsilon lower bound
  (eps_lb) beside the accountant's epsilon, and any DP violation (eps_lb above the local
  mechanism's epsilon: a bug).

A verdict that is not significant reads "no leak detected at this sample size", never
"chance"; a degenerate attacker (every prediction one class) is named as such.

`findings_frame` returns the rows; `findings_html` renders them as an HTML fragment.
"""

from __future__ import annotations

import html
import os

import numpy as np
import polars as pl

from sergrad.analysis import audits as A
from sergrad.analysis import tables as T
from sergrad.analysis import verdicts as V
from sergrad.analysis.stats import INTERVAL as T_INTERVAL
from sergrad.analysis.stats import N_BOOT, N_PERM, t_interval
from sergrad.errors import DataError

GROUP_KEYS: list[str] = T.SETTING_KEYS


def _pct(x) -> str:
    return "" if x is None or x != x else f"{x * 100:.1f}"


def _ser(values: list[float]) -> str:
    if not values:
        return "no runs"
    lo, hi = t_interval(values)
    ci = f" [{_pct(lo)}, {_pct(hi)}]" if lo is not None else ""
    return f"{_pct(float(np.mean(values)))}%{ci} (n={len(values)})"


def _eps_rows(store_uri, where) -> pl.DataFrame:
    """Per cell (fc layer), the largest eps_lb over shadow-calibrated attackers, the
    mechanism epsilon and whether any row violated it."""
    rows = T.attack_rows(store_uri, where=where).filter(pl.col("eps_lb").is_not_null())
    keys = [*GROUP_KEYS, *T.DEFENSE_KEYS, "layer", "n_avg"]
    return rows.group_by(keys).agg(*T.eps_aggregates())


def _lookup(frame: pl.DataFrame, **eq) -> dict | None:
    if frame.is_empty():
        return None
    cond = [
        pl.col(k).is_null() if v is None else pl.col(k) == v
        for k, v in eq.items()
        if k in frame.columns
    ]
    sub = frame.filter(pl.all_horizontal(cond)) if cond else frame
    return sub.row(0, named=True) if sub.height else None


def findings_frame(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
) -> pl.DataFrame:
    """One row per setting x defense x level x layer with the text of each finding."""
    one = V.verdicts(store_uri, where=where, n_avg=1, n_boot=n_boot, n_perm=n_perm)
    if one.is_empty():
        raise DataError("no per-client attack rows: no findings (run per_client protocols)")
    every = V.verdicts(store_uri, where=where, n_avg=0, n_boot=n_boot, n_perm=n_perm, seed=1)
    eps = _eps_rows(store_uri, where)
    canary = A.canary_table_or_empty(store_uri, where=where)
    out = []
    for row in one.iter_rows(named=True):
        cell = {k: row[k] for k in [*GROUP_KEYS, *T.DEFENSE_KEYS, "layer"]}
        all_row = _lookup(every, **cell)
        e = _lookup(eps, **cell, n_avg=1)
        c = _lookup(canary, **{k: cell[k] for k in A.CELL_KEYS})
        out.append({
            **cell,
            "verdict_1": V.verdict_text(row),
            "verdict_all": V.verdict_text(all_row) if all_row else "not evaluated",
            "uar_1": row.get("uar"), "uar_1_ci_low": row.get("uar_ci_low"),
            "uar_1_ci_high": row.get("uar_ci_high"), "p_value_1": row["p_value"],
            "uar_all": all_row.get("uar") if all_row else None,
            "ser": row.get("ser_uar_mean"), "ser_n": row.get("ser_n"),
            "eps_lb": e["eps_lb"] if e else None,
            "mechanism_epsilon": e["mechanism_epsilon"] if e else None,
            "eps_violation": bool(e["eps_violation"]) if e else False,
            "epsilon": row.get("epsilon"),
            "canary": A.canary_text(c) if c else None,
            "canary_eps_lb": c["canary_eps_lb"] if c else None,
            "canary_violation": bool(c["canary_violation"]) if c else False,
        })  # fmt: skip
    return pl.DataFrame(out, infer_schema_length=None)


def _ser_values(rows: pl.DataFrame, key: tuple, defense: str, level) -> list[float]:
    """SER UARs of the distinct target runs of one setting x defense x level in `rows`
    (`tables.attack_rows`, read once per report)."""
    cond = [pl.col(k) == v for k, v in zip(GROUP_KEYS, key)]
    cond.append(pl.col("defense_name") == defense)
    cond.append(pl.col("level").is_null() if level is None else pl.col("level") == level)
    runs = rows.filter(pl.all_horizontal(cond)).unique(subset="target_run")
    return [v for v in runs["ser_uar"].to_list() if v is not None and v == v]


def _eps_text(r: dict) -> str:
    parts = []
    if r["eps_lb"] is not None:
        parts.append(f"ε̂ ≥ {r['eps_lb']:.2f}")
    if r["epsilon"] is not None and r["epsilon"] == r["epsilon"]:
        parts.append(f"accountant ε = {r['epsilon']:.3g}")
    if r["mechanism_epsilon"] is not None:
        parts.append(f"mechanism ε (per update, replacement) = {r['mechanism_epsilon']:.3g}")
    text = "; ".join(parts) or "—"
    if r["eps_violation"]:
        out = f"<b style='color:#a00'>DP VIOLATION (ε̂ above the mechanism's ε): {text}</b>"
    else:
        out = html.escape(text)
    if r.get("canary"):  # the canary audit: a different threat model, its own line
        canary = html.escape(r["canary"])
        out += "<br>" + (f"<b style='color:#a00'>{canary}</b>" if r.get("canary_violation")
                         else canary)  # fmt: skip
    return out


def findings_html(
    store_uri: str | os.PathLike,
    *,
    where: str | None = None,
    layer: str | None = None,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
) -> str:
    """The findings section as an HTML fragment (h2, one block per setting)."""
    try:
        f = findings_frame(store_uri, where=where, n_boot=n_boot, n_perm=n_perm)
    except DataError as exc:
        return f"<h2>Key findings</h2><p class='nodata'>{html.escape(str(exc))}</p>"
    layer = T.resolve_layer(f, layer)
    rows = T.attack_rows(store_uri, where=where)
    parts = [
        "<h2>Key findings</h2>",
        "<p>Verdict = the strongest legitimate attacker (max over attack models, shadow/prior "
        "calibration, adaptive or not, per_client / per_client_vote) of per-client UAR; "
        f"interval: {html.escape(V.INTERVAL)}; p: one-sided permutation test over speaker "
        "labels (in brackets: Bonferroni-adjusted for the attackers compared; significance "
        f"uses it). SER: mean test UAR, {html.escape(T_INTERVAL)}. ε̂: 95% Clopper-Pearson lower "
        "bound on epsilon from one update per client with the shadow threshold (largest over "
        "attackers, not corrected for their number). The oracle threshold never gives a "
        "verdict.</p>",
    ]
    for key, g in f.group_by(GROUP_KEYS, maintain_order=True):
        title = " · ".join(str(k) for k in key)
        base = _ser_values(rows, key, T.NO_DEFENSE, None)
        parts.append(f"<h3>{html.escape(title)}</h3><ul>")
        parts.append(f"<li>SER utility without defense: {html.escape(_ser(base))}</li>")
        undefended = g.filter(pl.col("defense_name") == T.NO_DEFENSE)
        for r in undefended.sort("layer").iter_rows(named=True):
            parts.append(
                f"<li>strongest attack on {html.escape(r['layer'])} (undefended, one update): "
                f"{html.escape(r['verdict_1'])}; all updates averaged: "
                f"{html.escape(r['verdict_all'])}</li>"
            )
        parts.append("</ul>")
        defended = g.filter((pl.col("defense_name") != T.NO_DEFENSE) & (pl.col("layer") == layer))
        if defended.is_empty():
            continue
        head = ("<tr><th>defense</th><th>level</th><th>SER UAR (%)</th><th>SER cost (points lost)"
                f"</th><th>strongest attack left on {html.escape(layer)}, one update</th>"
                "<th>all updates averaged</th><th>empirical ε vs accountant</th></tr>")  # fmt: skip
        body = []
        base_mean = float(np.mean(base)) if base else None
        for r in defended.sort(["defense_name", "level"]).iter_rows(named=True):
            vals = _ser_values(rows, key, r["defense_name"], r["level"])
            cost = (
                f"{(base_mean - float(np.mean(vals))) * 100:+.1f} (n={len(vals)} vs {len(base)})"
                if vals and base_mean is not None
                else ""
            )
            level = "" if r["level"] is None else f"{r['level']:g}"
            body.append(
                f"<tr><td>{html.escape(r['defense_name'])}</td><td>{level}</td>"
                f"<td>{html.escape(_ser(vals))}</td><td>{cost}</td>"
                f"<td>{html.escape(r['verdict_1'])}</td><td>{html.escape(r['verdict_all'])}</td>"
                f"<td>{_eps_text(r)}</td></tr>"
            )
        parts.append(f"<table>{head}{''.join(body)}</table>")
    return "".join(parts)

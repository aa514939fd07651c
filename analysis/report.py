"""`sergrad report STORE -o DIR`: one self-contained HTML page plus the figures as files.

DIR/index.html holds every table (HTML), every figure (PNG embedded as a data URI, and the
same file beside it in DIR) and the sweep definition the store came from (sweep.json, in a
<pre> block). Sections whose data is missing say "no data" instead of failing.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from sergrad.analysis import load
from sergrad.analysis import plots as P
from sergrad.analysis import plots_runs as R
from sergrad.analysis import tables as T
from sergrad.analysis.findings import findings_html
from sergrad.errors import DataError

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;
padding:3px 7px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;padding:1em;overflow:auto;
max-height:30em;font-size:12px}.nodata{color:#a00;font-style:italic}figcaption{font-size:13px;color:#555}"""

FIGURES: dict[str, tuple[str, Callable]] = {
    "tradeoff": ("Privacy-utility trade-off", P.plot_tradeoff),
    "updates": ("Attack success against averaged updates", P.plot_updates),
    "layers": ("Per-layer leakage", P.plot_layers),
    "epsilon": ("Privacy loss against rounds", R.plot_epsilon),
    "eps_lb": ("Empirical epsilon beside the accountant's", P.plot_eps_lb),
    "roc": ("Attack ROC curves (log-log)", R.plot_roc),
}
CAPTIONS: dict[str, str] = {
    "tradeoff": "Each point is one defense level; x = the verdict, the strongest legitimate "
    "attacker's per-client UAR (bars: 95% cluster bootstrap over runs and speakers); y = SER "
    "test UAR (bars: 95% t-interval, only with >= 3 runs). Up and left is better. Hollow: no "
    "leak detected at this sample size (permutation p >= 0.05 after adjusting for the attackers compared), which is not a proof of "
    "privacy. The star is the undefended model; '|' marks the DP ceiling on attack UAR implied "
    "by a user-level epsilon, which no attacker can beat.",
    "updates": "Averaging more of a client's updates before predicting removes per-update noise: "
    "a defense that only holds at n = 1 leaks when the attacker averages (n = all).",
    "layers": "Attack UAR per attacked parameter group on undefended targets.",
    "epsilon": "Epsilon spent so far, per round, for runs with an accountant.",
    "eps_lb": "Bars: the largest 95% Clopper-Pearson lower bound on epsilon any attacker "
    "demonstrates (one update per client, threshold fixed on shadow data): an effective epsilon "
    "for every defense, including those without a guarantee. Diamonds: the accountant's epsilon "
    "(what the guarantee protects: utterances for dp_sgd, clients for user_dp). Triangles: the "
    "per-update epsilon of the local Gaussian mechanism; a bar above it is a bug.",
    "roc": "Pooled predictions of the undefended targets (the 12 strongest attacks); low-FPR behaviour shows on log axes.",
}


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def frame_html(frame: pl.DataFrame, *, max_rows: int = 300) -> str:
    """An HTML table of `frame` (first `max_rows` rows); "no data" when empty."""
    if frame.is_empty():
        return '<p class="nodata">no data</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.head(max_rows).iter_rows()
    )
    more = f"<p>... {frame.height - max_rows} more rows</p>" if frame.height > max_rows else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def compact(
    frame: pl.DataFrame, metrics: list[str], *, drop: list[str] | None = None
) -> pl.DataFrame:
    """Replace `{m}_mean/_std/_ci_low/_ci_high/_n` by one "m (%)" column "63.0 ± 4.1 (n=4)"."""
    out = frame
    for m in metrics:
        if f"{m}_mean" not in out.columns:
            continue
        mean, lo, hi = (pl.col(f"{m}_{s}") * 100 for s in ("mean", "ci_low", "ci_high"))
        half = ((hi - lo) / 2).round(1).cast(pl.String)
        text = (
            mean.round(1).cast(pl.String)
            + pl.when(lo.is_not_null()).then(pl.lit(" ± ") + half).otherwise(pl.lit(""))
            + pl.lit(" (n=")
            + pl.col(f"{m}_n").cast(pl.String)
            + pl.lit(")")
        )
        out = out.with_columns(text.alias(f"{m} (%)")).drop(
            [f"{m}_{s}" for s in ("mean", "std", "ci_low", "ci_high", "n")], strict=False
        )
    return out.drop(drop or [], strict=False)


def _tables(store_uri: str | os.PathLike, where: str | None) -> dict[str, pl.DataFrame]:
    def safe(fn, **kw) -> pl.DataFrame:
        try:
            return fn(store_uri, **kw)
        except DataError:
            return pl.DataFrame()

    tradeoff = safe(T.tradeoff_table, where=where)
    if "ceiling_applies" in tradeoff.columns:  # the bound holds for user-level guarantees only
        applies = pl.col("ceiling_applies")
        tradeoff = tradeoff.with_columns(pl.when(applies).then(pl.col("ceiling")).alias("ceiling"))
    return {
        "ser": compact(safe(T.ser_table), ["uar", "acc"]),
        "tradeoff": compact(tradeoff, ["uar", "ser"], drop=["ceiling_applies"]),
        "updates": compact(safe(T.updates_table, where=where), ["uar"], drop=["n_avg"]),
        "layers": compact(safe(T.layer_table, where=where), ["uar"]),
    }


def _figure(name: str, fn: Callable, store_uri, out_dir: Path, where: str | None) -> str:
    title, path = FIGURES[name][0], out_dir / f"{name}.png"
    try:
        fn(store_uri, path, where=where)
    except DataError as exc:
        return (
            f"<h2>{html.escape(title)}</h2><p class='nodata'>no data ({html.escape(str(exc))})</p>"
        )
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f"<h2>{html.escape(title)}</h2><figure><a href='{path.name}'>"
        f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'></a>"
        f"<figcaption>{html.escape(CAPTIONS[name])} File: <a href='{path.name}'>{path.name}</a>"
        "</figcaption></figure>"
    )


def _counts(store_uri) -> str:
    runs = load.scan(store_uri, "runs").select("status", "role").collect()
    attacks = load.scan(store_uri, "attacks").select("eval_id").collect()
    ok = runs.filter(pl.col("status") == "ok").height
    return (
        f"<p>{runs.height} runs ({ok} ok, {runs.height - ok} failed), "
        f"{attacks['eval_id'].n_unique()} attack evaluations ({attacks.height} rows).</p>"
    )


def write_report(
    store_uri: str | os.PathLike, out_dir: str | os.PathLike, *, where: str | None = None
) -> Path:
    """Write DIR/index.html and DIR/<figure>.png; returns the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = _tables(store_uri, where)
    sweep = load.read_sweep(store_uri)
    parts = [
        f"<h1>sergrad report</h1><p>Store: <code>{html.escape(str(store_uri))}</code>, written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
        + (f", filter <code>{html.escape(where)}</code>" if where else "")
        + "</p>",
        _counts(store_uri),
        findings_html(store_uri, where=where),
        "<p>Table values are means over folds x seeds with a 95% Student-t interval (± "
        "half-width) only where n >= 3, clipped to [0, 100]; n = number of runs or "
        "evaluations.</p>",
        "<h2>SER utility (undefended target runs)</h2>",
        frame_html(tables["ser"]),
    ]
    sections = [("tradeoff", "Privacy vs utility per defense level"),
                ("updates", "Attack vs number of averaged updates"),
                ("layers", "Attack per layer (undefended)")]  # fmt: skip
    for name in FIGURES:
        print(f"[report] {name}", file=sys.stderr)
        parts.append(_figure(name, FIGURES[name][1], store_uri, out_dir, where))
        for key, heading in sections:
            if key == name:
                parts += [f"<h3>{heading}</h3>", frame_html(tables[key])]
    sweep_text = (
        json.dumps(sweep, indent=2, sort_keys=True) if sweep else "no sweep.json in the store"
    )
    parts += [
        "<h2>Sweep definition (sweep.json)</h2>",
        f"<pre>{html.escape(sweep_text, quote=False)}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sergrad report</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path

"""`sergrad report STORE -o DIR`: one self-contained HTML page plus the figures and tables as files.

DIR/index.html holds, in order: the store and filter, key findings (analysis/findings.py when
present), the SER utility table, each figure (PNG embedded as a data URI and beside it in DIR)
with its table (constant columns stated once, long tables folded, every table also as
DIR/<name>.csv), and the resolved sweep settings. Sections whose data is missing say "no data".

`--where` uses one vocabulary everywhere (query.ALIASES: corpus and target_corpus, defense_name,
level, run_seed work on every view); a column no view has is an error before anything is
written; a section whose view lacks a filtered column says so instead of showing unfiltered data.
The page is built in a temporary folder next to DIR and renamed into place: a failing report
leaves no partial folder, and replaces an earlier report only when it succeeds.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl

from sergrad.analysis import load
from sergrad.analysis import plots as P
from sergrad.analysis import plots_attributes as PA
from sergrad.analysis import plots_runs as R
from sergrad.analysis import plots_secagg as SA
from sergrad.analysis import report_html as H
from sergrad.analysis import tables as T
from sergrad.analysis.findings import findings_html
from sergrad.analysis.query import vocabulary, where_columns
from sergrad.errors import ConfigError, DataError

compact = H.compact  # re-exported: older callers import it from here


@dataclass(frozen=True)
class Figure:
    title: str
    plot: Callable
    view: str  # the view --where filters for this figure
    caption: str
    table: str | None = None  # key of the table shown under it
    when: Callable | None = None  # (store_uri, where) -> bool: draw only then


FIGURES: dict[str, Figure] = {
    "tradeoff": Figure("Privacy-utility trade-off", P.plot_tradeoff, "results",
        "Each point is one defense level; x = the verdict, the strongest legitimate attacker's "
        "per-client UAR (bars: 95% cluster bootstrap over runs and speakers); y = SER test UAR "
        "(bars: 95% t-interval, only with >= 3 runs). Up and left is better. Hollow: no leak "
        "detected at this sample size (permutation p >= 0.05 after adjusting for the attackers "
        "compared), which is not a proof of privacy. "
        "Colour and marker = defense (black star = no defense); labels give ε, else the level; "
        "points that coincide are drawn side by side. '|' marks the DP ceiling on attack UAR "
        "implied by a user-level epsilon, which no attacker can beat.", "tradeoff"),
    "updates": Figure("Attack success against averaged updates", P.plot_updates, "results",
        "Averaging more of a client's updates before predicting removes per-update noise: a "
        "defense that only holds at n = 1 leaks when the attacker averages (n = all). Bars = ±1 "
        "standard error; series at the same value are drawn side by side.", "updates"),
    "layers": Figure("Per-layer leakage", P.plot_layers, "results",
        "Attack UAR per attacked parameter group on undefended targets (mean over folds x seeds).",
        "layers"),
    "epsilon": Figure("Privacy loss against rounds", R.plot_epsilon, "round_results",
        "Epsilon spent so far, per round, for runs with an accountant (line: mean over runs; "
        "band: min..max). Series with the same curve share one line and say so in the legend."),
    "eps_lb": Figure("Empirical epsilon beside the accountant's", P.plot_eps_lb, "results",
        "Bars: the largest 95% Clopper-Pearson lower bound on epsilon any attacker demonstrates "
        "(one update per client, threshold fixed on shadow data): an effective epsilon for every "
        "defense, including those without a guarantee. Diamonds: the accountant's epsilon (what "
        "the guarantee protects: utterances for dp_sgd, clients for user_dp). Triangles: the "
        "per-update epsilon of the local Gaussian mechanism; a bar above it is a bug. Green "
        "stars: the one-run canary audit (Steinke, Nasr, Jagielski 2023; audits table) of the "
        "dp_sgd and central user_dp cells, with its number of canaries in the legend: a "
        "different threat model from the attribute attack. It inserts worst-case canaries "
        "(gradients for dp_sgd, clients for central user_dp) with probability 1/2 into the "
        "run's own mechanism (clip, noise, sampling rate, steps) and tests the accountant's "
        "epsilon itself; the attribute attack measures what a realistic attacker learns about a "
        "speaker. A star above its diamond is a DP violation: a bug."),
    "roc": Figure("Attack ROC curves (log-log)", R.plot_roc, "scored_predictions",
        "Pooled predictions of the undefended targets (at most the 12 strongest attacks); "
        "low-FPR behaviour shows on log axes."),
    "attributes": Figure("Leakage per speaker attribute", PA.plot_attributes, "results",
        "Per attacked layer, one bar per speaker attribute: the verdict (strongest legitimate "
        "attacker, per-client UAR, one update per client) minus that attribute's chance level "
        "(1 / classes), in points, on undefended targets; bars: 95% cluster bootstrap over runs "
        "and speakers; hollow: no leak detected at this sample size (adjusted permutation p >= "
        "0.05). Numeric attributes (age) have no chance level: their row shows the MAE gain in "
        "years over an attacker who predicts the shadow population's mean for everyone.",
        "attributes", when=PA.has_several_attributes),
}  # fmt: skip
TABLE_TITLES = {
    "tradeoff": "Privacy vs utility per defense level",
    "updates": "Attack vs number of averaged updates",
    "layers": "Attack per layer (undefended)",
    "attributes": "Verdict per attribute and layer (undefended)",
}


@dataclass
class Context:
    store_uri: str | os.PathLike
    out_dir: Path
    where: str | None
    where_cols: frozenset[str]
    view_cols: dict[str, set[str]]

    @cached_property
    def tables(self) -> dict[str, pl.DataFrame]:
        return _tables(self)

    def skipped(self, view: str) -> str | None:
        """An HTML note when the filter reads columns `view` does not have, else None."""
        missing = sorted(self.where_cols - self.view_cols[view])
        if not missing:
            return None
        return (f"<p class='nodata'>not shown: the filter reads {', '.join(missing)}, which the "
                f"{view} view does not have</p>")  # fmt: skip


def _context(store_uri, out_dir: Path, where: str | None) -> Context:
    frames = load.frames(store_uri)
    view_cols = {n: vocabulary(lf.collect_schema().names()) for n, lf in frames.items()}
    needed = frozenset(where_columns(where)) if where else frozenset()
    known = set().union(*view_cols.values())
    unknown = sorted(needed - known)
    if unknown:
        raise ConfigError(f"--where {where!r}: no table or view has column(s) {unknown}; "
                          f"columns: {', '.join(sorted(known))}")  # fmt: skip
    return Context(store_uri, out_dir, where, needed, view_cols)


def _safe(fn, ctx: Context, **kw) -> pl.DataFrame:
    try:
        return fn(ctx.store_uri, where=ctx.where, **kw)
    except DataError:
        return pl.DataFrame()


def _tables(ctx: Context) -> dict[str, pl.DataFrame]:
    tradeoff = _safe(T.tradeoff_table, ctx)
    if "ceiling_applies" in tradeoff.columns:  # the bound holds for user-level guarantees only
        applies = pl.col("ceiling_applies")
        tradeoff = tradeoff.with_columns(pl.when(applies).then(pl.col("ceiling")).alias("ceiling"))
    return {
        "tradeoff": H.compact(tradeoff, ["uar", "ser"], drop=["ceiling_applies"]),
        "updates": H.compact(_safe(T.updates_table, ctx), ["uar"], drop=["n_avg"]),
        "layers": H.compact(_safe(T.layer_table, ctx), ["uar"]),
        "attributes": PA.attribute_summary(ctx.store_uri, where=ctx.where)
        if PA.has_several_attributes(ctx.store_uri, ctx.where)
        else pl.DataFrame(),
    }


# --- sections, in page order; each returns an HTML fragment ---------------------------------
def _header(ctx: Context) -> str:
    runs = load.scan(ctx.store_uri, "runs").select("status", "role").collect()
    attacks = load.scan(ctx.store_uri, "attacks").select("eval_id").collect()
    ok = runs.filter(pl.col("status") == "ok").height
    where = f", filter <code>{html.escape(ctx.where)}</code>" if ctx.where else ""
    return (
        f"<h1>sergrad report</h1><p>Store: <code>{html.escape(str(ctx.store_uri))}</code>, "
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')}{where}.</p>"
        f"<p>{runs.height} runs ({ok} ok, {runs.height - ok} failed), "
        f"{attacks['eval_id'].n_unique()} attack evaluations ({attacks.height} rows). "
        "Table values are means over folds x seeds with a 95% Student-t interval (± half-width) "
        "only where n >= 3, clipped to [0, 100]; n = number of runs or evaluations. Figure "
        "captions state their bars.</p>"
    )


def _key_findings(ctx: Context) -> str:
    """Key findings open the report (analysis/findings.py, generated from the verdicts)."""
    note = ctx.skipped("results")
    return note or findings_html(ctx.store_uri, where=ctx.where)


def _ser(ctx: Context) -> str:
    head = "<h2>SER utility (undefended target runs)</h2>"
    note = ctx.skipped("runs")
    if note:
        return head + note
    frame = H.compact(_safe(T.ser_table, ctx), ["uar", "acc"])
    return head + H.table_html(frame, name="ser", out_dir=ctx.out_dir)


def _figure(name: str) -> Callable[[Context], str]:
    spec = FIGURES[name]

    def section(ctx: Context) -> str:
        print(f"[report] {name}", file=sys.stderr)
        if spec.when is not None and not spec.when(ctx.store_uri, ctx.where):
            return ""
        head = f"<h2>{html.escape(spec.title)}</h2>"
        note = ctx.skipped(spec.view)
        if note:
            return head + note
        path = ctx.out_dir / f"{name}.png"
        try:
            spec.plot(ctx.store_uri, path, where=ctx.where)
        except DataError as exc:
            return head + f"<p class='nodata'>no data ({html.escape(str(exc))})</p>"
        raw = path.read_bytes()
        data = base64.b64encode(raw).decode()
        px = H.png_width(raw)  # shown at 100 of its 150 dpi: every figure at one text size
        size = f" width='{px * 2 // 3}'" if px else ""
        out = (
            f"{head}<figure><a href='{path.name}'><img alt='{html.escape(spec.title)}'{size} "
            f"src='data:image/png;base64,{data}'></a><figcaption>{html.escape(spec.caption)} "
            f"File: <a href='{path.name}'>{path.name}</a></figcaption></figure>"
        )
        if spec.table:
            frame = ctx.tables[spec.table]
            out += f"<h3>{TABLE_TITLES[spec.table]}</h3>"
            out += H.table_html(frame, name=spec.table, out_dir=ctx.out_dir)
        return out

    return section


def _secagg(ctx: Context) -> str:
    """The cohort-size figure and its table, only when secure-aggregation rows exist."""
    if not SA.has_secagg_rows(ctx.store_uri):
        return ""
    head = "<h2>Secure aggregation: leakage against the cohort size</h2>"
    note = ctx.skipped("results")
    if note:
        return head + note
    path = ctx.out_dir / "secagg.png"
    try:
        frame = SA.plot_cohort(ctx.store_uri, path, where=ctx.where)
    except DataError as exc:
        return head + f"<p class='nodata'>no data ({html.escape(str(exc))})</p>"
    raw = path.read_bytes()
    px = H.png_width(raw)
    size = f" width='{px * 2 // 3}'" if px else ""
    caption = (
        "Under secure aggregation the server sees each round's aggregate only. Left "
        "(threat model secagg_aggregate, honest sampling): a ridge regression trained on shadow "
        "runs under the same secure aggregation predicts the fraction of F clients in each "
        "cohort; Spearman with its 95% interval (one run: bootstrap over rounds; several: "
        "t-interval over runs), n = aggregates scored. With one client per round this is the "
        "per-client attack. Right (secagg_controlled_sampling): a server that chooses the "
        "cohorts (S + {i}, then S: in two rounds, approximate; or two aggregation sessions of "
        "one round, exact) isolates client i's update by differencing; per-client UAR "
        "with the verdict machinery's cluster-bootstrap interval and permutation p, n = "
        "clients. Hollow: p >= 0.05. A minimum cohort size does not stop the second attack."
    )
    return (
        f"{head}<figure><a href='secagg.png'><img alt='secure aggregation'{size} "
        f"src='data:image/png;base64,{base64.b64encode(raw).decode()}'></a>"
        f"<figcaption>{html.escape(caption)} File: <a href='secagg.png'>secagg.png</a>"
        f"</figcaption></figure>"
        + H.table_html(frame, name="secagg", out_dir=ctx.out_dir)
        + _cohort_one(ctx)
    )


def _cohort_one(ctx: Context) -> str:
    frame = SA.cohort_one_check(ctx.store_uri, where=ctx.where)
    if frame.is_empty():
        return ""
    return (
        "<h3>Cohort of one against the attack on individual updates</h3><p>With one client "
        "per round the aggregate is that client's update: the composition regression, "
        "thresholded at 0.5, is a per-client classifier (cohort1_uar over cohort1_n rounds). "
        "Beside it, the best per-update attack on the undefended runs of this store "
        "(95% speaker bootstrap, per_update_n updates).</p>"
        + H.table_html(frame, name="secagg_cohort1", out_dir=ctx.out_dir)
    )


def _sweep(ctx: Context) -> str:
    return "<h2>Sweep settings</h2>" + H.sweep_html(load.read_sweep(ctx.store_uri))


SECTIONS: list[Callable[[Context], str]] = [
    _header, _key_findings, _ser, *(_figure(n) for n in FIGURES), _secagg, _sweep,
]  # fmt: skip


def _prepare(out_dir: Path) -> Path:
    """A fresh temporary folder beside `out_dir`; ConfigError if `out_dir` is something other
    than an earlier report (a file, or a folder with other contents) so it is never replaced."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(f"report folder {out_dir} exists and is a file")
        if any(out_dir.iterdir()) and not (out_dir / "index.html").is_file():
            raise ConfigError(f"report folder {out_dir} exists and holds no report: "
                              "choose a new or empty folder")  # fmt: skip
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished report into place (the earlier one is removed only afterwards)."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(
    store_uri: str | os.PathLike, out_dir: str | os.PathLike, *, where: str | None = None
) -> Path:
    """Write DIR/index.html, DIR/<figure>.png and DIR/<table>.csv; returns the HTML path."""
    out_dir = Path(out_dir)
    ctx = _context(store_uri, out_dir, where)  # a bad --where fails before anything is written
    tmp = _prepare(out_dir)
    try:
        ctx.out_dir = tmp
        parts = [section(ctx) for section in SECTIONS]
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sergrad report</title>"
            f"<style>{H.CSS}</style></head><body>{''.join(parts)}</body></html>"
        )
        (tmp / "index.html").write_text(page, encoding="utf-8")
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "index.html"

"""HTML pieces of the report: result tables that read like a paper's, and the sweep settings.

- `compact` turns `{m}_mean/_std/_ci_low/_ci_high/_n` into one "m (%)" column, "63.0 ± 4.1
  (n=4)" (mean and half-width of the 95% t-interval, kept on one line by the CSS).
- `table_html` states the columns that are constant across the table once above it, folds
  tables longer than FOLD_ROWS into <details>, and links the full table as CSV.
- `sweep_html` shows the resolved sweep grid as YAML with the run / evaluation ids folded.

>>> f = pl.DataFrame({"corpus": ["a", "b"], "layer": ["fc1", "fc1"], "uar": [0.6, 0.7]})
>>> varying, constant = split_constant(f)
>>> varying.columns, constant
(['corpus', 'uar'], {'layer': 'fc1'})
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import polars as pl
import yaml

FOLD_ROWS = 15
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.3em 0 0.5em}th,td{border:1px solid #ccc;
padding:3px 7px;text-align:left;vertical-align:top}th{background:#f0f0f0}
.tbl td,.tbl th{text-align:right}.tbl td.t,.tbl th.t{text-align:left}td.n{white-space:nowrap}
img{max-width:100%;height:auto;border:1px solid #eee}pre{background:#f7f7f7;padding:1em;
overflow:auto;max-height:40em;font-size:12px}.nodata{color:#a00;font-style:italic}
figcaption,.const,.csv{font-size:13px;color:#555}.const b{color:#222;font-weight:600}
details{margin:0.3em 0 1.2em}summary{cursor:pointer;color:#0645ad}.tbl{margin-bottom:1.5em}"""


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


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def split_constant(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, object]]:
    """(frame without the columns that hold one value in every row, {column: that value});
    a one-row table keeps its columns."""
    if frame.height < 2:
        return frame, {}
    constant = {
        c: frame[c][0]
        for c in frame.columns
        if not frame.schema[c].is_nested() and frame[c].n_unique() == 1
    }
    if len(constant) == len(frame.columns):  # keep something to show
        constant.pop(frame.columns[-1])
    return frame.drop(list(constant)), constant


def _rows_html(frame: pl.DataFrame) -> str:
    text_cols = {c for c, t in frame.schema.items() if not t.is_numeric()}
    # "63.0 ± 4.1 (n=4)" stays on one line (n); other text columns align left (t)
    cls = ["n" if c.endswith("(%)") else "t" if c in text_cols else "" for c in frame.columns]
    head = "".join(f"<th class='{k}'>{html.escape(c)}</th>" for c, k in zip(frame.columns, cls))
    body = "".join(
        "<tr>" + "".join(f"<td class='{k}'>{_cell(v)}</td>" for v, k in zip(row, cls)) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def table_html(frame: pl.DataFrame, *, name: str, out_dir: Path, fold_rows: int = FOLD_ROWS) -> str:
    """The table with its constant columns stated above it, folded when long, and the whole
    table (constant columns included) written to `out_dir/<name>.csv` and linked."""
    if frame.is_empty():
        return '<p class="nodata">no data</p>'
    csv = out_dir / f"{name}.csv"
    from sergrad.analysis.terminal import flat

    flat(frame).write_csv(csv)
    varying, constant = split_constant(frame)
    same = " · ".join(
        f"{html.escape(c)} = <b>{_cell(v)}</b>" for c, v in constant.items() if not _missing(v)
    )
    empty = ", ".join(html.escape(c) for c, v in constant.items() if _missing(v))
    notes = [f"In every row: {same}" if same else "", f"No values: {empty}" if empty else ""]
    text = ". ".join(n for n in notes if n)
    parts = [f"<p class='const'>{text}.</p>" if text else ""]
    link = f"<span class='csv'>(<a href='{csv.name}'>{csv.name}</a>, {frame.height} rows)</span>"
    if varying.height > fold_rows:
        parts.append(f"<details><summary>{varying.height} rows: show the table</summary>"
                     f"{_rows_html(varying)}</details>{link}")  # fmt: skip
    else:
        parts.append(_rows_html(varying) + link)
    return "<div class='tbl'>" + "".join(parts) + "</div>"


def png_width(data: bytes) -> int | None:
    """Pixel width from a PNG header (None if `data` is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(data[16:20], "big")


SWEEP_ORDER = ("name", "store", "corpora", "pairings", "features", "run", "defenses", "folds",
               "shadow_folds", "seeds", "attack", "resources")  # fmt: skip


def _flat(x, depth: int = 1) -> bool:
    """A scalar, or a list / mapping of scalars, or (depth 1) of such lists / mappings:
    written on one line ({grid: [0.5, 2.0]}, [{name: cnn, epochs: 2}])."""
    items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else None
    if items is None:
        return True
    return all(not isinstance(v, (dict, list)) or (depth > 0 and _flat(v, 0)) for v in items)


def _flow_lists(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    """Lists of scalars or of flat mappings on one line: [0, 1], [{name: cnn, epochs: 2}]."""
    flow = all(_flat(x) for x in data) and len(str(data)) <= 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _flow_dicts(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = _flat(data) and len(str(data)) <= 90
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


class _GridDumper(yaml.SafeDumper):
    pass


_GridDumper.add_representer(list, _flow_lists)
_GridDumper.add_representer(dict, _flow_dicts)


def sweep_yaml(definition: dict) -> str:
    """The resolved sweep definition as YAML in the sweep file's order, flat lists and
    mappings on one line."""
    first = [k for k in SWEEP_ORDER if k in definition]
    ordered = {k: definition[k] for k in [*first, *sorted(set(definition) - set(first))]}
    return yaml.dump(ordered, Dumper=_GridDumper, sort_keys=False, width=100,
                     allow_unicode=True)  # fmt: skip


def sweep_html(sweep: dict | None) -> str:
    """Name, source, counts, the resolved grid as YAML, and the job ids folded away."""
    if not sweep:
        return '<p class="nodata">no sweep.json in the store</p>'
    runs, evals = sweep.get("runs") or [], sweep.get("evals") or []
    roles = Counter(r.get("role", "?") for r in runs)
    count = ", ".join(f"{n} {role}" for role, n in sorted(roles.items()))
    head = (f"<p>Sweep <b>{html.escape(str(sweep.get('name', '?')))}</b> from "
            f"<code>{html.escape(str(sweep.get('source', '?')))}</code>, written "
            f"{html.escape(str(sweep.get('written_at', '?')))}: {len(runs)} FL runs ({count}), "
            f"{len(evals)} attack evaluations.</p>")  # fmt: skip
    grid = sweep.get("sweep", {k: v for k, v in sweep.items() if k not in ("runs", "evals")})
    body = f"<pre>{html.escape(sweep_yaml(grid), quote=False)}</pre>"
    ids = ""
    if runs or evals:
        lines = [f"run {r.get('id')}  {r.get('role', '')}  {r.get('corpus', '')}" for r in runs]
        lines += [f"eval {e.get('id')}  target {e.get('target_corpus', '')}" for e in evals]
        ids = (f"<details><summary>{len(runs) + len(evals)} run and evaluation ids</summary>"
               f"<pre>{html.escape(chr(10).join(lines), quote=False)}</pre></details>")  # fmt: skip
    return head + body + ids

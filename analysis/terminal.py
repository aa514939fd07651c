"""Printing frames: a text table that fits the terminal, or CSV / JSON / Markdown on stdout.

`render(frame, fmt, width=...)` returns the text; `emit(text)` prints it and survives a
closed pipe (`sergrad query ... | head` ends quietly, exit 0).

A text table never exceeds `width` characters: every column gets at least MIN_WIDTH
characters, wider cells are cut with "…" (the widest columns are narrowed first), and the
columns that still do not fit are listed in a note under the table, as are the cut ones.

>>> f = pl.DataFrame({"name": ["a" * 30, "b"], "x": [1.5, 2.0]})
>>> print(render(f, "table", width=20))
name             x
---------------- ---
aaaaaaaaaaaaaaa… 1.5
b                  2
(2 rows; cut to fit 20 characters: name; --format csv for full values)
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import polars as pl

from sergrad.errors import ConfigError

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")
MIN_WIDTH = 6
MAX_HEADER = 14
GAP = 1


def flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists, arrays and structs cast to strings (CSV and text cells hold scalars)."""
    nested = (pl.List, pl.Array, pl.Struct)
    return frame.select(
        [pl.col(c).cast(pl.String) if isinstance(t, nested) else pl.col(c)
         for c, t in frame.schema.items()]
    )  # fmt: skip


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "NaN" if v != v else f"{v:.6g}"
    return str(v).replace("\n", " ")


def _widths(cells: list[list[str]], names: list[str], width: int) -> tuple[list[int], int]:
    """(column widths, how many columns fit): shrink the widest columns first."""
    full = [max(len(n), *(len(r[i]) for r in cells)) if cells else len(n)
            for i, n in enumerate(names)]  # fmt: skip
    # a column is never cut below its header (up to MAX_HEADER characters) or MIN_WIDTH
    floor = [min(f, max(MIN_WIDTH, min(len(n), MAX_HEADER))) for f, n in zip(full, names)]
    shown = len(names)
    while shown > 1 and sum(floor[:shown]) + GAP * (shown - 1) > width:
        shown -= 1
    widths = full[:shown]
    budget = width - GAP * (shown - 1)
    while sum(widths) > budget:
        i = max(range(shown), key=lambda j: widths[j] - floor[j])
        if widths[i] <= floor[i]:
            break
        widths[i] -= 1
    return widths, shown


def _cut(text: str, w: int) -> str:
    return text if len(text) <= w else text[: max(w - 1, 0)] + "…"


def text_table(frame: pl.DataFrame, *, width: int, max_rows: int) -> str:
    names = frame.columns
    rows = [[_cell(v) for v in r] for r in frame.head(max_rows).iter_rows()]
    widths, shown = _widths(rows, names, width)
    numeric = [frame.schema[c].is_numeric() for c in names]

    def line(values: list[str]) -> str:
        parts = []
        for i, w in enumerate(widths):
            v = _cut(values[i], w)
            parts.append(v.rjust(w) if numeric[i] and values is not names else v.ljust(w))
        return (" " * GAP).join(parts).rstrip()

    out = [line(names), (" " * GAP).join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    notes = [
        f"{frame.height} rows" + (f", first {max_rows} shown" if frame.height > max_rows else "")
    ]
    cut = [names[i] for i in range(shown)
           if widths[i] < max(len(names[i]), *(len(r[i]) for r in rows), 0)]  # fmt: skip
    if cut:
        notes.append(f"cut to fit {width} characters: {', '.join(cut)}")
    if shown < len(names):
        notes.append(f"{len(names) - shown} more column(s) not shown: {', '.join(names[shown:])}")
    if cut or shown < len(names):
        notes.append("--format csv for full values")
    return "\n".join(out) + "\n(" + "; ".join(notes) + ")"


def markdown(frame: pl.DataFrame, *, max_rows: int) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if t.is_numeric() else "---" for t in frame.schema.values()) + "|"
    body = ["| " + " | ".join(esc(_cell(v)) for v in r) + " |"
            for r in frame.head(max_rows).iter_rows()]  # fmt: skip
    more = [f"\n({frame.height - max_rows} more rows)"] if frame.height > max_rows else []
    return "\n".join([head, rule, *body, *more])


def render(frame: pl.DataFrame, fmt: str = "table", *, width: int | None = None,
           max_rows: int = 50) -> str:  # fmt: skip
    """The frame as text in `fmt` (table | csv | json | markdown); csv and json hold all rows."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: valid: {', '.join(FORMATS)}")
    if fmt == "csv":
        return flat(frame).write_csv().rstrip("\n")
    if fmt == "json":
        return json.dumps(frame.to_dicts(), indent=1, default=str)
    if fmt == "markdown":
        return markdown(frame, max_rows=max_rows)
    if width is None:  # $COLUMNS, else the terminal's width, else 160 (a pipe or a file)
        width = shutil.get_terminal_size((160, 24)).columns
    return text_table(frame, width=max(width, 20), max_rows=max_rows)


def emit(text: str) -> None:
    """Print `text`; a reader that closed the pipe (`| head`) ends the output quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())

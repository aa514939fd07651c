"""Polars SQL over a results store: `sergrad query STORE "SQL" [-o out.csv|out.parquet]`.

Tables: runs, rounds, attacks, predictions (the store's tables, partition column included)
and the joined views results (attacks + target run), round_results (rounds + run) and
scored_predictions (predictions + evaluation, with y = 1 for male). See `load.py`.

>>> import tempfile
>>> run_query(tempfile.mkdtemp(), "SELECT count(*) AS n FROM runs").item()
0
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from sergrad.analysis import load
from sergrad.errors import ConfigError

OUTPUT_FORMATS: tuple[str, ...] = (".csv", ".parquet")


def table_names() -> list[str]:
    return [*load.TABLE_NAMES, *load.VIEWS]


def sql_context(
    store_uri: str | os.PathLike, *, storage_options: dict | None = None
) -> pl.SQLContext:
    """A SQLContext with every table and joined view of the store registered (lazily)."""
    return pl.SQLContext(frames=load.frames(store_uri, storage_options=storage_options))


def run_query(
    store_uri: str | os.PathLike, sql: str, *, storage_options: dict | None = None
) -> pl.DataFrame:
    """Run one SQL statement; a bad statement or unknown table raises ConfigError listing tables."""
    ctx = sql_context(store_uri, storage_options=storage_options)
    try:
        return ctx.execute(sql, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ConfigError(
            f"query failed: {_first_lines(exc)}\n  query: {sql}\n  tables: {', '.join(table_names())}"
        ) from exc


def _first_lines(exc: Exception, n: int = 3) -> str:
    """The message without Polars' query-plan dump."""
    text = str(exc).split("\n\nResolved plan")[0]
    return "\n".join(text.splitlines()[:n])


def apply_where(frame: pl.LazyFrame, where: str | None) -> pl.LazyFrame:
    """Filter with a Polars SQL condition (e.g. "target_corpus = 'iemocap' AND n_avg = 1")."""
    if not where:
        return frame
    try:
        out = frame.filter(pl.sql_expr(where))
        out.collect_schema()
        return out
    except (pl.exceptions.PolarsError, ValueError) as exc:
        cols = ", ".join(frame.collect_schema().names())
        raise ConfigError(f"--where {where!r}: {_first_lines(exc)}\n  columns: {cols}") from exc


def write_frame(frame: pl.DataFrame, path: str | os.PathLike) -> Path:
    """Write CSV or Parquet by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError(
            f"output {path}: unknown format {suffix!r}; valid: {', '.join(OUTPUT_FORMATS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        flat = frame.select(
            [
                pl.col(c).cast(pl.String)
                if isinstance(t, (pl.List, pl.Array, pl.Struct))
                else pl.col(c)
                for c, t in frame.schema.items()
            ]
        )
        flat.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def format_frame(frame: pl.DataFrame, *, max_rows: int = 50) -> str:
    """A printable table (all columns, up to `max_rows` rows)."""
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=40):
        return str(frame)

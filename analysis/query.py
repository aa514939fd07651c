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
    text = str(exc).split("\n\nResolved plan")[0].split("; valid columns:")[0]
    return "\n".join(text.splitlines()[:n])


# One --where vocabulary for every table and view: a column a frame lacks is derived from
# its counterpart when that one is there (runs say corpus, attacks say target_corpus, ...).
ALIASES: dict[str, pl.Expr] = {
    "corpus": pl.col("target_corpus"),
    "target_corpus": pl.col("corpus"),
    "defense_name": pl.col("defense").fill_null(load.NO_DEFENSE),
    "level": pl.col("defense_level").cast(pl.Float64),
    "run_seed": pl.col("seed"),
}


def where_columns(where: str) -> set[str]:
    """The column names a --where condition reads; ConfigError when it does not parse."""
    try:
        return set(pl.sql_expr(where).meta.root_names())
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ConfigError(f"--where {where!r}: {_first_lines(exc)}") from exc


def vocabulary(columns: list[str]) -> set[str]:
    """`columns` plus the aliases apply_where can derive from them."""
    have = set(columns)
    return have | {n for n, e in ALIASES.items() if set(e.meta.root_names()) <= have}


def apply_where(frame: pl.LazyFrame, where: str | None) -> pl.LazyFrame:
    """Filter with a Polars SQL condition (e.g. "corpus = 'iemocap' AND n_avg = 1"); the names
    of ALIASES work on every table and view (target_corpus on runs, corpus on attacks, ...)."""
    if not where:
        return frame
    names = frame.collect_schema().names()
    needed = where_columns(where)
    add = {n: e for n, e in ALIASES.items()
           if n in needed and n not in names and set(e.meta.root_names()) <= set(names)}  # fmt: skip
    try:
        out = frame.with_columns(**add).filter(pl.sql_expr(where)).drop(list(add))
        out.collect_schema()
        return out
    except (pl.exceptions.PolarsError, ValueError) as exc:
        cols = ", ".join(sorted(vocabulary(names)))
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
        from sergrad.analysis.terminal import flat

        flat(frame).write_csv(path)
    else:
        frame.write_parquet(path)
    return path


MAX_VALUES = 12  # a column with at most this many distinct values is listed as categorical
NOT_CATEGORICAL = frozenset({"run_id", "eval_id", "target_run", "utt_id", "speaker_id",
                             "shadow_runs", "config", "error", "path", "client_id", "trial",
                             "versions", "created_at"})  # fmt: skip
LEVEL_COLUMNS = frozenset({"level", "defense_level", "posthoc_level"})


def _categorical(name: str, dtype: pl.DataType) -> bool:
    if name in NOT_CATEGORICAL:
        return False
    return dtype in (pl.String, pl.Boolean) or dtype.is_integer() or name in LEVEL_COLUMNS


def schema_frame(
    store_uri: str | os.PathLike, *, storage_options: dict | None = None
) -> pl.DataFrame:
    """One row per table/view x column: dtype, and the sorted distinct values of categorical
    columns (strings, booleans, integers, levels with at most MAX_VALUES values; a view's
    column already described under a table is not repeated)."""
    rows, described = [], set()
    for name, lf in load.frames(store_uri, storage_options=storage_options).items():
        schema = lf.collect_schema()
        view = name not in load.TABLE_NAMES
        cats = [c for c, t in schema.items()
                if _categorical(c, t) and not (view and c in described)]  # fmt: skip
        vals = lf.select(
            [pl.col(c).drop_nulls().unique().sort().head(MAX_VALUES + 1).implode() for c in cats]
        ).collect() if cats else pl.DataFrame()  # fmt: skip
        for col, dtype in schema.items():
            text = ""
            if col in cats:
                values = vals[col][0].to_list()
                if 0 < len(values) <= MAX_VALUES:
                    text = ", ".join(_value(v) for v in values)
                elif values:
                    text = f"(more than {MAX_VALUES} values)"
            rows.append({"table": name, "column": col, "dtype": str(dtype), "values": text})
        described |= set() if view else set(schema)
    return pl.DataFrame(rows, schema={"table": pl.String, "column": pl.String,
                                      "dtype": pl.String, "values": pl.String})  # fmt: skip


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def format_schema(frame: pl.DataFrame) -> str:
    """`schema_frame` as text: one block per table, column / dtype / values."""
    out = []
    for (table,), g in frame.group_by("table", maintain_order=True):
        kind = "table" if table in load.TABLE_NAMES else "view"
        out.append(f"{table} ({kind}, {g.height} columns)")
        w = max(len(c) for c in g["column"])
        wt = max(len(t) for t in g["dtype"])
        for col, dtype, values in g.select("column", "dtype", "values").iter_rows():
            out.append(f"  {col:<{w}}  {dtype:<{wt}}  {values}".rstrip())
        out.append("")
    return "\n".join(out).rstrip()


def format_frame(frame: pl.DataFrame, *, max_rows: int = 50, width: int | None = None) -> str:
    """A printable table that fits `width` (default: the terminal), up to `max_rows` rows."""
    from sergrad.analysis.terminal import render

    return render(frame, "table", width=width, max_rows=max_rows)

"""Lazy access to a results store with Polars (never torch or ray).

Tables are read with `polars.scan_parquet(<root>/<table>/**/*.parquet, hive_partitioning=True)`;
the partition column (corpus, run_id, target_corpus, eval_id) comes back from the directory
name as a string. A table that was never written is an empty frame with the schema's columns,
so every query and table works on a partial store.

Joined views:
- `results`: one row per `attacks` row (`attribute` gender where older stores lack it), with the target run's SER metrics and privacy
  accounting (`ser_uar`, `ser_acc`, `ser_val_uar`, `epsilon`, `delta`, `dp_protects`, `fold`,
  `run_seed`, ...) joined on `attacks.target_run = runs.run_id`, plus `defense_name` and
  `level` (see `defense_columns`).
- `round_results`: one row per `rounds` row, with the run's corpus, role, feature set,
  algorithm, fold, seed, defense and level joined on `run_id`.

Stores are local paths or URIs (`s3://bucket/prefix?endpoint_override=...`): object stores
are opened by `sergrad.store` (the one store-opening path: endpoint options, connect and
request timeouts, errors naming the URI) and read through pyarrow.

>>> import tempfile
>>> scan(tempfile.mkdtemp(), "runs").collect().height
0
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa

from sergrad import schema
from sergrad.errors import StoreError

TABLE_NAMES: tuple[str, ...] = tuple(schema.TABLES)
SWEEP_JSON = "sweep.json"
NO_DEFENSE = "none"

# runs columns joined onto attack rows: {runs column: name in the joined view}
RUN_COLUMNS_FOR_ATTACKS: dict[str, str] = {
    "run_id": "target_run",
    "status": "run_status",
    "role": "run_role",
    "engine": "engine",
    "fold": "fold",
    "seed": "run_seed",
    "rounds": "rounds",
    "best_round": "best_round",
    "val_uar": "ser_val_uar",
    "test_uar": "ser_uar",
    "test_acc": "ser_acc",
    "epsilon": "epsilon",
    "delta": "delta",
    "accountant": "accountant",
    "dp_protects": "dp_protects",
    "n_updates": "n_updates",
}
# runs columns joined onto rounds rows
RUN_COLUMNS_FOR_ROUNDS: dict[str, str] = {
    "run_id": "run_id",
    "corpus": "corpus",
    "status": "run_status",
    "role": "role",
    "feature_set": "feature_set",
    "algorithm": "algorithm",
    "fold": "fold",
    "seed": "seed",
    "defense": "defense",
    "defense_level": "defense_level",
    "delta": "delta",
    "dp_protects": "dp_protects",
    "test_uar": "ser_uar",
}


def _check_table(table: str) -> tuple[pa.Schema, str]:
    if table not in schema.TABLES:
        raise StoreError(f"unknown table {table!r}; valid: {', '.join(TABLE_NAMES)}")
    return schema.TABLES[table]


def polars_schema(table: str) -> dict[str, pl.DataType]:
    """The table's columns and Polars dtypes, partition column (a string) last."""
    arrow, partition = _check_table(table)
    cols = dict(pl.from_arrow(arrow.empty_table()).schema)
    return {**cols, partition: pl.String()}


def empty_frame(table: str) -> pl.LazyFrame:
    """A lazy frame with no rows and exactly the table's columns (partition column included)."""
    return pl.LazyFrame(schema=polars_schema(table))


def is_remote(store_uri: str | os.PathLike) -> bool:
    return "://" in str(store_uri)


def table_glob(store_uri: str | os.PathLike, table: str) -> str:
    _check_table(table)
    root = str(store_uri).rstrip("/")
    if not is_remote(root):
        root = str(Path(root).resolve())
    return f"{root}/{table}/**/*.parquet"


def _has_files(store_uri: str | os.PathLike, table: str) -> bool:
    base = Path(store_uri) / table
    return base.is_dir() and any(base.rglob("*.parquet"))


def scan(
    store_uri: str | os.PathLike, table: str, *, storage_options: dict | None = None
) -> pl.LazyFrame:
    """Lazy frame over every file of `table` (all partitions); empty frame if none exist.

    Columns absent from older files are inserted as nulls; the partition column is a string.
    """
    arrow, partition = _check_table(table)
    if is_remote(store_uri):  # through sergrad's store opener: endpoint options, timeouts
        return _remote_scan(str(store_uri), table)
    if not is_remote(store_uri):
        if not Path(store_uri).is_dir():
            raise StoreError(f"store {str(store_uri)!r} is not a directory")
        if not _has_files(store_uri, table):
            return empty_frame(table)
    file_schema = {k: v for k, v in polars_schema(table).items() if k != partition}
    source: str | list[str] = table_glob(store_uri, table)
    if not is_remote(store_uri):  # skip (and name) unreadable files instead of failing
        from sergrad.store import readable_table_files

        good, skipped = readable_table_files(store_uri, table)
        if skipped:
            if not good:
                return empty_frame(table)
            source = good
    try:
        lf = pl.scan_parquet(
            source,
            hive_partitioning=True,
            hive_schema={partition: pl.String()},
            schema=file_schema,
            missing_columns="insert",
            extra_columns="ignore",
            storage_options=storage_options,
        )
        lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = str(exc).lower()
        if is_remote(store_uri) and ("no such file" in msg or "paths were empty" in msg):
            return empty_frame(table)
        raise StoreError(f"cannot read {table} from {store_uri}: {exc}") from exc
    return lf


def _remote_scan(store_uri: str, table: str) -> pl.LazyFrame:
    """An object-store table read with `sergrad.store.Store` (the URI's endpoint_override,
    scheme and timeouts apply; unreadable files are skipped and named), as the local scan's
    columns and dtypes."""
    from sergrad.store import Store

    data = Store(store_uri, create=False).read(table)
    if data.num_rows == 0:
        return empty_frame(table)
    frame = pl.from_arrow(data)
    return frame.lazy().select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in polars_schema(table).items()
    )


def defense_columns() -> list[pl.Expr]:
    """`defense_name`: the target run's in-loop defense, "<posthoc> (post-hoc)" for a defense
    the attack applied to stored updates, "<loop>+<posthoc> (post-hoc)" for both, or "none";
    `level`: the in-loop level, or the post-hoc level when there is a post-hoc defense."""
    loop = pl.col("defense").fill_null(NO_DEFENSE)
    post = pl.col("posthoc").fill_null(NO_DEFENSE)
    post_label = post + pl.lit(" (post-hoc)")
    name = (
        pl.when((loop == NO_DEFENSE) & (post == NO_DEFENSE))
        .then(pl.lit(NO_DEFENSE))
        .when(post == NO_DEFENSE)
        .then(loop)
        .when(loop == NO_DEFENSE)
        .then(post_label)
        .otherwise(loop + pl.lit("+") + post_label)
    )
    level = (
        pl.when(post == NO_DEFENSE).then(pl.col("defense_level")).otherwise(pl.col("posthoc_level"))
    )
    return [name.alias("defense_name"), level.cast(pl.Float64).alias("level")]


def results(store_uri: str | os.PathLike, *, storage_options: dict | None = None) -> pl.LazyFrame:
    """Attack rows joined to their target run's SER metrics and privacy accounting."""
    runs = scan(store_uri, "runs", storage_options=storage_options)
    runs = runs.select([pl.col(k).alias(v) for k, v in RUN_COLUMNS_FOR_ATTACKS.items()])
    runs = runs.unique(subset="target_run", keep="first")
    attacks = scan(store_uri, "attacks", storage_options=storage_options)
    attacks = attacks.with_columns(pl.col("attribute").fill_null("gender"))  # older stores
    return attacks.join(runs, on="target_run", how="left").with_columns(defense_columns())


def round_results(
    store_uri: str | os.PathLike, *, storage_options: dict | None = None
) -> pl.LazyFrame:
    """Per-round rows joined to their run's description (corpus, algorithm, defense, ...)."""
    runs = scan(store_uri, "runs", storage_options=storage_options)
    runs = runs.select([pl.col(k).alias(v) for k, v in RUN_COLUMNS_FOR_ROUNDS.items()])
    runs = runs.unique(subset="run_id", keep="first")
    rounds = scan(store_uri, "rounds", storage_options=storage_options)
    return rounds.join(runs, on="run_id", how="left")


def scored_predictions(
    store_uri: str | os.PathLike, *, storage_options: dict | None = None
) -> pl.LazyFrame:
    """Prediction rows with the evaluation's description (attack, target corpus, defense, ...)
    joined on (eval_id, layer, protocol, n_avg); `y` = 1 for male, 0 for female (binary
    attributes: their second / first class), null if unknown or not binary."""
    keys = ["eval_id", "layer", "protocol", "n_avg"]
    desc = results(store_uri, storage_options=storage_options).select(
        *keys,
        "attack",
        "adaptive",
        "target_run",
        "target_corpus",
        "feature_set",
        "algorithm",
        "defense",
        "defense_level",
        "posthoc",
        "posthoc_level",
        "defense_name",
        "level",
        "epsilon",
        "fold",
        "run_seed",
        "classes",
        "n_classes",
    )
    desc = desc.unique(subset=keys, keep="first")
    preds = scan(store_uri, "predictions", storage_options=storage_options)
    preds = preds.with_columns(pl.col("attribute").fill_null("gender"))  # older stores
    # y: 1 for the binary attribute's second class (gender: M), 0 for the first; null for a
    # categorical or numeric attribute (their scores are `proba` / `prediction`)
    second = pl.col("classes").str.json_path_match("$[1]")
    first = pl.col("classes").str.json_path_match("$[0]")
    binary = pl.col("label").is_not_null() & (pl.col("n_classes") == 2)
    y = (
        pl.when(binary & (pl.col("label") == second)).then(1)
        .when(binary & (pl.col("label") == first)).then(0)
        .when(pl.col("attribute") != "gender").then(None)
        .when(pl.col("gender") == "M").then(1)
        .when(pl.col("gender") == "F").then(0)
    )  # fmt: skip
    return preds.join(desc, on=keys, how="left").with_columns(y.alias("y"))


VIEWS = {
    "results": results,
    "round_results": round_results,
    "scored_predictions": scored_predictions,
}


def frames(
    store_uri: str | os.PathLike, *, storage_options: dict | None = None
) -> dict[str, pl.LazyFrame]:
    """Every table and joined view by name: runs, rounds, attacks, predictions, results, ..."""
    out = {t: scan(store_uri, t, storage_options=storage_options) for t in TABLE_NAMES}
    for name, fn in VIEWS.items():
        out[name] = fn(store_uri, storage_options=storage_options)
    return out


def read_sweep(store_uri: str | os.PathLike) -> dict | None:
    """The resolved sweep definition (`<store>/sweep.json`), or None when absent or remote."""
    if is_remote(store_uri):
        from sergrad.store import Store

        try:
            return Store(str(store_uri), create=False).read_json(SWEEP_JSON)  # type: ignore[return-value]
        except (StoreError, OSError):
            return None
    path = Path(store_uri) / SWEEP_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from exc

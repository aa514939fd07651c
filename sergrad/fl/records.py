"""Per-run records: the `runs` row (config, final metrics, status) and the `rounds` rows.

    runs/corpus=<corpus>/<run_id>.parquet     one row, schema.RUNS
    rounds/run_id=<run_id>/rounds.parquet     one row per evaluated round, schema.ROUNDS

Both are written atomically (Store temp + publish); writing again replaces the file, so a
failed run that is retried ends up with one row. A run lives in exactly one corpus partition:
`write_run_row` removes a copy left under another corpus. Imports no torch.

Readers scanning these tables with polars should pin the partition columns to strings
(`hive_schema={"run_id": pl.String}`): polars infers an all-digit value as an integer.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import re

import pyarrow as pa

from sergrad import schema
from sergrad.errors import DataError, StoreError
from sergrad.store import Store

PACKAGES = ("torch", "numpy", "pyarrow", "polars", "sergrad")
# Partition values must survive hive decoding in pyarrow and polars unchanged: '%' would be
# URL-decoded by both, so it (and anything else outside this set) is refused.
_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")


def check_partition_value(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not _PARTITION_VALUE.match(value):
        raise StoreError(
            f"{what} {value!r} is not a valid store partition value "
            f"(letters, digits and . _ + - only, starting with a letter or digit)"
        )
    return value


def versions() -> dict[str, str]:
    """Installed versions of the packages that determine results (no imports: no torch)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "sergrad":
                import sergrad

                out[name] = sergrad.__version__
    return out


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds: '2025-01-31T12:00:00Z'."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _table(rows: list[dict], table_schema: pa.Schema, what: str) -> pa.Table:
    try:
        return schema.table_from_rows(rows, table_schema)
    except KeyError as exc:
        raise DataError(f"{what}: {exc.args[0]}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for field in table_schema:  # name the column at fault
            try:
                pa.array([r.get(field.name) for r in rows], type=field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as col_exc:
                raise DataError(f"{what}: column {field.name!r}: {col_exc}") from None
        raise DataError(f"{what}: {exc}") from None


def _run_path(store: Store, run_id: str, corpus: str) -> str:
    return store.file_path("runs", partition=(schema.RUNS_PARTITION, corpus), name=run_id)


def write_run_row(store: Store, row: dict, corpus: str) -> None:
    """Write (or replace) the `runs` row of `row["run_id"]` under corpus partition `corpus`.

    A "corpus" key in `row` (as `read_run_row` returns) is accepted if it equals `corpus`.
    """
    row = dict(row)
    run_id = row.get("run_id")
    check_partition_value(run_id, what="run_id")
    check_partition_value(corpus, what="corpus")
    if row.pop(schema.RUNS_PARTITION, corpus) != corpus:
        raise DataError(f"run {run_id}: row corpus differs from corpus argument {corpus!r}")
    table = _table([row], schema.RUNS, f"runs row of run {run_id}")
    store.write_table("runs", table, partition=(schema.RUNS_PARTITION, corpus), name=run_id)
    for other in _run_corpora(store, run_id):
        if other != corpus:
            store.fs.delete_file(_run_path(store, run_id, other))


def _run_corpora(store: Store, run_id: str) -> list[str]:
    """Corpus partitions holding a runs file for `run_id` (one stat per corpus)."""
    return [
        c for c in store.partition_values("runs") if store.exists_path(_run_path(store, run_id, c))
    ]


def read_run_row(store: Store, run_id: str) -> dict | None:
    """The runs row of `run_id` (with its "corpus"), or None if the run was never recorded."""
    corpora = _run_corpora(store, run_id)
    if not corpora:
        return None
    if len(corpora) > 1:
        raise StoreError(f"run {run_id} is recorded under several corpora: {corpora}")
    rows = store.read_file(_run_path(store, run_id, corpora[0])).to_pylist()
    if len(rows) != 1:
        raise StoreError(f"runs file of {run_id} holds {len(rows)} rows, expected 1")
    return {**rows[0], schema.RUNS_PARTITION: corpora[0]}


def finished_run_ids(store: Store) -> set[str]:
    """Ids of runs recorded with status "ok" (a resumed sweep skips these)."""
    table = store.read("runs", columns=["run_id", "status"])
    if table.num_rows == 0:
        return set()
    return {
        r for r, s in zip(table["run_id"].to_pylist(), table["status"].to_pylist()) if s == "ok"
    }


def write_rounds(store: Store, run_id: str, rows: list[dict]) -> None:
    """Write (or replace) the per-round metrics of `run_id` (schema.ROUNDS; a "run_id" key in
    a row is accepted if it equals `run_id`). Rounds must be unique."""
    check_partition_value(run_id, what="run_id")
    clean = []
    for r in rows:
        r = dict(r)
        if r.pop(schema.ROUNDS_PARTITION, run_id) != run_id:
            raise DataError(f"rounds of run {run_id}: a row names another run_id")
        clean.append(r)
    numbers = [r.get("round") for r in clean]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1}, key=str)
    if dupes:
        raise DataError(f"rounds of run {run_id}: duplicate rounds {dupes}")
    table = _table(clean, schema.ROUNDS, f"rounds of run {run_id}")
    store.write_table("rounds", table, partition=(schema.ROUNDS_PARTITION, run_id), name="rounds")


def read_rounds(store: Store, run_id: str) -> list[dict]:
    """The per-round rows of `run_id` in written order ([] if none were written)."""
    path = store.file_path("rounds", partition=(schema.ROUNDS_PARTITION, run_id), name="rounds")
    if not store.exists_path(path):
        return []
    return store.read_file(path).to_pylist()


# --- the clients' ground truth (schema.CLIENTS), beside the harvest --------------------------
def write_clients(store: Store, run_id: str, rows: list[dict]) -> None:
    """The side table `clients/run_id=<run_id>/clients.parquet`: one row per client."""
    table = _table(rows, schema.CLIENTS, f"clients of run {run_id}")
    store.write_table(
        "clients", table, partition=(schema.CLIENTS_PARTITION, run_id), name="clients"
    )


def read_clients(store: Store, run_id: str) -> list[dict] | None:
    """The client rows of `run_id`, or None when the run has no clients side table (older
    stores kept gender in the updates' key columns)."""
    return _read_side(store, "clients", schema.CLIENTS_PARTITION, run_id)


def _read_side(store: Store, table: str, key: str, run_id: str) -> list[dict] | None:
    """The rows of a run's side table `<table>/<key>=<run_id>/<table>.parquet`, or None when
    the run has none; StoreError naming the file when it cannot be read."""
    path = store.file_path(table, partition=(key, run_id), name=table)
    if not store.exists_path(path):
        return None
    try:
        return store.read_file(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: unreadable {table} table ({exc})") from exc


# --- secure aggregation: each round's cohort (schema.COHORTS), beside the harvest -----------
def write_cohorts(store: Store, run_id: str, rows: list[dict]) -> None:
    """The side table `cohorts/run_id=<run_id>/cohorts.parquet`: one row per round."""
    table = _table(rows, schema.COHORTS, f"cohorts of run {run_id}")
    store.write_table(
        "cohorts", table, partition=(schema.COHORTS_PARTITION, run_id), name="cohorts"
    )


def read_cohorts(store: Store, run_id: str) -> list[dict] | None:
    """The cohort rows of `run_id`, or None when the run did not use secure aggregation."""
    return _read_side(store, "cohorts", schema.COHORTS_PARTITION, run_id)

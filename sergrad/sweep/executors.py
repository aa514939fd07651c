"""How a worker executes one job: retries, then a failure record; and which ids are done.

`execute(job, store, max_retries=)` calls `job.run(store)`; an exception is retried up to
`max_retries` times, then `job.failure_row(error)` is written to the job's table and
`execute` returns an `Outcome` with status "failed" (a job whose `table` is None has no record
and only reports it). When even that write fails (full disk,
store unreachable) the status is "unrecorded" and the error names both causes: the driver
reports it and exits 1 rather than counting a job it cannot see.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from sergrad.schema import TABLES, table_from_rows
from sergrad.store import Store
from sergrad.sweep.jobs import Job, record_path


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # ok | failed | unrecorded
    error: str = ""
    seconds: float = 0.0


def execute(job: Job, store: Store, *, max_retries: int) -> Outcome:
    """Run `job`, retrying on exceptions; record a failure in the store."""
    import time

    t0 = time.perf_counter()
    error = ""
    for _ in range(max_retries + 1):
        try:
            job.run(store)
            return Outcome(job.id, "ok", "", time.perf_counter() - t0)
        except Exception as exc:  # any error of the job itself: retry, then record
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    if job.table is None:  # a job without a record of its own (jobs.PrepareJob)
        return Outcome(job.id, "failed", error, time.perf_counter() - t0)
    try:
        record_failure(store, job, error[:4000])
    except Exception as exc:  # the record itself failed: say so, never count it as done
        why = f"could not record the failure ({type(exc).__name__}: {exc})"
        return Outcome(job.id, "unrecorded", f"{why}; job error: {error}", time.perf_counter() - t0)
    return Outcome(job.id, "failed", error, time.perf_counter() - t0)


def record_failure(store: Store, job: Job, error: str) -> str:
    schema, _ = TABLES[job.table]
    row = table_from_rows([job.failure_row(error)], schema)
    store.write_table(job.table, row, partition=job.partition, name=job.id)
    return record_path(store, job)


def done_ids(store: Store, table: str, id_column: str) -> tuple[set[str], dict[str, str]]:
    """(ids recorded ok, {id: error} of ids recorded failed) in `table`; unreadable files
    are skipped with a warning (their jobs are not done)."""
    columns = [id_column, "status", "error"]
    data = store.read(table, columns=columns)
    if data.num_rows == 0:
        return set(), {}
    ok: set[str] = set()
    failed: dict[str, str] = {}
    for i, s, e in zip(*(data.column(c).to_pylist() for c in columns)):
        if s == "ok":
            ok.add(i)
        else:
            failed[i] = e or ""
    return ok, {i: e for i, e in failed.items() if i not in ok}

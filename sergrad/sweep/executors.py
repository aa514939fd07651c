"""What a sweep job is, how a worker executes one, and how a failure is recorded.

A job is a plain JSON-able dict (no pickle of live objects crosses to workers):

    {"id": "<run or eval id>", "kind": "fl" | "attack" | "toy",
     "config": {...resolved config...}, "extra": {...}, "partition": "<corpus>"}

`execute(job, store, max_retries=)` calls the kind's executor; an exception is retried up to
`max_retries` times, then the failure is recorded in the store (runs row / attacks row with
status "failed" and the error) and `execute` returns ("failed", error). Executors skip work
already in the store themselves, so re-running a finished job is cheap and idempotent.

The `toy` kind is a synthetic CPU-bound job (used by tests and `sergrad bench sweep`): it
burns `config["seconds"]` of CPU, raises if `config["fail"]` is true (or on its first
`fail` attempts), kills its own worker once if `config["die_once"]` names a missing marker
file, and writes a runs row.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections.abc import Callable

from sergrad.registry import Registry
from sergrad.schema import ATTACKS, ATTACKS_PARTITION, RUNS, RUNS_PARTITION, table_from_rows
from sergrad.store import Store

Executor = Callable[[dict, Store], None]
EXECUTORS: Registry[Executor] = Registry("job kind")
FAILURE_RECORDERS: dict[str, Callable[[dict, Store, str], None]] = {}
TABLES = {"fl": "runs", "toy": "runs", "attack": "attacks"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@EXECUTORS.register("fl")
def run_fl_job(job: dict, store: Store) -> None:
    from sergrad.config import from_dict
    from sergrad.fl.config import RunConfig
    from sergrad.fl.run import run_fl

    row = run_fl(from_dict(RunConfig, job["config"]), store, extra=job.get("extra") or None)
    if row and row.get("status", "ok") != "ok":
        raise RuntimeError(row.get("error") or "run_fl returned a failed run")


@EXECUTORS.register("attack")
def run_attack_job(job: dict, store: Store) -> None:
    from sergrad.attack.config import AttackConfig
    from sergrad.attack.run import run_attack
    from sergrad.config import from_dict

    _drop_failed_attack(job, store)  # a recorded failure is retried, not returned as done
    rows = run_attack(from_dict(AttackConfig, job["config"]), store)
    bad = [r for r in rows or [] if r.get("status", "ok") != "ok"]
    if bad:
        raise RuntimeError(bad[0].get("error") or "run_attack returned a failed evaluation")


def _drop_failed_attack(job: dict, store: Store) -> None:
    import pyarrow.parquet as pq

    part = (ATTACKS_PARTITION, job.get("partition") or "unknown")
    if not store.exists("attacks", partition=part, name=job["id"]):
        return
    path = store.file_path("attacks", partition=part, name=job["id"])
    with store.open_input(path) as f:
        status = pq.read_table(f, columns=["status"]).column("status").to_pylist()
    if any(s != "ok" for s in status):
        store.fs.delete_file(path)


_TOY_ATTEMPTS: dict[str, int] = {}


@EXECUTORS.register("toy")
def run_toy_job(job: dict, store: Store) -> None:
    """Synthetic job: busy CPU for `seconds`, fail the first `fail` attempts (or always)."""
    cfg = job["config"]
    partition = (RUNS_PARTITION, job.get("partition") or "toy")
    if store.exists("runs", partition=partition, name=job["id"]):
        return
    marker = cfg.get("die_once")  # a file path: first attempt kills its own process (tests)
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    attempt = _TOY_ATTEMPTS[job["id"]] = _TOY_ATTEMPTS.get(job["id"], 0) + 1
    fail = cfg.get("fail", 0)
    if fail is True or (isinstance(fail, int) and attempt <= fail):
        raise RuntimeError(f"toy job {job['id']} failed on attempt {attempt}")
    t0 = time.perf_counter()
    busy(float(cfg.get("seconds", 0.0)))
    wall = time.perf_counter() - t0
    row = {
        "run_id": job["id"],
        "status": "ok",
        "role": (job.get("extra") or {}).get("role", "toy"),
        "seed": cfg.get("seed", 0),
        "wall_s": wall,
        "config": json.dumps(cfg, sort_keys=True),
        "created_at": _now(),
    }
    store.write_table("runs", table_from_rows([row], RUNS), partition=partition, name=job["id"])


def busy(seconds: float) -> float:
    """Spin the CPU for about `seconds` of thread CPU time; returns a checksum."""
    acc, end = 0.0, time.thread_time() + seconds
    while time.thread_time() < end:
        for i in range(2000):
            acc += (i * 1e-6) ** 0.5
    return acc


# --- failures -------------------------------------------------------------------------------
def _record_run_failure(job: dict, store: Store, error: str) -> None:
    row = {
        "run_id": job["id"],
        "status": "failed",
        "error": error,
        "role": (job.get("extra") or {}).get("role"),
        "config": json.dumps(job["config"], sort_keys=True),
        "seed": job["config"].get("seed"),
        "created_at": _now(),
    }
    try:
        from sergrad.fl.records import write_run_row
    except ImportError:
        write_run_row = None
    if write_run_row is not None and job["kind"] == "fl":
        write_run_row(store, row, corpus=job.get("partition") or "unknown")
        return
    partition = (RUNS_PARTITION, job.get("partition") or "unknown")
    store.write_table("runs", table_from_rows([row], RUNS), partition=partition, name=job["id"])


def _record_attack_failure(job: dict, store: Store, error: str) -> None:
    cfg = job["config"]
    row = {
        "eval_id": job["id"],
        "status": "failed",
        "error": error,
        "attack": (cfg.get("model") or {}).get("name"),
        "adaptive": bool(cfg.get("adaptive", False)),
        "target_run": cfg.get("target_run"),
        "shadow_runs": json.dumps(list(cfg.get("shadow_runs", []))),
        "seed": cfg.get("seed"),
        "config": json.dumps(cfg, sort_keys=True),
        "created_at": _now(),
    }
    partition = (ATTACKS_PARTITION, job.get("partition") or "unknown")
    store.write_table(
        "attacks", table_from_rows([row], ATTACKS), partition=partition, name=job["id"]
    )


FAILURE_RECORDERS.update(fl=_record_run_failure, toy=_record_run_failure)
FAILURE_RECORDERS["attack"] = _record_attack_failure


def execute(job: dict, store: Store, *, max_retries: int) -> tuple[str, str]:
    """Run `job`, retrying on exceptions; returns ("ok", "") or ("failed", error)."""
    executor = EXECUTORS.get(job["kind"])
    error = ""
    for _ in range(max_retries + 1):
        try:
            executor(job, store)
            return "ok", ""
        except Exception as exc:  # any error of the job itself: retry, then record
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    FAILURE_RECORDERS[job["kind"]](job, store, error[:4000])
    return "failed", error


def done_ids(store: Store, kind: str) -> tuple[set[str], set[str]]:
    """(ids with status ok, ids with status failed) of the table `kind` writes to."""
    table = TABLES[kind]
    id_col = "eval_id" if table == "attacks" else "run_id"
    data = store.read(table, columns=[id_col, "status"]) if store.files(table) else None
    if data is None or data.num_rows == 0:
        return set(), set()
    ids, status = data.column(id_col).to_pylist(), data.column("status").to_pylist()
    ok = {i for i, s in zip(ids, status) if s == "ok"}
    failed = {i for i, s in zip(ids, status) if s != "ok"} - ok
    return ok, failed

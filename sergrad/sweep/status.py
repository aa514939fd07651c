"""`sergrad sweep status STORE`: done / failed / pending runs and evaluations of a store.

Reads the resolved sweep (`sweep.json`, written when the sweep started) and the job tables,
generically over the job classes (`RunJob`, `EvalJob`: their table and id column). An
evaluation is "blocked" when one of its input runs failed. Unreadable files are skipped with
a warning naming them (those jobs count as pending). Exit code: 1 when any job failed or is
blocked, else 0 (pending jobs are not failures: the sweep may still be running).
"""

from __future__ import annotations

from sergrad.errors import StoreError
from sergrad.store import Store
from sergrad.sweep.executors import done_ids
from sergrad.sweep.jobs import EvalJob, RunJob

SWEEP_JSON = "sweep.json"
SECTIONS = {"runs": RunJob, "evals": EvalJob}  # sweep.json key -> job class


def sweep_status(store: Store) -> dict:
    """Counts by role and state; raises StoreError when the store holds no sweep.json."""
    record = store.read_json(SWEEP_JSON)
    if not isinstance(record, dict):
        raise StoreError(f"{store.uri}: no {SWEEP_JSON} (not a sweep store, or not started)")
    state = {k: done_ids(store, cls.table, cls.id_column) for k, cls in SECTIONS.items()}
    ok_runs, failed_runs = state["runs"]
    out: dict = {"name": record.get("name"), "source": record.get("source")}
    for role in ("target", "shadow"):
        ids = [r["id"] for r in record["runs"] if r["role"] == role]
        out[f"{role}_runs"] = _counts(ids, *state["runs"])
    out["runs"] = _counts([r["id"] for r in record["runs"]], *state["runs"])
    ok_evals, failed_evals = state["evals"]
    evals = _counts([e["id"] for e in record["evals"]], ok_evals, failed_evals)
    evals["blocked"] = sum(
        1
        for e in record["evals"]
        if e["id"] not in ok_evals
        and e["id"] not in failed_evals
        and any(n in failed_runs for n in e["needs"])
    )
    evals["pending"] -= evals["blocked"]
    out["evals"] = evals
    out["complete"] = all(out[k]["ok"] == out[k]["total"] for k in ("runs", "evals"))
    out["any_failed"] = bool(out["runs"]["failed"] or evals["failed"] or evals["blocked"])
    return out


def _counts(ids: list[str], ok: set[str], failed: dict[str, str]) -> dict[str, int]:
    n_ok = sum(i in ok for i in ids)
    n_failed = sum(i in failed and i not in ok for i in ids)
    return {
        "total": len(ids),
        "ok": n_ok,
        "failed": n_failed,
        "pending": len(ids) - n_ok - n_failed,
    }


def format_status(status: dict) -> str:
    lines = [f"sweep {status['name']} ({status['source']})"]
    for key in ("runs", "target_runs", "shadow_runs", "evals"):
        c = status[key]
        extra = f"  blocked {c['blocked']}" if "blocked" in c else ""
        lines.append(
            f"{key:12s} {c['ok']:6d} done  {c['failed']:5d} failed  {c['pending']:6d} pending"
            f"{extra}  / {c['total']}"
        )
    return "\n".join(lines)

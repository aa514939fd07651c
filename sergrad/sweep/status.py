"""`sergrad sweep status STORE`: done / failed / pending runs, evaluations and canary audits.

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
from sergrad.sweep.jobs import AuditJob, EvalJob, RunJob

SWEEP_JSON = "sweep.json"
SECTIONS = {"runs": RunJob, "evals": EvalJob, "audits": AuditJob}  # sweep.json key -> class


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
    for key in ("evals", "audits"):  # second-phase jobs: blocked when an input run failed
        ok_ids, failed_ids = state[key]
        entries = record.get(key, [])  # a sweep.json written before audits existed has none
        c = _counts([e["id"] for e in entries], ok_ids, failed_ids)
        c["blocked"] = sum(
            1
            for e in entries
            if e["id"] not in ok_ids
            and e["id"] not in failed_ids
            and any(n in failed_runs for n in e["needs"])
        )
        c["pending"] -= c["blocked"]
        out[key] = c
    keys = ("runs", "evals", "audits")
    out["complete"] = all(out[k]["ok"] == out[k]["total"] for k in keys)
    out["any_failed"] = bool(out["runs"]["failed"] or any(
        out[k]["failed"] or out[k]["blocked"] for k in ("evals", "audits")))  # fmt: skip
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
    for key in ("runs", "target_runs", "shadow_runs", "evals", "audits"):
        c = status[key]
        if key == "audits" and not c["total"]:
            continue
        extra = f"  blocked {c['blocked']}" if "blocked" in c else ""
        lines.append(
            f"{key:12s} {c['ok']:6d} done  {c['failed']:5d} failed  {c['pending']:6d} pending"
            f"{extra}  / {c['total']}"
        )
    return "\n".join(lines)

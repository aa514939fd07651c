"""`sergrad sweep status STORE`: done / failed / pending runs and evaluations of a store.

Reads the resolved sweep (`sweep.json`, written when the sweep started) and the store's
`runs` and `attacks` tables. An evaluation is "blocked" when one of its input runs failed.
"""

from __future__ import annotations

from sergrad.errors import StoreError
from sergrad.store import Store
from sergrad.sweep.executors import done_ids

SWEEP_JSON = "sweep.json"


def sweep_status(store: Store) -> dict:
    """Counts by role and state; raises StoreError when the store holds no sweep.json."""
    record = store.read_json(SWEEP_JSON)
    if not isinstance(record, dict):
        raise StoreError(f"{store.uri}: no {SWEEP_JSON} (not a sweep store, or not started)")
    ok_runs, failed_runs = done_ids(store, "fl")
    ok_evals, failed_evals = done_ids(store, "attack")
    out: dict = {"name": record.get("name"), "source": record.get("source")}
    for role in ("target", "shadow"):
        ids = [r["id"] for r in record["runs"] if r["role"] == role]
        out[f"{role}_runs"] = _counts(ids, ok_runs, failed_runs)
    out["runs"] = _counts([r["id"] for r in record["runs"]], ok_runs, failed_runs)
    evals = _counts([e["id"] for e in record["evals"]], ok_evals, failed_evals)
    evals["blocked"] = sum(
        1
        for e in record["evals"]
        if e["id"] not in ok_evals | failed_evals and any(n in failed_runs for n in e["needs"])
    )
    evals["pending"] -= evals["blocked"]
    out["evals"] = evals
    return out


def _counts(ids: list[str], ok: set[str], failed: set[str]) -> dict[str, int]:
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

"""The sweep driver: plan -> inputs -> FL runs -> attack evaluations + canary audits, resumable.

Usage: `run_sweep(load_sweep("sweeps/small.yaml"), store_uri="out/small", options=...)`.

`sweep.json` in the store root records the resolved sweep (source, run and evaluation ids
with their roles and dependencies) for `sergrad sweep status`.
"""

from __future__ import annotations

import dataclasses

from sergrad.config import to_dict
from sergrad.errors import ConfigError
from sergrad.fl.records import now_iso
from sergrad.store import Store, absolute_uri
from sergrad.sweep.expand import Plan, expand
from sergrad.sweep.progress import Progress
from sergrad.sweep.runner import EngineOptions, Result, run_jobs
from sergrad.sweep.schema import Sweep

SWEEP_JSON = "sweep.json"
TMP_LEASE_S = 900.0  # a `_tmp` file untouched this long belongs to a dead writer


def resolve_store(sweep: Sweep, store: str | None) -> str:
    """The store URI from --store or the file; a local path becomes absolute here."""
    uri = store or sweep.store
    if not uri:
        raise ConfigError(f"{sweep.source}: no store: set `store:` in the file or pass --store")
    return absolute_uri(uri)


def sweep_record(sweep: Sweep, plan: Plan) -> dict:
    """What `sweep.json` holds: enough for `sweep status` without the YAML file."""
    return {
        "name": sweep.name,
        "source": sweep.source,
        "sweep": to_dict(
            dataclasses.replace(sweep, corpora={k: to_dict(v) for k, v in sweep.corpora.items()})
        ),
        "runs": [{"id": r.id, "role": r.role, "corpus": r.corpus} for r in plan.runs],
        "evals": [
            {"id": e.id, "target_corpus": e.target_corpus, "needs": list(e.needs)}
            for e in plan.evals
        ],
        "audits": [
            {"id": a.id, "target_corpus": a.target_corpus, "needs": list(a.needs)}
            for a in plan.audits
        ],
        "written_at": now_iso(),
    }


def plan_summary(sweep: Sweep, store_uri: str | None = None, *, cpus: int = 0) -> dict:
    """Counts for `sergrad sweep plan` (without building the jobs), the harvest estimate (from
    the speaker counts of corpora already indexed in the store, where there are any) and a
    time estimate per job kind on `cpus` parallel slots (default: this machine's CPUs)."""
    import os

    from sergrad.sweep.count import count, harvest_bytes
    from sergrad.sweep.estimate import (
        cnn_warnings,
        indexed_speakers,
        time_estimate,
        unknown_speakers,
    )

    c = count(sweep)
    known = indexed_speakers(store_uri, sweep) if store_uri else {}
    slots = cpus or max(1, int((os.cpu_count() or 1) // sweep.resources.cpus_per_run))
    return {
        "inputs": c.inputs,
        "runs": c.runs,
        "target_runs": c.target_runs,
        "shadow_runs": c.shadow_runs,
        "evaluations": c.evaluations,
        "audits": c.audits,
        "harvest_bytes": harvest_bytes(sweep, c, known=known),
        "speakers_indexed": known,
        "speakers_unknown": unknown_speakers(sweep, known),
        "time": time_estimate(sweep, c, store_uri or "", known=known, cpus=slots),
        "cnn_warnings": cnn_warnings(sweep, known=known) if c.eval_kinds["cnn eval"] else [],
    }


def size_warning(summary: dict) -> str | None:
    """A warning line for sweeps above `count.WARN_JOBS` jobs, with counts and harvest size
    (`summary`: plan_summary's dict, or `size_summary`'s when only this warning is wanted)."""
    from sergrad.sweep.count import WARN_JOBS
    from sergrad.sweep.estimate import human_bytes

    if summary["runs"] + summary["evaluations"] <= WARN_JOBS:
        return None
    return (
        f"warning: {summary['runs']} runs and {summary['evaluations']} evaluations "
        f"(estimated harvest {human_bytes(summary['harvest_bytes'])}); above {WARN_JOBS} jobs, "
        "check the grid before running it"
    )


def size_summary(sweep: Sweep) -> dict:
    """Just the counts and harvest size `size_warning` reads: `sweep run` needs no time
    estimate or CNN warnings, and no store reads."""
    from sergrad.sweep.count import count, harvest_bytes

    c = count(sweep)
    return {"runs": c.runs, "evaluations": c.evaluations, "harvest_bytes": harvest_bytes(sweep, c)}


def options_for(
    sweep: Sweep, *, address: str | None, max_concurrent: int | None, num_cpus: int | None = None
) -> EngineOptions:
    from sergrad.sweep.devices import gpus, run_devices

    res = sweep.resources
    return EngineOptions(
        address=address,
        num_cpus=num_cpus,
        max_concurrent=max_concurrent or res.max_concurrent,
        cpus_per_run=res.cpus_per_run,
        gpus_per_run=gpus(sweep, run_devices(sweep)),  # CUDA runs request a GPU
        per_trial=res.runs_per_trial,
        max_retries=res.max_retries,
        trial_restarts=res.trial_restarts,
        attack_inputs_max_gb=res.attack_inputs_max_gb,
    )


def eval_options_for(sweep: Sweep, options: EngineOptions) -> EngineOptions:
    """The evaluation phase's options: its own trial size and GPUs (attack devices)."""
    from sergrad.sweep.devices import attack_devices, gpus

    return dataclasses.replace(
        options,
        per_trial=sweep.resources.evals_per_trial,
        gpus_per_run=gpus(sweep, attack_devices(sweep)),
    )


def run_sweep(
    sweep: Sweep,
    *,
    store_uri: str,
    options: EngineOptions,
    progress: Progress | None = None,
    log=print,
) -> Result:
    """Inputs on the driver, then FL runs, then evaluations; skips what the store has."""
    from sergrad.sweep.inputs import ensure_inputs

    store_uri = absolute_uri(store_uri)
    store = Store(store_uri)
    stale = store.clean_tmp(older_than_s=TMP_LEASE_S)
    if stale:
        log(f"removed {stale} stale temporary file(s) left by killed writers in {store_uri}/_tmp")
    plan = expand(sweep, store_uri)
    store.write_json(SWEEP_JSON, sweep_record(sweep, plan))
    ensure_inputs(store, plan.inputs, progress=log)
    eval_options = eval_options_for(sweep, options)
    return run_jobs(
        list(plan.runs),
        list(plan.evals),
        store_uri=store_uri,
        options=options,
        eval_options=eval_options,
        progress=progress,
        audits=list(plan.audits),
    )

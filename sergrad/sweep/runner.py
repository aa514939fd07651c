"""Run lists of jobs through Ray Tune: grouping, reused actors, retries, progress.

`run_jobs(jobs, store_uri=...)` is the generic engine: it groups the jobs not yet done into
Tune trials (several per trial, `reuse_actors=True`, one thread per run), executes each with
`executors.execute` (retries, then a failed row), and shows one progress line on stderr.
Tune keeps its own files in a temporary directory (no checkpoints, no loggers); the store is
the record. A trial whose worker process dies is restarted by Tune (`trial_restarts`) and
skips the jobs already in the store.

Ray is only imported here, inside functions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

from sergrad.store import Store
from sergrad.sweep.executors import done_ids, execute

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """One line on stderr: runs and evals done / total, failures, ETA (updated in place)."""

    runs_total: int = 0
    evals_total: int = 0
    runs_done: int = 0
    evals_done: int = 0
    failed: int = 0
    stream: object = None  # None = sys.stderr at print time (keeps this object picklable)
    _start: float = field(default_factory=time.monotonic)
    _base: int = 0  # jobs already done when timing started
    _last: float = 0.0

    def start_timing(self) -> None:
        self._start, self._base = time.monotonic(), self.runs_done + self.evals_done

    def line(self) -> str:
        done = self.runs_done + self.evals_done
        total = self.runs_total + self.evals_total
        elapsed = time.monotonic() - self._start
        rate = (done - self._base) / elapsed if elapsed > 0 else 0.0
        eta = "--:--" if rate <= 0 else _hms((total - done) / rate)
        return (
            f"runs {self.runs_done}/{self.runs_total}  evals {self.evals_done}/{self.evals_total}"
            f"  failed {self.failed}  elapsed {_hms(elapsed)}  ETA {eta}"
        )

    def show(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        stream = self.stream or sys.stderr
        tty = getattr(stream, "isatty", lambda: False)()
        end = "" if tty else "\n"
        print(("\r\x1b[2K" if tty else "") + self.line(), end=end, file=stream, flush=True)

    def close(self) -> None:
        self.show(force=True)
        stream = self.stream or sys.stderr
        if getattr(stream, "isatty", lambda: False)():
            print(file=stream, flush=True)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


@dataclass(frozen=True)
class EngineOptions:
    address: str | None = None  # None / "local": private local Ray; "auto" or host:port: join
    num_cpus: int | None = None  # local instance size (default: all cores)
    max_concurrent: int = 0  # concurrent trials, 0 = as resources allow
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    per_trial: int = 0  # jobs per trial, 0 = automatic
    max_retries: int = 2
    trial_restarts: int = 3


# --- Ray session ----------------------------------------------------------------------------
def ray_session(options: EngineOptions):
    """Start (or join) Ray quietly; returns a callable that shuts the session down."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("TUNE_RESULT_BUFFER_LENGTH", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # legacy reporter: silent at verbose=0
    import ray

    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)

    kwargs = {
        "log_to_driver": False,
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
    }
    if options.address in (None, "", "local"):
        ray.init(address="local", num_cpus=options.num_cpus or os.cpu_count(), **kwargs)
    else:
        ray.init(address=options.address, **kwargs)
    return ray.shutdown


def _trial(config: dict, *, groups: list[list[dict]], store_uri: str, max_retries: int) -> None:
    """One Tune trial: execute a group of jobs in order, reporting after each."""
    import torch
    from ray import tune

    torch.set_num_threads(1)
    store = _store(store_uri)
    ok = failed = 0
    for job in groups[config["group"]]:
        status, _ = execute(job, store, max_retries=max_retries)
        ok += status == "ok"
        failed += status != "ok"
        tune.report({"ok": ok, "failed": failed, "kind": job["kind"]})


_STORES: dict[str, Store] = {}


def _store(uri: str) -> Store:
    if uri not in _STORES:
        _STORES[uri] = Store(uri)
    return _STORES[uri]


def group_jobs(jobs: list[dict], *, per_trial: int, slots: int) -> list[list[dict]]:
    """Split `jobs` into consecutive groups; automatic size keeps ~4 groups per slot.

    >>> [len(g) for g in group_jobs(list(range(10)), per_trial=0, slots=1)]
    [3, 3, 3, 1]
    """
    if not jobs:
        return []
    size = per_trial or max(1, min(32, math.ceil(len(jobs) / (4 * max(1, slots)))))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _tune_phase(
    jobs: list[dict],
    *,
    store_uri: str,
    options: EngineOptions,
    progress: Progress,
    kind_field: str,
) -> None:
    """Run `jobs` as Tune trials; progress counters `kind_field` ('runs'/'evals') advance."""
    import ray
    from ray import tune
    from ray.tune import Callback, FailureConfig, RunConfig, TuneConfig, Tuner

    cpus = ray.cluster_resources().get("CPU", 1)
    slots = int(cpus // options.cpus_per_run) or 1
    if options.max_concurrent:
        slots = min(slots, options.max_concurrent)
    groups = group_jobs(jobs, per_trial=options.per_trial, slots=slots)
    base_done = getattr(progress, f"{kind_field}_done")
    base_failed = progress.failed
    latest: dict[str, tuple[int, int]] = {}

    class _Count(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            prev = latest.get(trial.trial_id, (0, 0))
            latest[trial.trial_id] = (
                max(prev[0], int(result.get("ok", 0))),
                max(prev[1], int(result.get("failed", 0))),
            )
            setattr(
                progress,
                f"{kind_field}_done",
                base_done + sum(a + b for a, b in latest.values()),
            )
            progress.failed = base_failed + sum(b for _, b in latest.values())
            progress.show()

    resources = {"cpu": options.cpus_per_run}
    if options.gpus_per_run:
        resources["gpu"] = options.gpus_per_run
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, groups=groups, store_uri=store_uri, max_retries=options.max_retries
        ),
        resources,
    )
    tmp = tempfile.mkdtemp(prefix="sergrad-tune-")
    try:
        tuner = Tuner(
            trainable,
            param_space={"group": tune.grid_search(list(range(len(groups))))},
            tune_config=TuneConfig(
                reuse_actors=True,
                max_concurrent_trials=slots,
                num_samples=1,
            ),
            run_config=RunConfig(
                name=kind_field,
                storage_path=tmp,
                verbose=0,
                log_to_file=True,
                callbacks=[_Count()],
                failure_config=FailureConfig(max_failures=options.trial_restarts),
            ),
        )
        with contextlib.redirect_stdout(io.StringIO()):  # Tune's banners; the store is the record
            results = tuner.fit()
        for err in results.errors:
            log.warning("a trial failed after %d restarts: %s", options.trial_restarts, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_jobs(
    runs: list[dict],
    evals: list[dict] | None = None,
    *,
    store_uri: str,
    options: EngineOptions,
    eval_options: EngineOptions | None = None,
    progress: Progress | None = None,
    needs: dict[str, tuple[str, ...]] | None = None,
) -> Progress:
    """Run FL-like jobs, then evaluation jobs whose `needs` (run ids) all finished ok.

    Jobs already recorded ok in the store are skipped (counted as done). Returns the final
    progress counts, recomputed from the store.
    """
    evals = evals or []
    needs = needs or {}
    store = Store(store_uri)
    progress = progress or Progress()
    progress.runs_total, progress.evals_total = len(runs), len(evals)
    run_kinds = {j["kind"] for j in runs} or {"fl"}
    ok_runs = set().union(*(done_ids(store, k)[0] for k in run_kinds))
    pending = [j for j in runs if j["id"] not in ok_runs]
    progress.runs_done = len(runs) - len(pending)
    eval_kinds = {j["kind"] for j in evals} or {"attack"}
    ok_evals = set().union(*(done_ids(store, k)[0] for k in eval_kinds)) if evals else set()
    pending_evals = [j for j in evals if j["id"] not in ok_evals]
    progress.evals_done = len(evals) - len(pending_evals)
    progress.start_timing()
    progress.show(force=True)
    if not pending and not pending_evals:
        progress.close()
        return progress
    shutdown = ray_session(options)
    try:
        if pending:
            _tune_phase(
                pending, store_uri=store_uri, options=options, progress=progress, kind_field="runs"
            )
        ok_runs = set().union(*(done_ids(store, k)[0] for k in run_kinds))
        ready = [j for j in pending_evals if all(r in ok_runs for r in needs.get(j["id"], ()))]
        if ready:
            _tune_phase(
                ready,
                store_uri=store_uri,
                options=eval_options or options,
                progress=progress,
                kind_field="evals",
            )
    finally:
        shutdown()
    final = summarise(store, runs, evals)
    progress.runs_done = final["runs_ok"] + final["runs_failed"]
    progress.evals_done = final["evals_ok"] + final["evals_failed"]
    progress.failed = final["runs_failed"] + final["evals_failed"]
    progress.close()
    return progress


def summarise(store: Store, runs: list[dict], evals: list[dict]) -> dict[str, int]:
    """Counts of ok / failed / pending runs and evaluations, read from the store."""
    out = {}
    for name, jobs, default in (("runs", runs, "fl"), ("evals", evals, "attack")):
        kinds = {j["kind"] for j in jobs} or {default}
        ok, failed = set(), set()
        for k in kinds:
            a, b = done_ids(store, k)
            ok |= a
            failed |= b
        ids = {j["id"] for j in jobs}
        out[f"{name}_ok"] = len(ids & ok)
        out[f"{name}_failed"] = len((ids & failed) - ok)
        out[f"{name}_pending"] = len(ids) - out[f"{name}_ok"] - out[f"{name}_failed"]
    return out

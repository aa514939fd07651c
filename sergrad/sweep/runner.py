"""Run lists of typed jobs through Ray Tune: grouping, reused actors, retries, progress.

`run_jobs(runs, evals, store_uri=...)` is generic over `sergrad.sweep.jobs.Job`: it skips
jobs already recorded ok, groups the rest into Tune trials (several per trial,
`reuse_actors=True`, one thread per job), executes each with `executors.execute` (retries,
then a failure record) and returns a `Result` read back from the store: every job is ok,
failed (with its recorded error), unrecorded (the failure record could not be written),
blocked (an input run failed) or not run (its worker died for good). Tune keeps its own files
in a temporary directory; the store is the record. A trial whose worker process dies is
restarted by Tune (`trial_restarts`), is reported as one line naming the job, and skips the
jobs already in the store. Evaluations that share a shadow set get its inputs built once,
first, in the trial that runs them (`jobs.PrepareJob`: one read of the shadow harvest for
all of them; `trial_groups`).

Ray is only imported here, inside functions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sergrad.store import Store, absolute_uri
from sergrad.sweep.executors import Outcome, done_ids, execute
from sergrad.sweep.jobs import Job, prepare_jobs
from sergrad.sweep.progress import Progress

log = logging.getLogger(__name__)


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
    attack_inputs_max_gb: float | None = None  # cache cap after evaluations; None: default


# --- Ray session ----------------------------------------------------------------------------
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's node IP is the loopback
# Ray's own background work that a sweep never reads, off unless the user sets it: usage
# statistics (a network call), metrics export, and per-task event reports (the state API
# and dashboard timeline). Each costs CPU that the jobs share on a small machine.
QUIET_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_enable_metrics_collection": "0",
    "RAY_task_events_report_interval_ms": "0",
}


def ray_session(options: EngineOptions):
    """Start (or join) Ray quietly; returns a callable that shuts the session down.

    A private local instance listens on 127.0.0.1 only: with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
    Ray takes the loopback as its node IP, and its GCS, raylet and workers bind to it (by
    default they listen on every interface, reachable from the network without auth).
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("TUNE_RESULT_BUFFER_LENGTH", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # legacy reporter: silent at verbose=0
    for name, value in QUIET_RAY_ENV.items():  # read by the Ray processes this call starts
        os.environ.setdefault(name, value)
    local = options.address in (None, "", "local")
    restore = _loopback_only() if local else (lambda: None)
    import ray

    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)

    kwargs = {
        "log_to_driver": False,
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
    }
    try:
        if local:
            with _without_monitors():
                ray.init(address="local", num_cpus=options.num_cpus or os.cpu_count(), **kwargs)
        else:
            ray.init(address=options.address, **kwargs)
    except BaseException:
        restore()
        raise

    def shutdown() -> None:
        ray.shutdown()
        restore()

    return shutdown


@contextlib.contextmanager
def _without_monitors():
    """A private local instance starts without Ray's autoscaler monitor and log monitor: a
    fixed-size instance never scales, and with `log_to_driver=False` nothing reads the logs
    the log monitor tails. Each is a Python process costing CPU at start-up, and stopping them
    is most of `ray.shutdown()` (about 1 s). Ray's `init` has no option for this, so the two
    node parameters are set while it runs (private API: without it, Ray starts both)."""
    try:
        from ray._private.parameter import RayParams
    except ImportError:
        yield
        return
    real = RayParams.__init__

    def lean(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.no_monitor = True
        self.include_log_monitor = False

    RayParams.__init__ = lean
    try:
        yield
    finally:
        RayParams.__init__ = real


def _loopback_only():
    """Make the next local Ray instance bind 127.0.0.1; returns a function that undoes it."""
    import sys

    old_env = os.environ.get(LOCAL_ONLY_ENV)
    os.environ[LOCAL_ONLY_ENV] = "0"  # read by Ray at import, and by its child processes
    constants = sys.modules.get("ray._private.ray_constants")  # Ray imported already
    old_const = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False

    def restore() -> None:
        if old_env is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = old_env
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = old_const

    return restore


def _trial(config: dict, *, groups: list[list[Job]], store_uri: str, max_retries: int) -> None:
    """One Tune trial: execute a group of jobs in order, reporting each outcome. Jobs run
    with one thread (OMP_NUM_THREADS=1 in the workers' environment, read by torch at import;
    torch is not imported here for jobs that do not need it)."""
    import sys

    from ray import tune

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    store = _store(store_uri)
    for index, job in enumerate(groups[config["group"]]):
        outcome = execute(job, store, max_retries=max_retries)
        tune.report(
            {
                "index": index,
                "job": job.id,
                "status": outcome.status,
                "error": outcome.error[:2000],
                "seconds": outcome.seconds,
            }
        )


_STORES: dict[str, Store] = {}


def _store(uri: str) -> Store:
    if uri not in _STORES:
        _STORES[uri] = Store(uri)
    return _STORES[uri]


def trial_resources(options: EngineOptions) -> dict[str, float]:
    """What one Tune trial requests: {"cpu": cpus_per_run[, "gpu": gpus_per_run]}."""
    resources = {"cpu": options.cpus_per_run}
    if options.gpus_per_run:
        resources["gpu"] = options.gpus_per_run
    return resources


def group_jobs(jobs: list[dict], *, per_trial: int, slots: int) -> list[list[dict]]:
    """Split `jobs` into consecutive groups (one Tune trial each), `per_trial` jobs each.

    Automatic size (`per_trial=0`): each group takes a quarter of a slot's share of the jobs
    still ungrouped (at most 32, at least 1), so a sweep starts few trials (big groups first)
    and ends with single jobs, which keep every slot busy until the last one finishes.

    >>> [len(g) for g in group_jobs(list(range(10)), per_trial=0, slots=1)]
    [3, 2, 2, 1, 1, 1]
    """
    if per_trial:
        return [jobs[i : i + per_trial] for i in range(0, len(jobs), per_trial)]
    groups, start = [], 0
    while start < len(jobs):
        size = max(1, min(32, math.ceil((len(jobs) - start) / (4 * max(1, slots)))))
        groups.append(jobs[start : start + size])
        start += size
    return groups


def trial_groups(
    jobs: list[Job], *, shadow_sets: Sequence[Job] = (), per_trial: int, slots: int
) -> list[list[Job]]:
    """Tune trials for `jobs`. The shared shadow sets' PrepareJobs (`shadow_sets`) of the
    same shadow runs head one trial, with the evaluations that use them after them in `jobs`'
    order (split every `per_trial` jobs when that is set; biggest first): their inputs are
    built once, before their evaluations, by the worker that runs them, and no other trial
    races to build them. The set attacking the most layers goes first: its featurizing pass
    stores the feature rows that the narrower sets of the same runs then find (e.g. fc1's,
    for an fc1-only set), instead of a pass each. The other jobs are grouped by
    `group_jobs`."""
    member = {}
    heads: dict[tuple, list[Job]] = {}  # shadow runs -> their PrepareJobs, widest first
    if shadow_sets:
        from sergrad.attack.config import eval_id

        for p in sorted(shadow_sets, key=lambda p: -p.n_layers):  # stable
            heads.setdefault(p.shadow_runs, []).append(p)
        index = {runs: i for i, runs in enumerate(heads)}
        member = {eval_id(c): index[p.shadow_runs] for p in shadow_sets for c in p.configs}
    sets: list[list[Job]] = [list(h) for h in heads.values()]
    rest: list[Job] = []
    for job in jobs:
        i = member.get(job.id)
        (rest if i is None else sets[i]).append(job)
    if per_trial:
        sets = [g[i : i + per_trial] for g in sets for i in range(0, len(g), per_trial)]
    sets.sort(key=len, reverse=True)
    return sets + group_jobs(rest, per_trial=per_trial, slots=slots)


def _tune_phase(
    jobs: list[Job],
    *,
    store_uri: str,
    options: EngineOptions,
    progress: Progress,
    outcomes: dict[str, Outcome],
    lost: dict[str, str],
    shadow_sets: Sequence[Job] = (),
) -> None:
    """Run `jobs` (and the PrepareJobs `shadow_sets`, each ahead of its evaluations) as Tune
    trials; fills `outcomes` (reported by workers) and `lost` (job id -> why, for jobs whose
    trial died for good)."""
    import ray
    from ray import tune
    from ray.tune import Callback, FailureConfig, RunConfig, TuneConfig, Tuner

    cpus = ray.cluster_resources().get("CPU", 1)
    slots = int(cpus // options.cpus_per_run) or 1
    if options.max_concurrent:
        slots = min(slots, options.max_concurrent)
    progress.slots = slots
    groups = trial_groups(jobs, shadow_sets=shadow_sets, per_trial=options.per_trial, slots=slots)
    next_index: dict[str, int] = {}  # trial id -> index of the job it runs now

    def running(trial) -> Job | None:
        group = groups[trial.config["group"]]
        i = next_index.get(trial.trial_id, 0)
        return group[i] if i < len(group) else None

    def flight(trial, delta: int) -> None:
        job = running(trial)
        if job is not None:
            progress.in_flight[job.eta_kind] = max(0, progress.in_flight[job.eta_kind] + delta)

    class _Count(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            flight(trial, +1)
            progress.show()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "job" not in result:
                return
            flight(trial, -1)
            next_index[trial.trial_id] = int(result["index"]) + 1
            job = groups[trial.config["group"]][int(result["index"])]
            if job.id not in outcomes:
                outcomes[job.id] = Outcome(
                    job.id, result["status"], result.get("error", ""), result.get("seconds", 0)
                )
                progress.finished(
                    job.eta_kind, ok=result["status"] == "ok", seconds=result.get("seconds")
                )
            flight(trial, +1)
            progress.show()

        def on_trial_recover(self, iteration, trials, trial, **info):
            job = running(trial)
            flight(trial, -1)
            log.warning(
                "worker died while running %s %s; restarting its trial",
                job.eta_kind if job else "job",
                job.id if job else "?",
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            job = running(trial)
            flight(trial, -1)
            group = groups[trial.config["group"]]
            for j in group[next_index.get(trial.trial_id, 0) :]:
                lost[j.id] = (
                    f"worker died {options.trial_restarts + 1} times (last while running {job.id if job else '?'})"
                )
            log.warning(
                "worker died while running %s %s; gave up after %d restarts",
                job.eta_kind if job else "job",
                job.id if job else "?",
                options.trial_restarts,
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            flight(trial, -1)

    resources = trial_resources(options)
    if resources.get("gpu", 0) > ray.cluster_resources().get("GPU", 0):
        from sergrad.errors import ConfigError

        raise ConfigError(
            f"each trial requests {resources['gpu']:g} GPU(s) (resources.gpus_per_run or a "
            f"cuda device) but the Ray cluster has {ray.cluster_resources().get('GPU', 0):g}"
        )
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, groups=groups, store_uri=store_uri, max_retries=options.max_retries
        ),
        resources,
    )
    tmp = tempfile.mkdtemp(prefix="sergrad-tune-")
    quiet = [logging.getLogger(n) for n in ("ray", "ray.tune", "ray.train", "ray.air")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:  # a dead worker is our one warning line above, not Ray's traceback
            q.setLevel(logging.CRITICAL)
        tuner = Tuner(
            trainable,
            param_space={"group": tune.grid_search(list(range(len(groups))))},
            tune_config=TuneConfig(reuse_actors=True, max_concurrent_trials=slots, num_samples=1),
            run_config=RunConfig(
                name="jobs",
                storage_path=tmp,
                verbose=0,
                log_to_file=True,
                callbacks=[_Count()],
                failure_config=FailureConfig(max_failures=options.trial_restarts),
            ),
        )
        with contextlib.redirect_stdout(io.StringIO()):  # Tune's banners; the store is the record
            tuner.fit()
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Result:
    """Final state of every job of a sweep, read back from the store."""

    ok: set[str] = field(default_factory=set)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (state, why)
    totals: dict[str, int] = field(default_factory=dict)  # "runs"/"evals"/"audits" -> jobs
    oks: dict[str, int] = field(default_factory=dict)  # "runs"/"evals"/"audits" -> ok
    # wall seconds of this call's phases: "runs" (FL runs) and "evals" (shadow inputs,
    # evaluations and audits), and job seconds per job kind (summed over parallel slots)
    wall_s: dict[str, float] = field(default_factory=dict)
    job_s: dict[str, float] = field(default_factory=dict)

    def timing_line(self) -> str:
        """'FL runs 66 s wall (136 job-s); evaluations and audits 54 s wall (fast eval 80
        job-s, ...)': where this call's time went (empty when nothing ran; minutes from 10
        minutes on)."""
        if not self.wall_s:
            return ""
        runs = {k: v for k, v in self.job_s.items() if k == "fl run"}
        rest = {k: v for k, v in self.job_s.items() if k != "fl run"}

        def jobs(d: dict) -> str:
            return ", ".join(f"{k} {v:.0f} job-s" for k, v in d.items()) or "none run"

        def wall(key: str) -> str:
            s = self.wall_s.get(key, 0.0)
            return f"{s:.0f} s" if s < 600 else f"{s / 60:.1f} min"

        return (
            f"FL runs {wall('runs')} wall ({jobs(runs)}); "
            f"evaluations and audits {wall('evals')} wall ({jobs(rest)})"
        )

    @property
    def all_ok(self) -> bool:
        return not self.problems

    def exit_code(self) -> int:
        """0 when every job is ok, 1 otherwise (bad input exits 2 before anything runs)."""
        return 0 if self.all_ok else 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state, _ in self.problems.values():
            out[state] = out.get(state, 0) + 1
        return out

    def problem_lines(self, *, limit: int = 10) -> list[str]:
        """One line per job that is not ok: state, id and the first line of the reason."""
        lines = []
        for job_id, (state, why) in list(self.problems.items())[:limit]:
            first = next((ln for ln in why.splitlines() if ln.strip()), "")
            lines.append(f"  {state:10s} {job_id}: {first[:200]}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more (sergrad sweep status)")
        return lines


def run_jobs(
    runs: list[Job],
    evals: list[Job] | None = None,
    *,
    store_uri: str,
    options: EngineOptions,
    eval_options: EngineOptions | None = None,
    progress: Progress | None = None,
    audits: list[Job] | None = None,
) -> Result:
    """Run `runs`, then the `evals` and `audits` whose `needs` (run ids) all finished ok.

    Jobs already recorded ok in the store are skipped. Returns every job's final state,
    recomputed from the store (audits counted apart from evaluations).
    """
    only_evals, audits = evals or [], audits or []
    evals = only_evals + audits  # the second phase: everything that needs runs
    store_uri = absolute_uri(store_uri)  # trials run in Tune's own working directory
    store = Store(store_uri)
    progress = progress or Progress()
    outcomes: dict[str, Outcome] = {}
    lost: dict[str, str] = {}
    ok, _ = _done(store, runs + evals)
    pending = [j for j in runs if j.id not in ok]
    pending_evals = [j for j in evals if j.id not in ok]
    for job in runs + evals:
        progress.add_total(job.eta_kind, 1, already_done=job.id in ok)
    progress.show(force=True)
    wall: dict[str, float] = {}
    if pending or pending_evals:
        shutdown = ray_session(options)
        try:
            t0 = time.monotonic()
            if pending:
                _tune_phase(pending, store_uri=store_uri, options=options, progress=progress,
                            outcomes=outcomes, lost=lost)  # fmt: skip
            wall["runs"], t0 = time.monotonic() - t0, time.monotonic()
            ok_runs = _done(store, runs)[0] if pending_evals else set()
            ready = [j for j in pending_evals if all(r in ok_runs for r in _needs(j))]
            prepare = prepare_jobs(ready)  # shared shadow sets: read and featurize once
            if prepare:
                progress.add_total(prepare[0].eta_kind, len(prepare))
            if ready:
                _tune_phase(ready, store_uri=store_uri, options=eval_options or options,
                            progress=progress, outcomes=outcomes, lost=lost,
                            shadow_sets=prepare)  # fmt: skip
                _warn_unprepared(prepare, outcomes, lost)
            wall["evals"] = time.monotonic() - t0
        finally:
            shutdown()
        if pending_evals:
            _cap_attack_inputs(store, options)
    progress.in_flight.clear()
    progress.close()
    result = summarise(store, runs, only_evals, outcomes=outcomes, lost=lost, audits=audits)
    result.wall_s = wall
    result.job_s = {k: float(v) for k, v in progress.seconds.items()}
    return result


def _cap_attack_inputs(store: Store, options: EngineOptions) -> None:
    """Evict least recently used `attack_inputs/` keys above the cap (sergrad.attack.inputs):
    after the evaluations, so a sweep never rebuilds inputs it is still using."""
    from sergrad.attack import inputs

    cap = options.attack_inputs_max_gb
    cap = inputs.DEFAULT_MAX_GB if cap is None else cap
    try:
        gone = inputs.evict(store, cap * 2**30)
    except OSError as exc:  # a cache: never fail a finished sweep over it
        log.warning("attack_inputs not capped at %g GB: %s", cap, exc)
        return
    if gone:
        log.info("attack_inputs: evicted %d key(s) above %g GB", len(gone), cap)


def _warn_unprepared(jobs: list[Job], outcomes: dict[str, Outcome], lost: dict[str, str]) -> None:
    """A shadow set whose inputs were not built is a warning only: every evaluation then
    builds its inputs and records its own outcome."""
    for job in jobs:
        outcome = outcomes.get(job.id)
        if outcome is None or outcome.status != "ok":
            why = outcome.error if outcome else lost.get(job.id, "its trial ended before it")
            first = next((ln for ln in why.splitlines() if ln.strip()), "")
            log.warning("shadow inputs %s not prepared (%s); its evaluations build their own",
                        job.id, first[:200])  # fmt: skip


def _needs(job: Job) -> tuple[str, ...]:
    return tuple(getattr(job, "needs", ()))


def _done(store: Store, jobs: list[Job]) -> tuple[set[str], dict[str, str]]:
    ok: set[str] = set()
    failed: dict[str, str] = {}
    for table, id_column in sorted({(j.table, j.id_column) for j in jobs}):
        a, b = done_ids(store, table, id_column)
        ok |= a
        failed.update(b)
    return ok, failed


def summarise(
    store: Store,
    runs: list[Job],
    evals: list[Job],
    *,
    outcomes: dict[str, Outcome] | None = None,
    lost: dict[str, str] | None = None,
    audits: list[Job] | None = None,
) -> Result:
    """Each job's state from the store; `outcomes`/`lost` explain what the store cannot."""
    outcomes, lost, audits = outcomes or {}, lost or {}, audits or []
    ok, failed = _done(store, runs + evals + audits)
    result = Result(ok={j.id for j in runs + evals + audits if j.id in ok})
    groups = [("runs", runs), ("evals", evals)] + ([("audits", audits)] if audits else [])
    for name, jobs in groups:
        result.totals[name] = len(jobs)
        result.oks[name] = sum(j.id in ok for j in jobs)
        for job in jobs:
            if job.id in ok:
                continue
            if job.id in failed:
                state, why = "failed", failed[job.id]
            elif job.id in outcomes and outcomes[job.id].status != "ok":
                state, why = outcomes[job.id].status, outcomes[job.id].error
            elif job.id in outcomes:
                state, why = "unrecorded", "reported ok but its record is missing or unreadable"
            elif any(n in failed or n not in ok for n in _needs(job)):
                bad = [n for n in _needs(job) if n not in ok]
                state, why = "blocked", f"input run {bad[0]} did not finish ok"
            else:
                state, why = "not run", lost.get(job.id, "its trial ended before reaching it")
            result.problems[job.id] = (state, why)
    return result

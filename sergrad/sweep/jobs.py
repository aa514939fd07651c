"""A sweep job: one typed, frozen unit of work from plan to stored row.

Every job answers the same small interface, so the runner, `sweep status` and the exit code
never branch on a kind:

    id            content hash, computed once at plan time and checked again before running
    table         the store table its one record lands in (`runs`, `attacks`, `audits`)
    id_column     that table's id column
    partition     (key, value) of its file in that table
    eta_kind      what it costs, for progress ("fl run", "fast eval", "cnn eval", "canary audit")
    is_done(store)        its record is readable and says "ok"
    run(store)            do the work and write the record; raises on failure
    failure_row(error)    the record of a failed attempt

Ray receives jobs as frozen dataclasses of plain values (configs, ids); nothing live.
Test-only jobs live in tests/; `sergrad bench sweep` has its own spin job.

>>> from sergrad.fl.config import RunConfig, run_id
>>> cfg = RunConfig()
>>> job = RunJob(run_id(cfg), "target", "b+a", cfg)
>>> job.partition, job.table, job.eta_kind
(('corpus', 'a+b'), 'runs', 'fl run')
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sergrad.attack.config import AttackConfig, eval_id
from sergrad.audit.config import CanaryAuditConfig
from sergrad.config import canonical_json, content_hash
from sergrad.fl.config import RunConfig, run_id
from sergrad.fl.records import now_iso
from sergrad.schema import (
    ATTACKS_PARTITION,
    AUDITS,
    AUDITS_PARTITION,
    RUNS_PARTITION,
    table_from_rows,
)
from sergrad.store import Store


class Job(Protocol):
    id: str
    table: ClassVar[str]
    id_column: ClassVar[str]

    @property
    def partition(self) -> tuple[str, str]: ...

    @property
    def eta_kind(self) -> str: ...

    def is_done(self, store: Store) -> bool: ...

    def run(self, store: Store) -> None: ...

    def failure_row(self, error: str) -> dict: ...


class JobIdMismatch(RuntimeError):
    """The id a job carries is not the content hash of its config (a planning bug)."""


def record_path(store: Store, job: Job) -> str:
    return store.file_path(job.table, partition=job.partition, name=job.id)


def stored_status(store: Store, job: Job) -> str | None:
    """ "ok" / "failed" from the job's record, None if absent or unreadable (then not done)."""
    path = record_path(store, job)
    if not store.exists_path(path):
        return None
    if not store.readable(path, warn=True):
        return None
    status = store.read_file(path, columns=["status"]).column("status").to_pylist()
    return "ok" if status and all(s == "ok" for s in status) else "failed"


def clear_record(store: Store, job: Job) -> None:
    """Before (re)running: a failed record is removed, an unreadable one quarantined."""
    path = record_path(store, job)
    if not store.exists_path(path):
        return
    if not store.readable(path):
        store.quarantine(path)
    else:
        store.fs.delete_file(path)


class StoredJob:
    """What every job that records one row per id shares: it is done when its row is ok, and
    it starts by re-checking its id, skipping if done and clearing a recorded failure."""

    def is_done(self, store: Store) -> bool:
        return stored_status(store, self) == "ok"

    def starts(self, store: Store, computed: str, *, what: str) -> bool:
        """False when the job is already done; else its failed record is cleared (a recorded
        failure is retried, not returned as done)."""
        check_id(self.id, computed, what=what)
        if self.is_done(store):
            return False
        clear_record(store, self)
        return True


@dataclass(frozen=True)
class RunJob(StoredJob):
    """One FL run (target or shadow) of a sweep."""

    id: str
    role: str  # target | shadow
    corpus: str  # corpus name; "a+b" for concatenated shadow corpora
    config: RunConfig

    table: ClassVar[str] = "runs"
    id_column: ClassVar[str] = "run_id"
    eta_kind: ClassVar[str] = "fl run"

    @property
    def partition(self) -> tuple[str, str]:
        return (RUNS_PARTITION, "+".join(sorted(self.corpus.split("+"))))

    def run(self, store: Store) -> None:
        from sergrad.fl.run import run_fl

        if not self.starts(store, run_id(self.config), what="run"):
            return
        row = run_fl(self.config, store, extra={"role": self.role})
        if row and row.get("status", "ok") != "ok":
            raise RuntimeError(row.get("error") or "run_fl returned a failed run")

    def failure_row(self, error: str) -> dict:
        return {
            "run_id": self.id,
            "status": "failed",
            "error": error,
            "role": self.role,
            "config": canonical_json(self.config),
            "seed": self.config.seed,
            "created_at": now_iso(),
        }


class EvaluationRecord(StoredJob):
    """What every attack evaluation job shares: its row lives in `attacks` under its target
    corpus, it needs its target and shadow runs, and a failure is one row naming both."""

    table = "attacks"
    id_column = "eval_id"

    @property
    def partition(self) -> tuple[str, str]:
        return (ATTACKS_PARTITION, self.target_corpus)

    @property
    def needs(self) -> tuple[str, ...]:
        """Run ids this evaluation reads (all must be ok first)."""
        return (self.config.target_run, *self.config.shadow_runs)

    def evaluation_failure(self, error: str, *, attack: str, adaptive: bool) -> dict:
        cfg = self.config
        return {
            "eval_id": self.id,
            "status": "failed",
            "error": error,
            "attack": attack,
            "adaptive": adaptive,
            "target_run": cfg.target_run,
            "shadow_runs": json.dumps(list(cfg.shadow_runs)),
            "seed": cfg.seed,
            "config": canonical_json(cfg),
            "created_at": now_iso(),
        }


@dataclass(frozen=True)
class EvalJob(EvaluationRecord):
    """One attack evaluation: a target run attacked with a model trained on shadow runs."""

    id: str
    target_corpus: str
    config: AttackConfig

    @property
    def eta_kind(self) -> str:
        return "cnn eval" if self.config.model.name == "cnn" else "fast eval"

    def run(self, store: Store) -> None:
        from sergrad.attack.run import run_attack

        if not self.starts(store, eval_id(self.config), what="evaluation"):
            return
        rows = run_attack(self.config, store)
        bad = [r for r in rows or [] if r.get("status", "ok") != "ok"]
        if bad:
            raise RuntimeError(bad[0].get("error") or "run_attack returned a failed evaluation")

    def failure_row(self, error: str) -> dict:
        return self.evaluation_failure(
            error, attack=self.config.model.name, adaptive=bool(self.config.adaptive)
        )


@dataclass(frozen=True)
class AuditJob(StoredJob):
    """One canary audit of a dp_sgd / central user_dp target run's mechanism (sergrad.audit)."""

    id: str
    target_corpus: str
    target_run: str
    run_config: RunConfig
    canary: CanaryAuditConfig

    table: ClassVar[str] = "audits"
    id_column: ClassVar[str] = "audit_id"
    eta_kind: ClassVar[str] = "canary audit"

    @property
    def partition(self) -> tuple[str, str]:
        return (AUDITS_PARTITION, self.target_corpus)

    @property
    def needs(self) -> tuple[str, ...]:
        """The target run: its reported epsilon is recorded beside the audit's."""
        return (self.target_run,)

    def run(self, store: Store) -> None:
        from sergrad.audit.run_audit import canary_audit_of_run
        from sergrad.fl.records import read_run_row

        check_id(self.target_run, run_id(self.run_config), what="audited run")
        if not self.starts(store, audit_id(self.target_run, self.canary), what="audit"):
            return
        t0 = time.perf_counter()
        row = canary_audit_of_run(self.run_config, store, canary=self.canary)
        run_row = read_run_row(store, self.target_run) or {}
        row.update(audit_id=self.id, status="ok", error=None, target_run=self.target_run,
                   run_epsilon=run_row.get("epsilon"), wall_s=time.perf_counter() - t0,
                   config=canonical_json(self.canary), created_at=now_iso())  # fmt: skip
        store.write_table(self.table, table_from_rows([row], AUDITS), partition=self.partition,
                          name=self.id)  # fmt: skip

    def failure_row(self, error: str) -> dict:
        return {
            "audit_id": self.id,
            "status": "failed",
            "error": error,
            "target_run": self.target_run,
            "n_canaries": self.canary.n_canaries,
            "confidence": self.canary.confidence,
            "fold": self.run_config.data.fold,
            "seed": self.run_config.seed,
            "config": canonical_json(self.canary),
            "created_at": now_iso(),
        }


def audit_id(target_run: str, canary: CanaryAuditConfig) -> str:
    return content_hash({"target_run": target_run, "canary": canary})


def make_audit_job(target_corpus: str, run: RunJob, canary: CanaryAuditConfig) -> AuditJob:
    """The one place an audit id is computed (plan time)."""
    return AuditJob(audit_id(run.id, canary), target_corpus, run.id, run.config, canary)


@dataclass(frozen=True)
class PrepareJob:
    """The shadow inputs of evaluations that share a shadow set, built once before they run
    (`sergrad.attack.group.prepare_attack_inputs`: one moments pass and one featurizing pass
    over the shadow harvest for all of them). It has no record of its own: the cache is in
    `attack_inputs/`, and when it fails each evaluation builds what it needs and records
    its own outcome."""

    id: str  # the shadow set (`attack.group.shadow_set`)
    configs: tuple[AttackConfig, ...]

    table: ClassVar[None] = None
    id_column: ClassVar[str] = ""
    eta_kind: ClassVar[str] = "shadow inputs"
    partition: ClassVar[tuple[str, str]] = ("", "")

    @property
    def shadow_runs(self) -> tuple[str, ...]:
        return tuple(self.configs[0].shadow_runs)  # one shadow set: the same runs in every config

    @property
    def n_layers(self) -> int:
        return len(self.configs[0].layers)

    def is_done(self, store: Store) -> bool:
        return False  # cheap to repeat: a cached shadow set is found, nothing is read again

    def run(self, store: Store) -> None:
        from sergrad.attack.group import prepare_attack_inputs

        prepare_attack_inputs(store, list(self.configs))

    def failure_row(self, error: str) -> dict:
        return {}


def prepare_jobs(evals: list) -> list[PrepareJob]:
    """One PrepareJob per shadow set shared by two or more of `evals` (an evaluation alone
    gains nothing: it builds its inputs in the same two passes itself)."""
    if not evals:  # no import of the attack code (torch) for a sweep without evaluations
        return []
    from sergrad.attack.group import shadow_set

    sets: dict[str, list[AttackConfig]] = {}
    for job in evals:
        config = getattr(job, "config", None)
        if isinstance(config, AttackConfig):
            sets.setdefault(shadow_set(config), []).append(config)
    return [PrepareJob(key, tuple(cs)) for key, cs in sets.items() if len(cs) > 1]


def check_id(carried: str, computed: str, *, what: str) -> None:
    if carried != computed:
        raise JobIdMismatch(f"{what} id {carried} differs from its config's hash {computed}")


def make_run_job(role: str, corpus: str, config: RunConfig) -> RunJob:
    """The one place a run id is computed (plan time)."""
    return RunJob(run_id(config), role, corpus, config)


def make_eval_job(target_corpus: str, config: AttackConfig) -> EvalJob:
    """The one place an evaluation id is computed (plan time)."""
    return EvalJob(eval_id(config), target_corpus, config)

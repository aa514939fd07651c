"""A synthetic sweep job for `sergrad bench sweep`: spin the CPU, then write a runs row.

It answers the `sergrad.sweep.jobs.Job` interface, so the benchmark measures the real
engine (grouping, Tune trials, store writes) without FL work. Not in the production
job set: only the benchmark (and tests, which extend it) create these.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import ClassVar

from sergrad.fl.records import now_iso
from sergrad.schema import RUNS, RUNS_PARTITION, table_from_rows
from sergrad.store import Store
from sergrad.sweep.jobs import clear_record, stored_status


@dataclass(frozen=True)
class SpinJob:
    id: str
    seconds: float = 0.0
    corpus: str = "bench"

    table: ClassVar[str] = "runs"
    id_column: ClassVar[str] = "run_id"
    eta_kind: ClassVar[str] = "spin"

    @property
    def partition(self) -> tuple[str, str]:
        return (RUNS_PARTITION, self.corpus)

    def is_done(self, store: Store) -> bool:
        return stored_status(store, self) == "ok"

    def run(self, store: Store) -> None:
        if self.is_done(store):
            return
        clear_record(store, self)
        t0 = time.perf_counter()
        busy(self.seconds)
        row = {
            "run_id": self.id,
            "status": "ok",
            "role": "bench",
            "wall_s": time.perf_counter() - t0,
            "config": json.dumps({"seconds": self.seconds}),
            "created_at": now_iso(),
        }
        store.write_table(
            self.table, table_from_rows([row], RUNS), partition=self.partition, name=self.id
        )

    def failure_row(self, error: str) -> dict:
        return {"run_id": self.id, "status": "failed", "error": error, "created_at": now_iso()}


def busy(seconds: float) -> float:
    """Spin the CPU for about `seconds` of thread CPU time; returns a checksum."""
    acc, end = 0.0, time.thread_time() + seconds
    while time.thread_time() < end:
        for i in range(2000):
            acc += (i * 1e-6) ** 0.5
    return acc

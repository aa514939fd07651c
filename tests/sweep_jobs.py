"""Test-only sweep jobs (never in the production job set): a spin job that can fail, fail
its failure record too, kill its own worker once, or die once in the middle of a write.

Ray workers cannot import tests/, so this module is pickled by value for them.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import pyarrow as pa
import ray.cloudpickle

from sergrad.bench.spin_job import SpinJob

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
_ATTEMPTS: dict[str, int] = {}  # per worker process


@dataclass(frozen=True)
class ToyJob(SpinJob):
    corpus: str = "toy"
    fail: bool | int = False  # True: always raise; n: raise on the first n attempts
    die_once: str = ""  # a file path: the first attempt creates it and SIGKILLs its worker
    bad_record: bool = False  # the failure record cannot be written either
    die_writing: str = ""  # a file path: the first attempt dies mid-write (partial `_tmp` file)

    def run(self, store) -> None:
        if self.is_done(store):
            return
        if self.die_once and not os.path.exists(self.die_once):
            open(self.die_once, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if self.die_writing and not os.path.exists(self.die_writing):
            open(self.die_writing, "w").close()
            schema = pa.schema([("run_id", pa.string())])
            with store.open_writer(self.table, schema, partition=self.partition, name=self.id) as w:
                w.write_table(pa.table({"run_id": [self.id] * 1000}, schema=schema))
                os.kill(os.getpid(), signal.SIGKILL)  # the writer dies before publishing
        attempt = _ATTEMPTS[self.id] = _ATTEMPTS.get(self.id, 0) + 1
        if self.fail is True or (not isinstance(self.fail, bool) and attempt <= self.fail):
            raise RuntimeError(f"toy job {self.id} failed on attempt {attempt}")
        super().run(store)

    def failure_row(self, error: str) -> dict:
        row = super().failure_row(error)
        return {**row, "no_such_column": 1} if self.bad_record else row


def toy(i: int, **kw) -> ToyJob:
    return ToyJob(f"job{i:03d}", **{"seconds": 0.01, **kw})

"""Fault injection (issue 12): kill -9 the driver, a worker and a writer in the middle of one
sweep of test-only jobs, resume, and find every job's row exactly once (0 lost, 0
duplicated), no partial file in any table, and the exit codes of the contract."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from driver_kill import kill_driver_after
from sweep_jobs import toy

from sergrad.store import Store
from sergrad.sweep.runner import EngineOptions, run_jobs

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
OPTS = EngineOptions(num_cpus=2, max_retries=1, trial_restarts=2, per_trial=3)


def jobs_for(tmp: Path) -> list:
    jobs = [toy(i, seconds=0.15) for i in range(24)]
    jobs[7] = toy(7, seconds=0.15, die_once=str(tmp / "worker-died"))
    jobs[11] = toy(11, seconds=0.15, die_writing=str(tmp / "writer-died"))
    jobs[13] = toy(13, fail=True)  # a genuine failure: recorded, exit 1
    return jobs


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_sweep_faults import OPTS, jobs_for
from pathlib import Path
from sergrad.sweep.runner import run_jobs
result = run_jobs(jobs_for(Path({tmp!r})), store_uri={store!r}, options=OPTS)
sys.exit(result.exit_code())
"""


def test_kill_driver_worker_and_writer_then_resume(tmp_path):
    store_dir = tmp_path / "store"
    script = textwrap.dedent(DRIVER).format(tests=str(TESTS), tmp=str(tmp_path),
                                            store=str(store_dir))  # fmt: skip
    runs = store_dir / "runs"
    kill_driver_after([sys.executable, "-c", script], runs, n_files=10)
    jobs = jobs_for(tmp_path)
    n_before = len(list(runs.rglob("*.parquet")))
    assert 10 <= n_before < len(jobs), "the driver kill should land mid-sweep"

    result = run_jobs(jobs, store_uri=str(store_dir), options=OPTS)
    assert (tmp_path / "worker-died").exists() and (tmp_path / "writer-died").exists()
    assert result.exit_code() == 1 and list(result.problems) == ["job013"]
    store = Store(store_dir)
    rows = store.read("runs", columns=["run_id", "status"]).to_pylist()
    assert sorted(r["run_id"] for r in rows) == sorted(j.id for j in jobs)  # 0 lost, 0 dup
    assert {r["run_id"] for r in rows if r["status"] != "ok"} == {"job013"}
    for path in store.files("runs"):
        assert pq.read_table(path).num_rows == 1  # no partial file was published
    # the dead writer's partial file stays in _tmp only, and is cleaned once stale
    leftovers = list((store_dir / "_tmp").iterdir())
    assert any("job011" in p.name for p in leftovers)
    assert store.clean_tmp(older_than_s=0) == len(leftovers)

    # resume again: nothing left to run but the failed job, which fails again (exit 1);
    # without it, the sweep is complete (exit 0)
    ok_jobs = [j for j in jobs if j.id != "job013"]
    assert run_jobs(ok_jobs, store_uri=str(store_dir), options=OPTS).exit_code() == 0

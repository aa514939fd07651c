"""The generic Tune runner with the test-only `ToyJob`: retries, failures, worker kill -9
mid-trial, resume, and an S3 store on a loopback moto server."""

from __future__ import annotations

import logging
import os
import socket

import pyarrow.parquet as pq
import pytest
from sweep_jobs import toy

from sergrad.store import Store
from sergrad.sweep import runner
from sergrad.sweep.runner import EngineOptions, group_jobs, run_jobs, summarise

pytestmark = pytest.mark.slow


def test_group_jobs_covers_every_job_once():
    jobs = list(range(23))
    for per, slots in [(0, 1), (0, 3), (5, 2), (1, 1), (100, 1)]:
        groups = group_jobs(jobs, per_trial=per, slots=slots)
        assert [j for g in groups for j in g] == jobs
        if per:
            assert max(map(len, groups)) == min(per, 23)


def test_group_jobs_automatic_sizes_shrink_to_single_jobs():
    for n, slots in [(200, 2), (23, 1), (1000, 8)]:
        sizes = [len(g) for g in group_jobs(list(range(n)), per_trial=0, slots=slots)]
        assert sum(sizes) == n and max(sizes) <= 32
        assert sizes == sorted(sizes, reverse=True)  # big trials first
        assert sizes[-slots:] == [1] * slots  # every slot ends on a single job
    assert [len(g) for g in group_jobs(list(range(200)), per_trial=0, slots=2)][:2] == [25, 22]


def test_local_session_without_monitors_still_runs_tasks():
    """The private instance has no autoscaler monitor or log monitor (checked in the process
    table), still runs remote work, and leaves RayParams as Ray defines it."""
    import psutil
    import ray
    from ray._private.parameter import RayParams

    init = RayParams.__init__
    shutdown = runner.ray_session(EngineOptions(num_cpus=1))
    try:
        cmdlines = [
            " ".join(p.cmdline())
            for p in psutil.Process().children(recursive=True)
            if p.is_running()
        ]
        assert any("raylet" in c for c in cmdlines)  # the listing sees Ray's processes
        assert not [c for c in cmdlines if "log_monitor.py" in c or "/monitor.py" in c]
        assert ray.get(ray.remote(lambda x: x * 2).remote(21)) == 42
    finally:
        shutdown()
    assert RayParams.__init__ is init


def runs_table(store: Store) -> list[dict]:
    return store.read("runs", columns=["run_id", "status", "error"]).to_pylist()


def test_retry_failure_worker_kill_and_resume(tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    marker = tmp_path / "died"
    jobs = [toy(i) for i in range(12)]
    jobs[3] = toy(3, fail=True)  # always raises -> recorded failed after retries
    jobs[5] = toy(5, fail=1)  # raises once -> retried -> ok
    jobs[8] = toy(8, die_once=str(marker))  # kills its worker once -> Tune restarts the trial
    opts = EngineOptions(num_cpus=2, max_retries=2, trial_restarts=2, per_trial=3)
    result = run_jobs(jobs, store_uri=str(store_dir), options=opts)
    assert marker.exists()
    store = Store(store_dir)
    rows = runs_table(store)
    assert sorted(r["run_id"] for r in rows) == [j.id for j in jobs]  # each exactly once
    failed = [r for r in rows if r["status"] != "ok"]
    assert [r["run_id"] for r in failed] == ["job003"]
    assert "failed on attempt 3" in failed[0]["error"]  # 1 try + 2 retries
    assert result.oks == {"runs": 11, "evals": 0} and result.exit_code() == 1
    assert list(result.problems) == ["job003"]
    assert result.problems["job003"][0] == "failed"
    assert summarise(store, jobs, []).problems == result.problems
    for path in store.files("runs"):
        assert pq.read_table(path).num_rows == 1  # complete, readable files only

    # resume: only the failed job is pending; Ray is started again for it alone
    calls = []
    real = runner._tune_phase
    monkeypatch.setattr(
        runner, "_tune_phase", lambda jobs, **kw: (calls.append(len(jobs)), real(jobs, **kw))
    )
    again = run_jobs([j for j in jobs if j.id != "job003"], store_uri=str(store_dir), options=opts)
    assert calls == []  # everything already ok: no trial ran
    assert again.exit_code() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def moto_s3(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="sweeps"
    )
    yield (
        f"s3://sweeps/run1?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1",
        endpoint,
    )
    server.stop()


def test_s3_store_on_loopback_moto(moto_s3):
    import boto3

    uri, endpoint = moto_s3
    jobs = [toy(i) for i in range(5)] + [toy(5, fail=True)]
    run_jobs(jobs, store_uri=uri, options=EngineOptions(num_cpus=2, max_retries=0))
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="sweeps")["Contents"])
    want = [f"run1/runs/corpus=toy/job{i:03d}.parquet" for i in range(6)]
    assert [k for k in keys if k.startswith("run1/runs/") and not k.endswith("/")] == want
    assert not [k for k in keys if k.startswith("run1/_tmp/") and not k.endswith("/")]
    rows = sorted(runs_table(Store(uri)), key=lambda r: r["run_id"])
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["failed"]
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"

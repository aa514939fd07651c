"""Issue 12 failures 1-3 and 9 on the real engine (private local Ray, test-only ToyJob):
a relative store lands where the user typed it; a failure that cannot even be recorded is
reported and exits 1; a corrupt Parquet file is skipped with a warning naming it and its
job alone reruns on resume; a stale `_tmp` file is cleaned."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import pytest
from sweep_jobs import toy

from sergrad.cli import main
from sergrad.store import Store
from sergrad.sweep.executors import done_ids
from sergrad.sweep.runner import EngineOptions, run_jobs

pytestmark = pytest.mark.slow
OPTS = EngineOptions(num_cpus=2, max_retries=1, trial_restarts=1, per_trial=2)


def test_relative_store_unrecorded_failure_corrupt_file_and_resume(
    tmp_path, monkeypatch, caplog, capsys
):
    monkeypatch.chdir(tmp_path)
    jobs = [toy(0), toy(1), toy(2)]
    broken = toy(3, fail=True, bad_record=True)  # fails, and so does recording the failure

    # failure 1: a relative store is resolved in the driver, not in Tune's trial directory
    result = run_jobs([*jobs, broken], store_uri="rel/store", options=OPTS)
    root = tmp_path / "rel" / "store"
    files = {p.name: p for p in (root / "runs").rglob("*.parquet")}
    assert sorted(files) == ["job000.parquet", "job001.parquet", "job002.parquet"]

    # failure 2: the job that could not be recorded is named, with both reasons; exit 1
    assert result.exit_code() == 1
    state, why = result.problems["job003"]
    assert list(result.problems) == ["job003"] and state == "unrecorded"
    assert "could not record the failure" in why and "failed on attempt 2" in why

    # failure 3: one corrupt file -> warning naming it, its job is not done, status works
    bad = files["job001.parquet"]
    bad.write_bytes(b"PAR1 this is not parquet")
    store = Store(root)
    with caplog.at_level(logging.WARNING, logger="sergrad.store"):
        ok, failed = done_ids(store, "runs", "run_id")
    assert ok == {"job000", "job002"} and failed == {}
    assert str(bad) in caplog.text
    store.write_json(
        "sweep.json",
        {"name": "t", "source": "x", "runs": [{"id": j.id, "role": "target"} for j in jobs],
         "evals": []},
    )  # fmt: skip
    capsys.readouterr()
    assert main(["sweep", "status", str(root)]) == 0  # pending is not a failure
    assert "runs              2 done      0 failed       1 pending  / 3" in capsys.readouterr().out

    # resume: only the job of the corrupt file runs again; the others are untouched
    before = {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in files.items()}
    again = run_jobs(jobs, store_uri="rel/store", options=OPTS)
    assert again.exit_code() == 0 and again.problems == {}
    after = {p.name: p for p in (root / "runs").rglob("*.parquet")}
    for name in ("job000.parquet", "job002.parquet"):
        assert (after[name].stat().st_ino, after[name].stat().st_mtime_ns) == before[name]
    assert store.readable(str(after["job001.parquet"]))
    assert len(list((root / "_quarantine").iterdir())) == 1  # kept for inspection


def test_worker_death_is_one_line_naming_the_job(tmp_path, caplog, capfd):
    marker = tmp_path / "died"
    jobs = [toy(0), toy(1, die_once=str(marker)), toy(2)]
    with caplog.at_level(logging.WARNING, logger="sergrad.sweep.runner"):
        result = run_jobs(jobs, store_uri=str(tmp_path / "s"), options=OPTS)
    assert marker.exists() and result.exit_code() == 0
    lines = [r.getMessage() for r in caplog.records if "worker died" in r.getMessage()]
    assert lines == ["worker died while running spin job001; restarting its trial"]
    err = capfd.readouterr().err
    assert "ActorDiedError" not in err and "Traceback" not in err


def test_stale_tmp_files_are_cleaned_fresh_ones_kept(tmp_path):
    store = Store(tmp_path)
    tmp = tmp_path / "_tmp"
    tmp.mkdir()
    stale, fresh = tmp / "a-run.parquet", tmp / "b-run.parquet"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert store.clean_tmp(older_than_s=900) == 1
    assert not stale.exists() and fresh.exists()


def test_sweep_status_on_a_mistyped_path_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    assert main(["sweep", "status", str(missing)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_status_json_counts_failed_as_exit_1(tmp_path, capsys):
    store = Store(tmp_path)
    from sergrad.schema import RUNS, table_from_rows

    row = {"run_id": "r1", "status": "failed", "error": "boom"}
    store.write_table("runs", table_from_rows([row], RUNS), partition=("corpus", "a"), name="r1")
    record = {"name": "t", "source": "x", "runs": [{"id": "r1", "role": "target"}], "evals": []}
    Path(tmp_path / "sweep.json").write_text(json.dumps(record))
    assert main(["sweep", "status", str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["runs"]["failed"] == 1


def _listening(pids: set[int]) -> list[str]:
    """Hex local addresses of the TCP sockets in LISTEN state owned by `pids` (/proc)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                out.append(cols[1].split(":")[0])
    return out


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo += children.get(pid, [])
    return out


def test_private_ray_instance_listens_on_loopback_only():
    """Issue 12 item 10: every listening socket of the local instance is 127.0.0.1."""
    from sergrad.sweep.runner import ray_session

    shutdown = ray_session(EngineOptions(num_cpus=1))
    try:
        addresses = _listening(_descendants(os.getpid()))
    finally:
        shutdown()
    assert addresses, "no listening socket found"
    loopback = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")
    assert [a for a in addresses if a not in loopback] == []
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # restored

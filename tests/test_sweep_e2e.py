"""End to end: sweeps/small.yaml on a private local Ray instance (real FL runs and attacks),
resume without re-running anything, and kill -9 of the driver mid-sweep."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from driver_kill import kill_driver_after

from sergrad.cli import main
from sergrad.store import Store
from sergrad.sweep import runner
from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep

pytestmark = pytest.mark.slow
SMALL = Path(__file__).resolve().parents[1] / "sweeps" / "small.yaml"


@pytest.fixture(scope="module", autouse=True)
def synth_cache(tmp_path_factory):
    old = os.environ.get("SERGRAD_CACHE")
    os.environ["SERGRAD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SERGRAD_CACHE")
    else:
        os.environ["SERGRAD_CACHE"] = old


def check_store(uri: str, sweep_file: Path = SMALL) -> None:
    """Every planned run and evaluation recorded ok exactly once; no stray files."""
    store = Store(uri)
    plan = expand(load_sweep(sweep_file), uri)
    runs = store.read("runs", columns=["run_id", "status"]).to_pylist()
    assert sorted(r["run_id"] for r in runs) == sorted(r.id for r in plan.runs)
    assert {r["status"] for r in runs} == {"ok"}
    attacks = store.read("attacks", columns=["eval_id", "status"]).to_pylist()
    assert {a["eval_id"] for a in attacks} == {e.id for e in plan.evals}
    assert {a["status"] for a in attacks} == {"ok"}
    for table in ("runs", "rounds", "updates", "attacks", "predictions"):
        for path in store.files(table):
            pq.read_metadata(path)  # complete Parquet (footer present)
    assert sorted(store.partition_values("updates")) == sorted(r.id for r in plan.runs)
    stray = [p for p in Path(uri).rglob("*") if p.is_file() and "_tmp" not in p.parts
             and p.suffix not in (".parquet", ".json")]  # fmt: skip
    assert stray == []


def test_local_sweep_status_and_resume(tmp_path, monkeypatch, capsys):
    # the documented form: a relative store (issue 12, failure 1: Tune's trial directory)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "run", str(SMALL), "--store", "out/small"]) == 0
    uri = str(tmp_path / "out" / "small")
    check_store(uri)
    capsys.readouterr()
    assert main(["sweep", "status", uri]) == 0
    out = capsys.readouterr().out
    assert "runs              4 done      0 failed       0 pending  / 4" in out
    # resume: nothing is pending, so Ray is never started and no job executes
    monkeypatch.setattr(runner, "ray_session", lambda *a, **k: pytest.fail("Ray started"))
    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("job executed"))
    assert main(["sweep", "run", str(SMALL), "--store", uri]) == 0
    check_store(uri)
    # a moved store resumes with 0 reruns: ids hold no store location (issue 12, item 7)
    moved = str(tmp_path / "elsewhere" / "copy")
    shutil.move(uri, moved)
    assert main(["sweep", "run", str(SMALL), "--store", moved]) == 0
    check_store(moved)


def test_kill9_driver_then_resume(tmp_path):
    # small.yaml with more seeds and rounds, so the kill lands while runs are still pending
    sweep_file = tmp_path / "kill9.yaml"
    text = SMALL.read_text().replace("seeds: [0]", "seeds: [0, 1, 2, 3, 4, 5]")
    sweep_file.write_text(text.replace("rounds: 4,", "rounds: 30,"))
    total = len(expand(load_sweep(sweep_file), str(tmp_path / "store")).runs)
    uri = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "sergrad.cli", "sweep", "run", str(sweep_file), "--store", uri]
    runs_dir = Path(uri) / "runs"
    kill_driver_after(cmd, runs_dir, n_files=1)
    n_before = len(list(runs_dir.rglob("*.parquet")))
    assert total >= 20
    assert 1 <= n_before < total, "the kill should land mid-sweep"
    assert main(["sweep", "run", str(sweep_file), "--store", uri]) == 0
    check_store(uri, sweep_file)


def test_failed_evaluations_exit_1_and_name_each_job(tmp_path, capsys):
    """Issue 12 failure 2: a sweep with failed jobs exits 1 and says which and why."""
    sweep_file = tmp_path / "bad_layer.yaml"
    text = SMALL.read_text().replace("layers: [fc1]", "layers: [fc2]")  # fc2 is not harvested
    sweep_file.write_text(text.replace("max_retries: 1", "max_retries: 0"))
    uri = str(tmp_path / "store")
    capsys.readouterr()
    assert main(["sweep", "run", str(sweep_file), "--store", uri]) == 1
    out = capsys.readouterr().out
    plan = expand(load_sweep(sweep_file), uri)
    assert f"runs 4/4 ok, evals 0/{len(plan.evals)} ok; not ok: {len(plan.evals)} failed" in out
    for e in plan.evals:
        line = next(ln for ln in out.splitlines() if e.id in ln)
        assert line.split()[0] == "failed" and "'fc2' not harvested" in line
    assert main(["sweep", "status", uri]) == 1

"""Run records: runs / rounds round trips, partition values, finished ids, versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import subprocess
import sys

import polars as pl
import pyarrow.dataset as ds
import pytest

from sergrad import schema
from sergrad.errors import DataError, StoreError
from sergrad.fl.records import (
    finished_run_ids,
    now_iso,
    read_rounds,
    read_run_row,
    versions,
    write_rounds,
    write_run_row,
)
from sergrad.store import Store


def run_row(run_id: str, status: str = "ok", **extra) -> dict:
    return {
        "run_id": run_id,
        "status": status,
        "error": None if status == "ok" else "boom",
        "algorithm": "fedavg",
        "fold": 2,
        "seed": 3,
        "defense": "none",
        "rounds": 10,
        "test_uar": 0.61,
        "harvest_bytes": 12345,
        "config": '{"seed":3}',
        "created_at": now_iso(),
        **extra,
    }


def test_run_row_round_trip_with_plus_in_corpus(tmp_path):
    store = Store(tmp_path)
    row = run_row("abc123")
    write_run_row(store, row, "synth-a+synth-b")
    got = read_run_row(store, "abc123")
    expect = {n: row.get(n) for n in schema.RUNS.names} | {"corpus": "synth-a+synth-b"}
    assert got == expect
    assert (tmp_path / "runs/corpus=synth-a+synth-b/abc123.parquet").exists()
    # the partition value survives hive decoding in pyarrow and polars
    table = ds.dataset(tmp_path / "runs", partitioning="hive").to_table()
    assert table["corpus"].to_pylist() == ["synth-a+synth-b"]
    assert store.read("runs")["corpus"].to_pylist() == ["synth-a+synth-b"]
    lazy = pl.scan_parquet(tmp_path / "runs", hive_partitioning=True)
    assert lazy.select("corpus", "run_id").collect().rows() == [("synth-a+synth-b", "abc123")]
    assert read_run_row(store, "missing") is None


def test_rewrite_replaces_and_moves_between_corpora(tmp_path):
    store = Store(tmp_path)
    write_run_row(store, run_row("r1", "failed"), "crema-d")
    write_run_row(store, run_row("r2"), "crema-d")
    assert finished_run_ids(store) == {"r2"}
    again = read_run_row(store, "r1") | {"status": "ok", "error": None}
    write_run_row(store, again, "crema-d")  # the row read back is accepted as is
    assert finished_run_ids(store) == {"r1", "r2"}
    write_run_row(store, run_row("r1"), "iemocap")
    assert read_run_row(store, "r1")["corpus"] == "iemocap"
    assert sorted(store.read("runs")["run_id"].to_pylist()) == ["r1", "r2"]


def test_finished_run_ids_empty_store(tmp_path):
    assert finished_run_ids(Store(tmp_path)) == set()


@pytest.mark.parametrize("corpus", ["a%2Bb", "a b", "_x", "a/b", ""])
def test_unsafe_corpus_names_are_refused(tmp_path, corpus):
    with pytest.raises(StoreError, match="corpus"):
        write_run_row(Store(tmp_path), run_row("r1"), corpus)


def test_bad_rows_name_the_column(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(DataError, match="runs row of run r1.*columns not in schema.*'uar'"):
        write_run_row(store, run_row("r1", uar=0.5), "c")
    with pytest.raises(DataError, match="column 'fold'"):
        write_run_row(store, run_row("r1", fold="two"), "c")
    with pytest.raises(DataError, match="corpus differs"):
        write_run_row(store, run_row("r1", corpus="x"), "c")
    assert store.files("runs") == []


def test_rounds_round_trip(tmp_path):
    store = Store(tmp_path)
    rows = [
        {"round": r, "n_clients": 5, "train_loss": 1.0 / r, "val_uar": 0.3 + r / 100, "wall_s": 0.1}
        for r in range(1, 6)
    ]
    write_rounds(store, "r1", rows)
    write_rounds(store, "r2", [{"run_id": "r2", "round": 1, "n_clients": 3}])
    got = read_rounds(store, "r1")
    assert got == [{n: row.get(n) for n in schema.ROUNDS.names} for row in rows]
    both = store.read("rounds")
    assert both.num_rows == 6 and sorted(set(both["run_id"].to_pylist())) == ["r1", "r2"]
    assert read_rounds(store, "none") == []
    with pytest.raises(DataError, match="duplicate rounds \\[2\\]"):
        write_rounds(store, "r3", [{"round": 2}, {"round": 2}])
    with pytest.raises(DataError, match="another run_id"):
        write_rounds(store, "r3", [{"round": 1, "run_id": "r4"}])


def test_versions_and_time():
    v = versions()
    assert v["numpy"] == importlib.metadata.version("numpy")
    assert set(v) >= {"numpy", "pyarrow", "polars", "torch", "sergrad"}
    stamp = now_iso()
    parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert stamp.endswith("Z") and abs(dt.datetime.now(dt.UTC) - parsed).total_seconds() < 60


def test_versions_import_no_torch():
    code = (
        "import sys; from sergrad.fl.records import versions; v = versions(); "
        "assert 'torch' in v and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

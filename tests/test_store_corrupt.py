"""Store.read skips unreadable files (the first one included) with a warning naming each."""

from __future__ import annotations

import logging

import pyarrow as pa

from sergrad.store import Store


def test_read_skips_each_unreadable_file_and_names_it(tmp_path, caplog):
    store = Store(tmp_path)
    paths = [
        store.write_table("runs", pa.table({"run_id": [f"r{i}"], "status": ["ok"]}),
                          partition=("corpus", "a"), name=f"r{i}")
        for i in range(3)
    ]  # fmt: skip
    with open(paths[0], "r+b") as f:  # truncate the first file: its footer is gone
        f.truncate(20)
    with caplog.at_level(logging.WARNING, logger="sergrad.store"):
        rows = store.read("runs").to_pylist()
    assert sorted(r["run_id"] for r in rows) == ["r1", "r2"]
    assert {r["corpus"] for r in rows} == {"a"}
    assert paths[0] in caplog.text and paths[1] not in caplog.text
    for p in paths[1:]:
        with open(p, "wb") as f:
            f.write(b"not parquet")
    assert store.read("runs").num_rows == 0


def test_partition_values_stay_strings(tmp_path):
    store = Store(tmp_path)
    store.write_table("t", pa.table({"x": [1]}), partition=("run_id", "0123"), name="f")
    assert store.read("t").column("run_id").to_pylist() == ["0123"]

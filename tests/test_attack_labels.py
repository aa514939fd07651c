"""The attack's labels come from the `clients` side table, never from the server's view
(issue 12): shadow labels and target labels (scoring only) are joined by (run, client_id);
stores written before the side table keep their `gender` key column and still evaluate."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.errors import DataError
from sergrad.fl.harvest_read import update_path
from sergrad.fl.records import read_clients, write_clients, write_run_row
from sergrad.schema import LEGACY_LABEL, SPEAKER_COLUMNS
from sergrad.store import Store

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
RUNS = ("shadow0", "shadow1", "target")
RESULT = ("layer", "protocol", "n_avg", "calibration", "uar", "auc", "n_scored", "n_speakers")


def _store(path) -> Store:
    store = Store(path)
    for i, rid in enumerate(RUNS):
        n = 10 if rid == "target" else 12
        speakers = [(f"{rid[0]}{j}", "FM"[j % 2]) for j in range(n)]
        write_synthetic_run(store, rid, corpus="b" if rid == "target" else "a",
                            shapes=TINY_SHAPES, speakers=speakers, rounds=8, clients_per_round=5,
                            seed=i, signal=LEAK, role="target" if rid == "target" else "shadow")  # fmt: skip
    return store


def _config() -> AttackConfig:
    model = AttackModelConfig(name="logreg_stats", epochs=4)
    return AttackConfig(target_run="target", shadow_runs=RUNS[:2], model=model, n_avg=(1, 0),
                        trials=2, bootstrap=50, layers=("fc1",))  # fmt: skip


def _results(store) -> list[tuple]:
    rows = run_attack(_config(), store)
    return sorted(tuple(r[k] for k in RESULT) for r in rows)


def _predictions(store) -> list[tuple]:
    cols = ["layer", "protocol", "n_avg", "trial", "round", "client_id", "gender", "p_male"]
    return sorted(tuple(r[c] for c in cols) for r in store.read("predictions").to_pylist())


def _legacy(store: Store, path) -> Store:
    """The same runs written the old way: gender as an updates key column, no clients table."""
    old = Store(path)
    for rid in RUNS:
        truth = {r["client_id"]: r["gender"] for r in read_clients(store, rid)}
        table = pq.read_table(update_path(store, rid))
        meta = table.schema.metadata
        col = pa.array([truth[c] for c in table["client_id"].to_pylist()], pa.string())
        table = table.add_column(3, LEGACY_LABEL, col).replace_schema_metadata(meta)
        out = update_path(old, rid)
        old.fs.create_dir(out.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, out)
        row = next(r for r in store.read("runs").to_pylist() if r["run_id"] == rid)
        write_run_row(old, {k: v for k, v in row.items() if k != "corpus"}, row["corpus"])
    assert old.partition_values("clients") == []
    return old


def test_new_harvest_has_no_speaker_attribute_column(tmp_path):
    store = _store(tmp_path)
    for rid in RUNS:
        names = set(pq.read_schema(update_path(store, rid)).names)
        assert not names & {LEGACY_LABEL, *SPEAKER_COLUMNS}, names
        assert {r["gender"] for r in read_clients(store, rid)} == {"F", "M"}


def test_results_identical_to_a_store_written_the_old_way(tmp_path):
    new = _store(tmp_path / "new")
    old = _legacy(new, tmp_path / "old")
    assert _results(new) == _results(old)  # the fallback: updates.gender read when no clients
    assert _predictions(new) == _predictions(old)
    # the scored labels are the side table's ground truth, row by row (naive join)
    truth = {r["client_id"]: r["gender"] for r in read_clients(new, "target")}
    preds = new.read("predictions").to_pylist()
    assert preds and all(p["gender"] == truth[p["client_id"]] for p in preds if p["round"] >= 0)


def test_labels_follow_the_clients_table(tmp_path):
    """Swap F/M in the target's side table only: the scored labels flip, the model's
    P(male) does not (so the labels are read from there, and only for scoring)."""
    store = _store(tmp_path)
    _results(store)
    before = {(p["layer"], p["protocol"], p["n_avg"], p["trial"], p["round"], p["client_id"]):
              (p["gender"], p["p_male"]) for p in store.read("predictions").to_pylist()}  # fmt: skip
    rows = read_clients(store, "target")
    swap = {"F": "M", "M": "F"}
    write_clients(store, "target", [{**r, "gender": swap[r["gender"]]} for r in rows])
    for table in ("attacks", "predictions"):  # a finished evaluation is not rerun
        store.fs.delete_dir(store.path(table))
    _results(store)
    after = store.read("predictions").to_pylist()
    assert len(after) == len(before)
    for p in after:
        g, pm = before[(p["layer"], p["protocol"], p["n_avg"], p["trial"], p["round"],
                        p["client_id"])]  # fmt: skip
        assert p["gender"] == swap[g] and p["p_male"] == pytest.approx(pm)


def test_shadow_without_any_labels_is_a_clear_error(tmp_path):
    store = _store(tmp_path)
    store.fs.delete_dir(store.path("clients") + "/run_id=shadow1")
    with pytest.raises(DataError, match=r"shadow runs \['shadow1'\]: updates without a gender"):
        run_attack(_config(), store)

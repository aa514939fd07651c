"""The server's view and the client's ground truth travel apart (issue 12): a defense sees a
`ClientUpdate` without gender; the harvest holds no speaker attribute; the `clients` side
table comes from the `ClientContext`."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import torch

from sergrad.fl.config import AlgoConfig, EvalConfig, HarvestConfig, ModelConfig, RunConfig
from sergrad.fl.harvest_read import read_update_keys, update_path
from sergrad.fl.run import run_fl
from sergrad.fl.synthetic import random_dataset
from sergrad.fl.update import ClientUpdate, Defense
from sergrad.schema import SPEAKER_COLUMNS, UPDATE_KEYS
from sergrad.store import Store


def test_update_has_no_ground_truth_fields():
    names = {f.name for f in dataclasses.fields(ClientUpdate)}
    assert names == {"round", "client_id", "speaker_id", "n_samples", "kind", "tensors"}


class Spy(Defense):
    name = "spy"

    def __init__(self) -> None:
        self.seen: list[ClientUpdate] = []

    def client_update(self, update, *, generator):
        self.seen.append(update)
        return update


def test_ground_truth_is_in_the_clients_table_not_the_harvest(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    ds = random_dataset(n_speakers=6, utts_per_speaker=8, dim=5, seed=0)
    spy = Spy()
    monkeypatch.setattr("sergrad.fl.run.build_defenses", lambda config, part: [spy])
    cfg = RunConfig(
        model=ModelConfig(hidden=(4, 3)),
        algo=AlgoConfig(name="fedsgd", rounds=2, client_fraction=1.0),
        eval=EvalConfig(select_after=0),
        harvest=HarvestConfig(params=("fc1.*",)),
        engine="reference",
    )
    store = Store(tmp_path)
    row = run_fl(cfg, store, dataset=ds)
    assert spy.seen and all(not hasattr(u, "gender") for u in spy.seen)
    table = read_update_keys(store, row["run_id"])
    keys = table.to_pylist()
    truth = dict(zip(ds.speaker_id.tolist(), ds.gender.tolist()))
    assert len(keys) == len(spy.seen)
    # the server's view: no speaker attribute column in the updates file at all
    names = set(pq.read_schema(update_path(store, row["run_id"])).names)
    assert not names & {"gender", *SPEAKER_COLUMNS}, names
    assert set(table.column_names) == {f.name for f in UPDATE_KEYS}
    # the side table: every client of the run, keyed like the update rows
    clients = store.read("clients").to_pylist()
    assert {c["run_id"] for c in clients} == {row["run_id"]}
    by_client = {c["client_id"]: c for c in clients}
    assert len(by_client) == len(clients) >= len({k["client_id"] for k in keys})
    for k in keys:
        c = by_client[k["client_id"]]
        assert (c["speaker_id"], c["gender"]) == (k["speaker_id"], truth[k["speaker_id"]])
    assert {c["gender"] for c in clients} == {"F", "M"} and {c["corpus"] for c in clients} == {
        "synth-a"
    }

"""The clients side table carries every speaker attribute of the run's utterance tables
(age, language, ...), for one corpus and for runs mixing corpora ("corpus/speaker" ids)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from sergrad.fl.config import AlgoConfig, EvalConfig, ModelConfig, RunConfig
from sergrad.fl.data import _speaker_columns
from sergrad.fl.records import read_clients
from sergrad.fl.run import run_fl
from sergrad.fl.synthetic import random_dataset
from sergrad.store import Store


def test_speaker_columns_of_an_utterance_table():
    utts = pa.table({"corpus": ["a", "a", "a", "b"], "speaker_id": ["s1", "s1", "s2", "s1"],
                     "age": [None, 31.0, 64.0, 22.0], "language": ["L2", "L2", "L1", None]})  # fmt: skip
    assert _speaker_columns(utts) == {
        ("a", "s1"): {"age": 31.0, "language": "L2"},  # first non-null value of the speaker
        ("a", "s2"): {"age": 64.0, "language": "L1"},
        ("b", "s1"): {"age": 22.0, "language": None},  # never invented
    }
    assert _speaker_columns(pa.table({"corpus": ["a"], "speaker_id": ["s"]})) == {}


def _with_speakers(ds, corpora: list[str]):
    """`ds` relabelled onto `corpora` (speaker i -> corpora[i % len]) with a known age and
    language per (corpus, speaker)."""
    order = sorted(set(ds.speaker_id.tolist()))
    corpus_of = {s: corpora[i % len(corpora)] for i, s in enumerate(order)}
    truth = {(corpus_of[s], s): {"age": 20.0 + 7 * i, "race": None, "ethnicity": None,
                                 "language": "L2" if i % 3 == 0 else "L1"}
             for i, s in enumerate(order)}  # fmt: skip
    corpus = np.array([corpus_of[s] for s in ds.speaker_id], dtype=object)
    return dataclasses.replace(ds, corpus=corpus, speakers=truth), truth


def test_clients_table_holds_the_speakers_attributes(tmp_path):
    config = RunConfig(model=ModelConfig(hidden=(8, 4)), eval=EvalConfig(select_after=0),
                       algo=AlgoConfig(name="fedsgd", rounds=2, batch_size=5))  # fmt: skip
    base = random_dataset(n_speakers=8, utts_per_speaker=6, dim=6, seed=0)
    for corpora in (["c"], ["c", "d"]):
        ds, truth = _with_speakers(base, corpora)
        store = Store(tmp_path / "-".join(corpora))
        rid = run_fl(config, store, dataset=ds)["run_id"]
        rows = read_clients(store, rid)
        assert len(rows) >= 4  # the training speakers of fold 0
        for r in rows:
            sid = r["speaker_id"].split("/", 1)[-1]  # mixed corpora: "corpus/speaker"
            assert r["speaker_id"] == (sid if len(corpora) == 1 else f"{r['corpus']}/{sid}")
            want = truth[(r["corpus"], sid)]
            assert {k: r[k] for k in want} == want

"""Attacks on any speaker attribute (issue 15 item 2): categorical and numeric targets end to
end on synthetic runs with a known answer, labels joined from the clients table and the
utterance tables, the missing-class error (exit 2), stored rows against sklearn / scipy."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, recall_score

from sergrad.attack.config import AttackConfig, AttackModelConfig, eval_id
from sergrad.attack.labels import client_values
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.attributes import MissingClassError, resolve_attribute
from sergrad.cli import main
from sergrad.corpora import write_utterances
from sergrad.corpora.speaker_meta import attach
from sergrad.fl.harvest_read import read_update_keys
from sergrad.fl.records import write_clients, write_run_row
from sergrad.schema import UTTERANCES
from sergrad.store import Store
from tests.attribute_store import AGES, SIGNAL  # one fixture of leaky speakers
from tests.attribute_store import speakers as _speakers

torch.set_num_threads(1)


def _store(root, *, target_ages=AGES) -> tuple[Store, tuple[str, ...]]:
    store = Store(root)
    for i in range(2):
        s, a, leak = _speakers("a", 16)
        write_synthetic_run(store, f"sh{i}", corpus="a", shapes=TINY_SHAPES, speakers=s,
                            rounds=12, clients_per_round=8, seed=i, signal=SIGNAL, attributes=a,
                            leak_by_speaker=leak)  # fmt: skip
    s, a, leak = _speakers("b", 12, ages=target_ages)
    write_synthetic_run(store, "tg", corpus="b", shapes=TINY_SHAPES, speakers=s, rounds=16,
                        clients_per_round=6, seed=9, signal=SIGNAL, attributes=a,
                        leak_by_speaker=leak, role="target")  # fmt: skip
    return store, ("sh0", "sh1")


def _config(attribute: str, shadows, **kw) -> AttackConfig:
    base = dict(target_run="tg", shadow_runs=shadows, layers=("fc1", "fc2"), n_avg=(1, 0),
                model=AttackModelConfig(name="logreg_stats", epochs=10), trials=2,
                bootstrap=200, attribute=attribute,
                calibrations=("shadow", "prior", "oracle"))  # fmt: skip
    return AttackConfig(**{**base, **kw})


def _row(rows, layer, protocol, n=1, cal="shadow"):
    return next(r for r in rows if (r["layer"], r["protocol"], r["n_avg"], r["calibration"]) ==
                (layer, protocol, n, cal))  # fmt: skip


def test_age_group_attack_beats_chance_and_stored_predictions_match_sklearn(tmp_path):
    store, shadows = _store(tmp_path)
    rows = run_attack(_config("age_group", shadows), store)
    fc1 = _row(rows, "fc1", "per_update")
    assert fc1["attribute"] == "age_group" and fc1["attribute_kind"] == "categorical"
    assert fc1["n_classes"] == 3 and fc1["chance"] == pytest.approx(1 / 3)
    assert json.loads(fc1["classes"]) == ["<30", "30-49", ">=50"]
    assert fc1["uar"] > 0.6 and fc1["uar_ci_low"] > 1 / 3 and fc1["auc"] > 0.8
    assert _row(rows, "fc2", "per_update")["uar"] < fc1["uar"]  # fc2 does not leak
    majority = _row(rows, "none", "baseline_majority")
    assert majority["uar"] == pytest.approx(1 / 3) and majority["degenerate"]
    # the stored predictions reproduce the row: argmax of the stored probabilities (sklearn)
    preds = [p for p in store.read("predictions").to_pylist()
             if p["layer"] == "fc1" and p["protocol"] == "per_update"]  # fmt: skip
    classes = json.loads(fc1["classes"])
    y = np.array([classes.index(p["label"]) for p in preds])
    pred = np.array([np.argmax(p["proba"]) for p in preds])
    assert fc1["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    recall = recall_score(y, pred, average=None, labels=range(3))
    assert list(json.loads(fc1["per_class_recall"]).values()) == pytest.approx(recall.tolist())
    assert json.loads(fc1["class_counts"]) == {
        c: int(np.sum(y == i)) for i, c in enumerate(classes)
    }
    # the labels are the clients table's ages, binned (a naive loop)
    truth = {r["speaker_id"]: r["age"] for r in store.read("clients").to_pylist()}
    assert all(p["label"] == _bin(truth[p["speaker_id"]]) for p in preds)
    # prior = Bayes decision with the shadow updates' class shares: argmax P(c|x) / pi_c
    shadow = [_bin(a) for a in _shadow_update_ages(store, shadows)]
    pi = np.array([shadow.count(c) for c in classes]) / len(shadow)
    proba = np.array([p["proba"] for p in preds])
    prior = _row(rows, "fc1", "per_update", cal="prior")
    assert prior["uar"] == pytest.approx(balanced_accuracy_score(y, (proba / pi).argmax(axis=1)))


def _bin(age: float) -> str:
    return "<30" if age < 30 else "30-49" if age < 50 else ">=50"


def _shadow_update_ages(store: Store, shadows) -> list[float]:
    """The age of every shadow update's client (naive join of update keys and clients)."""
    clients = store.read("clients").to_pylist()
    out = []
    for run in shadows:
        age = {c["client_id"]: c["age"] for c in clients if c["run_id"] == run}
        out += [age[k] for k in read_update_keys(store, run)["client_id"].to_pylist()]
    return out


def test_numeric_age_attack_beats_the_predict_the_shadow_mean_baseline(tmp_path):
    store, shadows = _store(tmp_path)
    rows = run_attack(_config("age", shadows), store)
    fc1 = _row(rows, "fc1", "per_update")
    assert fc1["attribute_kind"] == "numeric" and fc1["uar"] is None and fc1["n_classes"] == 0
    assert fc1["mae"] < 0.7 * fc1["baseline_mae"] and fc1["mae_gain_ci_low"] > 0
    assert fc1["spearman"] > 0.6
    # oracle values from the stored predictions: MAE, the baseline (shadow mean), scipy
    preds = [p for p in store.read("predictions").to_pylist()
             if p["layer"] == "fc1" and p["protocol"] == "per_update"]  # fmt: skip
    y = np.array([p["value"] for p in preds])
    yhat = np.array([p["prediction"] for p in preds])
    shadow_mean = np.mean(_shadow_update_ages(store, shadows))
    assert fc1["mae"] == pytest.approx(np.mean(np.abs(yhat - y)))
    assert fc1["baseline_mae"] == pytest.approx(np.mean(np.abs(shadow_mean - y)))
    assert fc1["spearman"] == pytest.approx(stats.spearmanr(y, yhat).statistic)
    base = _row(rows, "none", "baseline_majority")
    assert base["mae"] == pytest.approx(base["baseline_mae"])  # it IS the baseline
    # fc2 carries no age: no better than the baseline
    assert _row(rows, "fc2", "per_update")["mae"] > 0.8 * fc1["baseline_mae"]


def test_gender_evaluation_id_and_rows_name_the_attribute(tmp_path):
    store, shadows = _store(tmp_path)
    config = _config("gender", shadows, layers=("fc1",), calibrations=("shadow",))
    assert eval_id(config) == eval_id(AttackConfig(**{
        **{f: getattr(config, f) for f in config.__dataclass_fields__},
        "attribute": "gender"}))  # fmt: skip
    rows = run_attack(config, store)
    fc1 = _row(rows, "fc1", "per_update")
    assert fc1["attribute"] == "gender" and fc1["n_classes"] == 2 and fc1["chance"] == 0.5
    assert set(json.loads(fc1["class_counts"])) == {"F", "M"}
    # another attribute is another evaluation
    assert eval_id(_config("age_group", shadows)) != eval_id(_config("gender", shadows))


def test_missing_class_in_the_target_is_exit_2_naming_attribute_corpus_class(tmp_path, capsys):
    store, shadows = _store(tmp_path, target_ages=[22, 27, 35, 41])  # no target speaker >= 50
    with pytest.raises(MissingClassError, match="age_group.*target corpus 'b'.*'>=50'"):
        run_attack(_config("age_group", shadows), store)
    cfg = tmp_path / "attack.yaml"
    cfg.write_text(yaml.safe_dump({"target_run": "tg", "shadow_runs": list(shadows),
                                   "attribute": "age_group", "model": {"name": "logreg_stats"}}))  # fmt: skip
    assert main(["attack", "run", str(cfg), "--store", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "age_group" in err and "'b'" in err and ">=50" in err
    assert not list(store.files("attacks"))  # nothing written


def test_unknown_attribute_is_a_config_error(tmp_path):
    store, shadows = _store(tmp_path)
    with pytest.raises(Exception, match="unknown attribute 'shoe_size'"):
        run_attack(_config("shoe_size", shadows), store)


def test_labels_join_the_runs_utterance_tables_when_the_clients_table_lacks_them(tmp_path):
    """A real FL run's clients table holds gender only: age, language and a table corpus's
    extra speaker column come from the utterance table its config names (naive join)."""
    store = Store(tmp_path / "store")
    speakers = [(f"s{i}", "FM"[i % 2]) for i in range(6)]
    write_synthetic_run(store, "r", corpus="c", shapes=TINY_SHAPES, speakers=speakers, rounds=2,
                        seed=0, write_run=False)  # fmt: skip
    ages = {f"s{i}": 20.0 + 9 * i for i in range(6)}
    n = len(speakers)
    cols = {f.name: [None] * n for f in UTTERANCES}
    cols.update(utt_id=[f"u{i}" for i in range(n)], corpus=["c"] * n,
                speaker_id=[s for s, _ in speakers], gender=[g for _, g in speakers],
                emotion=["neutral"] * n, path=[f"/x/{i}.wav" for i in range(n)],
                raw_label=["neu"] * n, sample_rate=[16000] * n, duration_s=[1.0] * n,
                age=[ages[s] for s, _ in speakers],
                language=["L1" if i % 2 else "L2" for i in range(n)])  # fmt: skip
    table = attach(pa.table(cols, schema=UTTERANCES),
                   {s: {"dialect": "north" if i < 3 else "south"} for i, (s, _) in enumerate(speakers)})  # fmt: skip
    utt = write_utterances(table, tmp_path / "utts.parquet")
    config = json.dumps({"data": {"utterances": [str(utt)]}})
    write_run_row(store, {"run_id": "r", "status": "ok", "config": config}, "c")
    clients = {r["client_id"]: r["speaker_id"] for r in store.read("clients").to_pylist()}
    # a run on several corpora names its speakers "corpus/speaker" (fl.partition.speaker_keys)
    write_clients(store, "r", [{"client_id": c, "speaker_id": s if c % 2 else f"c/{s}",
                                "gender": "F", "corpus": "c"} for c, s in clients.items()])  # fmt: skip
    for name, want in (
        ("age_group", lambda s: "<30" if ages[s] < 30 else "30-49" if ages[s] < 50 else ">=50"),
        ("age", lambda s: ages[s]),
        ("language", lambda s: "L1" if int(s[1:]) % 2 else "L2"),
        ("dialect", lambda s: "north" if int(s[1:]) < 3 else "south"),
    ):
        attr = resolve_attribute(name, columns=["dialect"])
        values, _ = client_values(store, "r", attr)
        assert values == {c: want(s) for c, s in clients.items()}, name


def test_cli_prints_the_numeric_attack_beside_its_baseline(tmp_path, capsys):
    _, shadows = _store(tmp_path)
    cfg = tmp_path / "attack.yaml"
    cfg.write_text(yaml.safe_dump({"target_run": "tg", "shadow_runs": list(shadows),
                                   "attribute": "age", "layers": ["fc1"], "bootstrap": 20,
                                   "model": {"name": "logreg_stats", "epochs": 5}}))  # fmt: skip
    assert main(["attack", "run", str(cfg), "--store", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "numeric attribute 'age'" in out and " MAE " in out and "base" in out


def test_the_server_view_never_holds_an_attribute(tmp_path):
    """The clients side table carries age and language; the updates table (what the server
    sees) holds no speaker attribute at all, for shadow and target runs alike."""
    import pyarrow.parquet as pq

    from sergrad.fl.harvest_read import update_path
    from sergrad.schema import LEGACY_LABEL, SPEAKER_COLUMNS, UPDATE_KEYS

    store, shadows = _store(tmp_path)
    for run in (*shadows, "tg"):
        names = set(pq.read_schema(update_path(store, run)).names)
        assert not names & {LEGACY_LABEL, *SPEAKER_COLUMNS}, names
        assert names - set(TINY_SHAPES) == set(UPDATE_KEYS.names)
    clients = store.read("clients").to_pylist()
    assert all(c["age"] is not None and c["language"] in ("L1", "L2") for c in clients)


def test_speakers_without_a_value_are_neither_trained_on_nor_scored(tmp_path):
    """CREMA-D leaves some demographics blank: those speakers' updates are left out of
    training and scoring (never guessed), and the counts say so."""
    store = Store(tmp_path)
    for i in range(2):
        s, a, leak = _speakers("a", 16)
        a["a0"] = {"language": "L2"}  # no age
        write_synthetic_run(store, f"sh{i}", corpus="a", shapes=TINY_SHAPES, speakers=s,
                            rounds=12, clients_per_round=8, seed=i, signal=SIGNAL, attributes=a,
                            leak_by_speaker=leak)  # fmt: skip
    s, a, leak = _speakers("b", 12)
    a["b1"] = {"language": "L1"}
    write_synthetic_run(store, "tg", corpus="b", shapes=TINY_SHAPES, speakers=s, rounds=16,
                        clients_per_round=6, seed=9, signal=SIGNAL, attributes=a,
                        leak_by_speaker=leak, role="target")  # fmt: skip
    rows = run_attack(_config("age_group", ("sh0", "sh1"), layers=("fc1",)), store)
    keys = read_update_keys(store, "tg").to_pylist()
    known = sum(k["speaker_id"] != "b1" for k in keys)
    fc1 = _row(rows, "fc1", "per_update")
    assert fc1["n_scored"] == known < len(keys)
    assert sum(json.loads(fc1["class_counts"]).values()) == known
    assert fc1["uar"] > 0.5


def test_labels_from_cremad_demographics_through_the_run_config(tmp_path):
    """CREMA-D: age, race and ethnicity come from VideoDemographics.csv via the utterance
    table the run trained on (naive oracle: the demographics rows themselves)."""
    from corpus_fixtures import CREMAD_DEMOGRAPHICS, make_cremad

    from sergrad.corpora import index_corpus

    table, _ = index_corpus("crema-d", make_cremad(tmp_path / "crema"), options={"labels": "acted"})
    utt = write_utterances(table, tmp_path / "utts.parquet")
    store = Store(tmp_path / "store")
    speakers = sorted(set(table["speaker_id"].to_pylist()))
    corpus = table["corpus"][0].as_py()
    write_clients(store, "r", [{"client_id": i, "speaker_id": s, "gender": "F", "corpus": corpus}
                               for i, s in enumerate(speakers)])  # fmt: skip
    write_run_row(store, {"run_id": "r", "status": "ok",
                          "config": json.dumps({"data": {"utterances": [str(utt)]}})}, corpus)  # fmt: skip
    demo = {a: (float(age), race, eth) for a, age, _, race, eth in CREMAD_DEMOGRAPHICS}
    for name, want in (
        ("age", lambda s: demo[s][0]),
        ("age_group", lambda s: _bin(demo[s][0])),
        ("race", lambda s: demo[s][1]),
        ("ethnicity", lambda s: demo[s][2]),
    ):
        values, _ = client_values(store, "r", resolve_attribute(name))
        assert values == {i: want(s) for i, s in enumerate(speakers)}, name
    # CREMA-D records no language background: every value unknown, never invented
    values, _ = client_values(store, "r", resolve_attribute("language"))
    assert set(values.values()) == {None}

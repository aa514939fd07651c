"""End-to-end attack evaluations on synthetic harvested runs, bad input, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sergrad import schema
from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig, eval_id
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.errors import ConfigError, DataError
from sergrad.store import Store

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}


def _speakers(prefix: str, n: int, genders: str = "FM") -> list[tuple[str, str]]:
    return [(f"{prefix}{i}", genders[i % len(genders)]) for i in range(n)]


def _shadows(store, *, shuffle=False, genders="FM", offset=0.0, scale=1.0, signal=LEAK):
    ids = []
    for i in range(2):  # two "folds" of the same shadow speakers
        rid = f"shadow{i}{'x' if shuffle else ''}{genders}"
        write_synthetic_run(store, rid, corpus="a", shapes=TINY_SHAPES,
                            speakers=_speakers("a", 12, genders), rounds=12, clients_per_round=6,
                            seed=i, signal=signal, offset=offset, scale=scale,
                            shuffle_labels=shuffle)  # fmt: skip
        ids.append(rid)
    return tuple(ids)


def _target(store, *, rid="target", offset=0.0, scale=1.0, signal=LEAK, shapes=TINY_SHAPES):
    write_synthetic_run(store, rid, corpus="b", shapes=shapes, speakers=_speakers("b", 10),
                        rounds=16, clients_per_round=5, seed=99, signal=signal, offset=offset,
                        scale=scale, role="target")  # fmt: skip
    return rid


def _config(target, shadows, **kw):
    model = AttackModelConfig(name=kw.pop("name", "logreg_stats"), epochs=kw.pop("epochs", 8))
    base = dict(target_run=target, shadow_runs=shadows, model=model, n_avg=(1, 4, 0), trials=3,
                bootstrap=100)  # fmt: skip
    return AttackConfig(**{**base, **kw})


def _row(rows, layer, protocol, n=1):
    return next(
        r for r in rows if r["layer"] == layer and r["protocol"] == protocol and r["n_avg"] == n
    )


@pytest.mark.parametrize("name", ["logreg_stats", "cnn"])
def test_leaky_first_layer_far_above_chance(tmp_path, name):
    store = Store(tmp_path)
    # large offset, tiny spread: float32 moments would cancel; float64 streaming must not
    kw = {"offset": 100.0, "scale": 0.01, "signal": {k: v * 0.01 for k, v in LEAK.items()}}
    shadows, target = _shadows(store, **kw), _target(store, **kw)
    rows = run_attack(_config(target, shadows, name=name, layers=("fc1", "fc3")), store)
    fc1 = _row(rows, "fc1", "per_update")
    assert fc1["uar"] > 0.8 and fc1["uar_ci_low"] > 0.6 and fc1["auc"] > 0.85
    assert _row(rows, "fc1", "per_client", 0)["uar"] >= 0.8
    assert _row(rows, "fc3", "per_update")["uar"] < fc1["uar"]  # no leak in fc3
    assert {r["layer"] for r in rows} == {"fc1", "fc3", "fusion", "none"}
    assert _row(rows, "none", "baseline_majority")["uar"] == 0.5
    assert abs(_row(rows, "none", "baseline_no_updates")["uar"] - 0.5) < 0.2
    assert all(r["target_corpus"] == "b" for r in rows)
    # stored rows: attacks under the target corpus, predictions under the eval id
    eid = eval_id(_config(target, shadows, name=name, layers=("fc1", "fc3")))
    stored = store.read("attacks").to_pylist()
    assert len(stored) == len(rows) and {r["eval_id"] for r in stored} == {eid}
    assert json.loads(stored[0]["shadow_runs"]) == list(shadows)
    preds = store.read("predictions").to_pylist()
    per_update = [p for p in preds if p["layer"] == "fc1" and p["protocol"] == "per_update"]
    assert len(per_update) == 16 * 5 and {p["eval_id"] for p in preds} == {eid}
    # the stored predictions reproduce the reported UAR
    y = np.array([p["gender"] == "M" for p in per_update])
    pm = np.array([p["p_male"] >= 0.5 for p in per_update])
    assert np.mean([np.mean(pm[y] == 1), np.mean(pm[~y] == 0)]) == pytest.approx(fc1["uar"])


def test_per_client_vote_is_the_mean_of_the_clients_update_predictions(tmp_path):
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store)
    cfg = _config(target, shadows, layers=("fc1", "fc2"), n_avg=(1, 3, 0),
                  protocols=("per_update", "per_client", "per_client_vote"))  # fmt: skip
    rows = run_attack(cfg, store)
    preds = store.read("predictions").to_pylist()
    for layer in ("fc1", "fc2", "fusion"):
        per_update = [p for p in preds if p["layer"] == layer and p["protocol"] == "per_update"]
        by_client: dict[int, list[float]] = {}
        for p in per_update:
            by_client.setdefault(p["client_id"], []).append(p["p_male"])
        votes = {p["client_id"]: p["p_male"] for p in preds if p["layer"] == layer
                 and p["protocol"] == "per_client_vote" and p["n_avg"] == 0}  # fmt: skip
        assert votes.keys() == by_client.keys()
        for c, ps in by_client.items():
            assert votes[c] == pytest.approx(np.mean(ps), abs=1e-6)
        # one update: voting and averaging the update give the same prediction
        one = {(p["protocol"], p["client_id"], p["trial"]): p["p_male"] for p in preds
               if p["layer"] == layer and p["n_avg"] == 1 and p["protocol"] != "per_update"}  # fmt: skip
        for (proto, c, t), pm in one.items():
            if proto == "per_client_vote":
                assert pm == pytest.approx(one[("per_client", c, t)], abs=1e-5)
    vote_rows = [r for r in rows if r["protocol"] == "per_client_vote"]
    assert {(r["layer"], r["n_avg"]) for r in vote_rows} == {
        (layer, n) for layer in ("fc1", "fc2", "fusion") for n in (1, 3, 0)
    }
    assert _row(rows, "fc1", "per_client_vote", 0)["uar"] >= 0.8
    assert _row(rows, "none", "baseline_majority_per_client_vote", 0)["uar"] == 0.5


def test_shuffled_shadow_labels_give_chance(tmp_path):
    store = Store(tmp_path)
    shadows, target = _shadows(store, shuffle=True), _target(store)
    rows = run_attack(_config(target, shadows, layers=("fc1",)), store)
    assert abs(_row(rows, "fc1", "per_update")["uar"] - 0.5) < 0.12


def test_rerun_is_skipped_and_returns_stored_rows(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store)
    cfg = _config(target, shadows, layers=("fc1",), protocols=("per_update",), bootstrap=0)
    first = run_attack(cfg, store)
    from sergrad.attack import pipeline

    monkeypatch.setattr(pipeline, "load_shadow", lambda *a, **k: pytest.fail("recomputed"))
    again = run_attack(cfg, store)
    assert [r["uar"] for r in again] == [r["uar"] for r in first]


def test_posthoc_noise_hook_and_adaptive_attacker(tmp_path):
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store)
    noise = (PostHocConfig("layer_perturbation", {"std": 50.0}),)
    base = run_attack(_config(target, shadows, layers=("fc1",), protocols=("per_update",)), store)
    noisy = run_attack(_config(target, shadows, layers=("fc1",), protocols=("per_update",),
                               posthoc=noise), store)  # fmt: skip
    assert _row(noisy, "fc1", "per_update")["posthoc"] == "layer_perturbation"
    assert _row(noisy, "fc1", "per_update")["uar"] < _row(base, "fc1", "per_update")["uar"] - 0.2
    adaptive = run_attack(_config(target, shadows, layers=("fc1",), protocols=("per_update",),
                                  posthoc=noise, adaptive=True), store)  # fmt: skip
    assert _row(adaptive, "fc1", "per_update")["adaptive"] is True


def test_bad_inputs_name_the_runs(tmp_path):
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store)
    with pytest.raises(DataError, match="shadow run 'nope'"):
        run_attack(_config(target, (*shadows, "nope")), store)
    with pytest.raises(DataError, match="target run 'ghost'"):
        run_attack(_config("ghost", shadows), store)
    with pytest.raises(DataError, match="layer 'fc9' not harvested"):
        run_attack(_config(target, shadows, layers=("fc9",)), store)
    one = _shadows(store, genders="F")
    with pytest.raises(DataError, match="gender 'F'.*both F and M"):
        run_attack(_config(target, one), store)
    wide = dict(TINY_SHAPES, **{"fc1.weight": (8, 21)})
    other = _target(store, rid="other", shapes=wide)
    with pytest.raises(
        DataError, match=r"'other' and 'shadow0FM'.*fc1.weight.*\(8, 21\) vs \(8, 20\)"
    ):
        run_attack(_config(other, shadows), store)
    with pytest.raises(ConfigError, match="protocols"):
        run_attack(dataclasses.replace(_config(target, shadows), protocols=("bogus",)), store)
    with pytest.raises(ConfigError, match="contains the target"):
        run_attack(_config(target, (target,)), store)


def test_cli_runs_and_prints_a_table(tmp_path, capsys):
    from sergrad.cli import main

    store = Store(tmp_path / "store")
    shadows, target = _shadows(store), _target(store)
    cfg = tmp_path / "attack.yaml"
    cfg.write_text(f"target_run: {target}\nshadow_runs: {list(shadows)}\nlayers: [fc1]\n"
                   "model: {name: logreg_stats, epochs: 3}\nbootstrap: 20\ntrials: 2\n")  # fmt: skip
    code = main(["attack", "run", str(cfg), "--store", str(tmp_path / "store"),
                 "--set", "n_avg=[1, 0]", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "per_client" in out and "baseline_majority" in out and "fc1" in out
    assert store.read("attacks").num_rows > 0
    assert main(["attack", "run", str(cfg), "--store", str(tmp_path / "store"),
                 "--set", "modle.name=x"]) == 2  # fmt: skip
    assert "unknown key 'modle'" in capsys.readouterr().err


def test_schema_columns_are_filled(tmp_path):
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store)
    rows = run_attack(_config(target, shadows, layers=("fc1",)), store)
    for col in ("eval_id", "attack", "layer", "protocol", "uar", "wall_s", "config", "created_at"):
        assert all(r[col] is not None for r in rows), col
    assert set(schema.ATTACKS.names) <= set(rows[0]) | {"target_corpus"}


def test_calibrations_and_empirical_epsilon_columns(tmp_path):
    """Same scores, two thresholds: shadow and prior rows side by side; eps_lb only on
    shadow-calibrated per-client rows; an oracle row when asked, never without."""
    store = Store(tmp_path)
    shadows, target = _shadows(store), _target(store, offset=0.05)
    cfg = _config(target, shadows, layers=("fc1",), calibrations=("shadow", "prior", "oracle"))
    rows = [r for r in run_attack(cfg, store) if r["layer"] == "fc1"]
    by = {(r["protocol"], r["n_avg"], r["calibration"]): r for r in rows}
    for key in [("per_update", 1), ("per_client", 1), ("per_client", 0)]:
        shadow, prior, oracle = (by[(*key, c)] for c in ("shadow", "prior", "oracle"))
        assert shadow["auc"] == prior["auc"] == oracle["auc"]  # same scores
        assert shadow["threshold"] == 0.5
        assert oracle["uar"] >= max(shadow["uar"], prior["uar"]) - 1e-12
        assert prior["eps_lb"] is None and oracle["eps_lb"] is None
    pc = by[("per_client", 1, "shadow")]
    assert pc["eps_lb"] is not None and pc["eps_lb"] >= 0 and pc["eps_lb_delta"] == 0.0
    assert pc["n_clients"] == 10 and pc["degenerate"] in (True, False)
    assert by[("per_update", 1, "shadow")]["eps_lb"] is None
    with pytest.raises(ConfigError, match="calibrations"):
        run_attack(_config(target, shadows, calibrations=("bayes",)), store)


def _claimed_user_dp_target(store, rid, *, signal, z=20.0):
    """A target whose runs row claims user_dp local (noise z, delta 1e-5) while its updates
    carry `signal` un-noised: a broken defense when signal > 0."""
    from sergrad.fl.records import write_run_row

    write_synthetic_run(store, rid, corpus="b", shapes=TINY_SHAPES, speakers=_speakers("b", 40),
                        rounds=6, clients_per_round=20, seed=7, signal=signal, role="target",
                        write_run=False)  # fmt: skip
    config = {"defenses": [{"name": "user_dp", "params": {"mode": "local", "clip_norm": 1.0,
                                                         "noise_multiplier": z}}]}  # fmt: skip
    write_run_row(store, {"run_id": rid, "status": "ok", "role": "target", "feature_set": "synthetic",
                          "algorithm": "fedsgd", "defense": "user_dp", "defense_level": z,
                          "delta": 1e-5, "rounds": 6, "config": json.dumps(config)}, "b")  # fmt: skip
    return rid


def test_eps_lb_above_the_local_mechanism_is_reported_as_a_violation(tmp_path, capsys):
    from sergrad.privacy_bound import local_gaussian_epsilon

    store = Store(tmp_path)
    shadows = _shadows(store)
    mech = local_gaussian_epsilon(noise_multiplier=20.0, n_updates=1, delta=1e-5)
    broken = _claimed_user_dp_target(store, "broken", signal=LEAK)
    rows = run_attack(_config(broken, shadows, layers=("fc1",), n_avg=(1,)), store)
    pc = _row(rows, "fc1", "per_client", 1)
    assert pc["mechanism_epsilon"] == pytest.approx(mech) and pc["eps_lb_delta"] == 1e-5
    assert pc["eps_lb"] > mech and pc["eps_violation"] and "DP VIOLATION" in pc["note"]
    assert "DP VIOLATION" in capsys.readouterr().err
    honest = _claimed_user_dp_target(store, "honest", signal={"fc1": 0.0, "fc2": 0.0, "fc3": 0.0})
    rows = run_attack(_config(honest, shadows, layers=("fc1",), n_avg=(1,)), store)
    pc = _row(rows, "fc1", "per_client", 1)
    assert pc["eps_lb"] <= mech and pc["eps_violation"] is False


def test_real_user_dp_local_runs_never_exceed_the_mechanism_epsilon(tmp_path):
    """A small grid of real FL runs with local user-level DP (this project's defense and
    harvest): every shadow-calibrated per-client row reports the mechanism's epsilon from the
    run's own config, and eps_lb never exceeds it."""
    from sergrad.fl.config import AlgoConfig, DefenseConfig, HarvestConfig, ModelConfig, RunConfig
    from sergrad.fl.config import run_id as fl_run_id
    from sergrad.fl.run import run_fl
    from sergrad.fl.synthetic import random_dataset
    from sergrad.privacy_bound import local_gaussian_epsilon

    store = Store(tmp_path)
    ds = random_dataset(n_speakers=12, utts_per_speaker=30, dim=16, seed=0, separation=0.5)
    for z in (0.5, 2.0):
        defense = DefenseConfig(name="user_dp", params={"mode": "local", "clip_norm": 1.0,
                                                        "noise_multiplier": z})  # fmt: skip
        ids = []
        for seed in range(3):
            cfg = RunConfig(model=ModelConfig(hidden=(16, 8)),
                            algo=AlgoConfig(name="fedsgd", rounds=8, client_fraction=0.5),
                            harvest=HarvestConfig(params=("fc1.*",)), defenses=(defense,),
                            seed=seed)  # fmt: skip
            run_fl(cfg, store, dataset=ds)
            ids.append(fl_run_id(cfg))
        cfg = _config(ids[0], tuple(ids[1:]), layers=("fc1",), n_avg=(1, 0), trials=2)
        rows = [r for r in run_attack(cfg, store) if r["eps_lb"] is not None]
        assert rows and all("per_client" in r["protocol"] for r in rows)
        one = [r for r in rows if r["n_avg"] == 1 and r["layer"] == "fc1"]
        assert one[0]["mechanism_epsilon"] == pytest.approx(
            local_gaussian_epsilon(noise_multiplier=z, n_updates=1, delta=1e-5)
        )
        for r in rows:
            assert r["eps_lb"] <= r["mechanism_epsilon"] and r["eps_violation"] is False

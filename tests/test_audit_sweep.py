"""Canary audits inside a sweep: planned only for dp_sgd / central user_dp target runs, with
the run's own mechanism (checked against what the FL run actually did: the harvest's
participations and sample counts, the rounds table, Opacus called directly), and an
end-to-end tiny sweep whose audits stay below the accountant's epsilon."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import yaml
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from sergrad.audit.mechanism import mechanism_of
from sergrad.fl.config import (
    AlgoConfig,
    DataConfig,
    DefenseConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
)
from sergrad.fl.harvest_read import read_update_keys
from sergrad.fl.partition import partition
from sergrad.fl.records import read_rounds
from sergrad.fl.run import run_fl
from sergrad.fl.synthetic import random_dataset
from sergrad.store import Store
from sergrad.sweep.expand import expand
from sergrad.sweep.schema import load_sweep, parse_sweep

SMALL = Path(__file__).resolve().parents[1] / "sweeps" / "small.yaml"
DEFENSES = [
    {"name": "none"},
    {"name": "dp_sgd", "params": {"noise_multiplier": 2.0}},
    {"name": "user_dp", "params": {"noise_multiplier": 4.0, "mode": "central", "delta": 1e-3}},
    {"name": "user_dp", "params": {"noise_multiplier": 1.0, "delta": 1e-3}},  # local
    {"name": "layer_perturbation", "params": {"std": 0.01, "layers": ["fc1.*"]}},
]


def _sweep(**extra):
    data = yaml.safe_load(SMALL.read_text())
    data.update(defenses=DEFENSES, **extra)
    return parse_sweep(data)


def test_audits_are_planned_only_for_dp_sgd_and_central_user_dp():
    plan = expand(_sweep(), "/tmp/nowhere")
    targets = {r.id: r for r in plan.runs if r.role == "target"}
    audited = {a.target_run for a in plan.audits}
    want = {
        rid
        for rid, r in targets.items()
        if r.config.defenses
        and (r.config.defenses[0].name == "dp_sgd"
             or r.config.defenses[0].params.get("mode") == "central")
    }  # fmt: skip
    assert audited == want and len(want) == 4  # 2 target corpora x 2 mechanisms
    for a in plan.audits:
        assert a.run_config == targets[a.target_run].config
        assert a.partition == ("target_corpus", targets[a.target_run].corpus)
        assert a.needs == (a.target_run,)
    # content-addressed: the same plan elsewhere has the same ids; other settings, other ids
    assert [a.id for a in expand(_sweep(), "/elsewhere").audits] == [a.id for a in plan.audits]
    more = expand(_sweep(audit={"canary": {"n_canaries": 100}}), "/tmp/nowhere")
    assert not {a.id for a in more.audits} & {a.id for a in plan.audits}
    off = expand(_sweep(audit={"canary": {"enabled": False}}), "/tmp/nowhere")
    assert off.audits == () and len(off.evals) == len(plan.evals)
    assert expand(load_sweep(SMALL), "/tmp/nowhere").audits == ()  # undefended sweep


def test_bad_audit_key_is_an_error_naming_it():
    from sergrad.errors import ConfigError

    with pytest.raises(ConfigError, match="audit.canary.n_canary"):
        _sweep(audit={"canary": {"n_canary": 5}})
    with pytest.raises(ConfigError, match="n_canaries"):
        _sweep(audit={"canary": {"n_canaries": 3}})


# --- the mechanism is the run's: compared with what the FL run actually did ---------------
DS = random_dataset(n_speakers=10, utts_per_speaker=[13, 30, 7, 22, 41, 9, 18, 25, 3, 33],
                    dim=12, seed=0)  # fmt: skip


def _config(algo: AlgoConfig, defense: DefenseConfig, seed: int = 3) -> RunConfig:
    return RunConfig(model=ModelConfig(hidden=(16, 8), dropout1=0.0, dropout2=0.0), algo=algo,
                     eval=EvalConfig(select_after=1), defenses=(defense,), seed=seed)  # fmt: skip


def _rdp(sigma, q, steps, delta):
    acc = RDPAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=delta)


@pytest.mark.parametrize("name", ["fedavg", "fedsgd"])
def test_dp_sgd_mechanism_is_the_worst_client_of_the_actual_run(tmp_path, name):
    algo = AlgoConfig(name=name, rounds=4, batch_size=5, client_fraction=0.3, server_lr=0.1)
    cfg = _config(algo, DefenseConfig("dp_sgd", {"noise_multiplier": 1.1, "max_grad_norm": 0.5}))
    store = Store(tmp_path)
    row = run_fl(cfg, store, dataset=DS)
    keys = read_update_keys(store, row["run_id"])  # what the server saw: who, how many samples
    clients = keys.column("client_id").to_pylist()
    n_train = dict(zip(clients, keys.column("n_samples").to_pylist()))
    best = None
    for c, times in Counter(clients).items():  # by hand: Opacus stepped per local step
        n = n_train[c]
        steps = times * (1 if name == "fedsgd" else math.ceil(n / 5))
        eps = _rdp(1.1, min(1.0, 5 / n), steps, 1e-5)
        if best is None or eps > best[0]:
            best = (eps, c, min(1.0, 5 / n), steps, n)
    mech = mechanism_of(cfg, partition(DS, cfg.data, seed=cfg.seed))
    assert mech.kind == "dp_sgd" and (mech.noise_multiplier, mech.clip) == (1.1, 0.5)
    assert (mech.client_id, mech.steps, mech.n_train) == best[1:2] + best[3:]
    assert mech.sample_rate == pytest.approx(best[2])
    assert best[0] == pytest.approx(row["epsilon"], rel=1e-6)  # the run's own accountant


def test_central_user_dp_mechanism_with_target_epsilon_matches_the_run(tmp_path):
    algo = AlgoConfig(name="fedavg", rounds=5, batch_size=5, client_fraction=0.3)
    params = {"target_epsilon": 3.0, "clip_norm": 0.2, "mode": "central", "delta": 1e-3}
    cfg = _config(algo, DefenseConfig("user_dp", params))
    store = Store(tmp_path)
    row = run_fl(cfg, store, dataset=DS)
    n = len(partition(DS, DataConfig(), seed=cfg.seed).clients)
    per_round = {r["n_clients"] for r in read_rounds(store, row["run_id"])}
    k = max(1, round(0.3 * n))  # clients per round, by hand
    assert per_round == {k}
    z = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-3, sample_rate=k / n, steps=5,
                             accountant="rdp")  # fmt: skip
    mech = mechanism_of(cfg, partition(DS, cfg.data, seed=cfg.seed))
    assert mech.kind == "user_dp_central"
    assert (mech.n_clients, mech.clients_per_round, mech.steps, mech.clip) == (n, k, 5, 0.2)
    assert mech.sample_rate == pytest.approx(k / n)
    assert mech.noise_multiplier == pytest.approx(z, rel=1e-9)
    assert _rdp(z, k / n, 5, 1e-3) == pytest.approx(row["epsilon"], rel=1e-6)


def test_local_user_dp_and_perturbation_have_no_canary_mechanism():
    algo = AlgoConfig(name="fedavg", rounds=2, batch_size=5, client_fraction=0.3)
    for d in (DefenseConfig("user_dp", {"noise_multiplier": 1.0, "delta": 1e-3}),
              DefenseConfig("layer_perturbation", {"std": 0.01, "layers": ["fc1.*"]})):  # fmt: skip
        cfg = _config(algo, d)
        assert mechanism_of(cfg, partition(DS, cfg.data, seed=cfg.seed)) is None


# --- end to end: a tiny sweep writes audits rows below the accountant -----------------------
@pytest.mark.slow
def test_tiny_sweep_writes_audits_below_the_accountant(tmp_path, monkeypatch, capsys):
    from sergrad.analysis.audits import canary_table
    from sergrad.cli import main

    monkeypatch.setenv("SERGRAD_CACHE", str(tmp_path / "cache"))
    data = yaml.safe_load(SMALL.read_text())
    data.update(defenses=DEFENSES[:3], audit={"canary": {"n_canaries": 100}})
    data["attack"]["defenses"] = ["none"]  # keep it small: the audits are what is tested
    sweep_file = tmp_path / "canary.yaml"
    sweep_file.write_text(yaml.safe_dump(data))
    uri = str(tmp_path / "store")
    assert main(["sweep", "run", str(sweep_file), "--store", uri]) == 0
    out = capsys.readouterr().out
    plan = expand(load_sweep(sweep_file), uri)
    assert f"audits {len(plan.audits)}/{len(plan.audits)} ok" in out and len(plan.audits) == 4
    store = Store(uri)
    rows = store.read("audits").to_pylist()
    assert sorted(r["audit_id"] for r in rows) == sorted(a.id for a in plan.audits)
    runs = {r["run_id"]: r for r in store.read("runs").to_pylist()}
    for r in rows:
        assert r["status"] == "ok" and r["n_canaries"] == 100 and r["n_guesses"] == 20
        assert r["eps_lb"] <= r["accountant_epsilon"] and not r["eps_violation"]
        assert r["accountant_epsilon"] == pytest.approx(runs[r["target_run"]]["epsilon"])
        assert r["run_epsilon"] == runs[r["target_run"]]["epsilon"]
    assert {r["mechanism"] for r in rows} == {"dp_sgd", "user_dp_central"}
    assert main(["sweep", "status", uri]) == 0
    assert "audits" in capsys.readouterr().out
    from sergrad.sweep.driver import plan_summary

    summary = plan_summary(load_sweep(sweep_file), uri, cpus=1)
    assert summary["audits"] == 4
    rate = summary["time"]["kinds"]["canary audit"]
    assert rate["jobs"] == 4 and rate["source"] == "measured (4 in store)"
    assert rate["seconds_each"] == pytest.approx(sum(r["wall_s"] for r in rows) / 4)
    table = canary_table(uri)
    assert table.height == 4 and set(table["n_audits"]) == {1}
    assert (table["canary_eps_lb"] <= table["accountant_epsilon"]).all()

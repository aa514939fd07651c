"""Each defense through a tiny FL run on BOTH engines: harvest names unchanged, epsilon in the
runs/rounds rows equal to Opacus's accountant driven independently from the harvest keys, and
the central-mode caveat (the harvest holds clipped, un-noised updates) checked end to end."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from sergrad.fl.config import (
    AlgoConfig,
    DataConfig,
    DefenseConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
)
from sergrad.fl.harvest_read import iter_update_batches, read_update_keys, read_update_meta
from sergrad.fl.partition import partition
from sergrad.fl.records import read_rounds
from sergrad.fl.run import run_fl
from sergrad.fl.synthetic import random_dataset
from sergrad.store import Store

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook")
DS = random_dataset(
    n_speakers=10, utts_per_speaker=[13, 30, 7, 22, 41, 9, 18, 25, 3, 33], dim=12, seed=0
)
N_CLIENTS = len(partition(DS, DataConfig(), seed=0).clients)
ALGOS = {
    "fedavg": AlgoConfig(name="fedavg", rounds=3, batch_size=5, client_fraction=0.3),
    "fedsgd": AlgoConfig(name="fedsgd", rounds=3, batch_size=5, client_fraction=0.3, server_lr=0.1),
}
CENTRAL = {"noise_multiplier": 1.5, "clip_norm": 0.2, "mode": "central", "delta": 1e-3}
CASES = {  # test case -> (registry name, params)
    "dp_sgd": ("dp_sgd", {"noise_multiplier": 1.1, "max_grad_norm": 0.5, "poisson": False}),
    "dp_sgd_poisson": ("dp_sgd", {"noise_multiplier": 1.1, "max_grad_norm": 0.5}),
    "user_dp_local": ("user_dp", {**CENTRAL, "mode": "local"}),
    "user_dp_central": ("user_dp", CENTRAL),
    "udp_paper": ("udp_paper", {"epsilon": 10.0}),
    "layer_perturbation": ("layer_perturbation", {"std": 0.01, "layers": ["fc1.*"]}),
}


def config(engine, algo, defense=None):
    defenses = () if defense is None else (DefenseConfig(*CASES[defense]),)
    return RunConfig(
        model=ModelConfig(hidden=(16, 8), dropout1=0.0, dropout2=0.0),
        algo=ALGOS[algo],
        eval=EvalConfig(select_after=1),
        engine=engine,
        defenses=defenses,
    )


def rdp(history, delta):
    acc = RDPAccountant()
    for sigma, q, steps in history:
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=delta)


def expected_epsilon(defense, algo, keys):
    """Opacus's accountant driven from the harvest: who took part, with how many samples."""
    p = CASES[defense][1]
    rounds = keys.column("round").to_pylist()
    clients = keys.column("client_id").to_pylist()
    n_train = dict(zip(clients, keys.column("n_samples").to_pylist()))
    if defense.startswith("dp_sgd"):
        a = ALGOS[algo]
        per_client = []
        for c, times in Counter(clients).items():
            n = n_train[c]
            steps = 1 if a.name == "fedsgd" else a.local_epochs * math.ceil(n / a.batch_size)
            per_client.append(rdp([(1.1, min(1.0, a.batch_size / n), steps * times)], 1e-5))
        return max(per_client)
    if p["mode"] == "central":
        per_round = Counter(rounds)
        return rdp([(1.5, per_round[r] / N_CLIENTS, 1) for r in sorted(per_round)], 1e-3)
    return rdp([(1.5, 1.0, max(Counter(clients).values()))], 1e-3)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("none"))
    out = {}
    for algo in ALGOS:
        row = run_fl(config("fast", algo), store, dataset=DS)
        out[algo] = read_update_meta(store, row["run_id"]).param_names
    return out


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("defense", list(CASES))
def test_defense_through_both_engines(tmp_path, baseline, algo, defense):
    rows, updates = {}, {}
    for engine in ("reference", "fast"):
        store = Store(tmp_path / engine)
        row = run_fl(config(engine, algo, defense), store, dataset=DS)
        rid = row["run_id"]
        assert row["status"] == "ok" and np.isfinite(row["test_uar"])
        assert read_update_meta(store, rid).param_names == baseline[algo]  # names unchanged
        keys = read_update_keys(store, rid)
        eps_rounds = [r["epsilon"] for r in read_rounds(store, rid)]
        if defense.startswith(("dp_sgd", "user_dp")):
            assert row["epsilon"] > 0 and row["accountant"] == "rdp"
            assert row["epsilon"] == pytest.approx(expected_epsilon(defense, algo, keys), rel=1e-9)
            assert all(a <= b for a, b in zip(eps_rounds, eps_rounds[1:]))
            assert eps_rounds[-1] == pytest.approx(row["epsilon"], rel=1e-12)
            want = "utterances" if defense.startswith("dp_sgd") else "speakers"
            assert row["dp_protects"] == want and row["delta"] == CASES[defense][1].get(
                "delta", 1e-5
            )
        else:  # no guarantee claimed
            assert row["epsilon"] is None and row["dp_protects"] == "none"
            assert all(e is None for e in eps_rounds)
        batch = next(iter_update_batches(store, rid, params=["*"], batch_rows=10_000))
        updates[engine] = batch.arrays
        rows[engine] = row
        if defense.startswith("user_dp"):
            norms = np.sqrt(sum((a.astype(np.float64) ** 2).sum(1) for a in batch.arrays.values()))
            if defense.endswith("central"):  # what the harvest sees: clipped, NOT noised
                assert (norms <= 0.2 * (1 + 1e-5)).all()
            else:  # local: noised, norm ~ 1.5 * 0.2 * sqrt(#params) >> 0.2
                assert (norms > 1.0).all()
    assert rows["fast"]["epsilon"] == rows["reference"]["epsilon"]
    if not defense.startswith("dp_sgd"):  # same defense noise on the same local results
        for name in updates["fast"]:
            np.testing.assert_allclose(
                updates["fast"][name], updates["reference"][name], rtol=1e-3, atol=1e-4
            )

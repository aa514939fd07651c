"""Secure aggregation: the server's view, cohorts, min_cohort refusal, differencing exactness.

Oracles: the same seed run without secure aggregation (its stored individual updates,
converted to server space and sample-weighted by hand); a fixed-model run where the
difference of two aggregates must equal one client's update exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sergrad import schema
from sergrad.errors import ConfigError
from sergrad.fl.config import AlgoConfig, DefenseConfig, EvalConfig, ModelConfig, RunConfig
from sergrad.fl.config import run_id as rid_of
from sergrad.fl.harvest_read import iter_update_batches, read_update_keys
from sergrad.fl.records import read_clients, read_cohorts
from sergrad.fl.run import run_fl
from sergrad.fl.schedule import local_steps
from sergrad.fl.secagg import AGGREGATE_CLIENT, differencing_pairs
from sergrad.fl.synthetic import random_dataset
from sergrad.store import Store

torch.set_num_threads(1)
DS = random_dataset(n_speakers=8, utts_per_speaker=30, dim=12, seed=3, separation=0.5)
MODEL = ModelConfig(hidden=(16, 8))
PARAMS = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]


def secagg(**params) -> tuple[DefenseConfig, ...]:
    return (DefenseConfig("secure_aggregation", params),)


def rows_of(store: Store, rid: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    keys, arrays = [], {p: [] for p in PARAMS}
    for b in iter_update_batches(store, rid, params=PARAMS):
        keys += b.keys.to_pylist()
        for p in PARAMS:
            arrays[p].append(b.arrays[p])
    return keys, {p: np.concatenate(v) for p, v in arrays.items()}


@pytest.mark.parametrize(
    "algo, cohort",
    [
        (AlgoConfig(name="fedsgd", rounds=3, client_fraction=0.5, server_lr=0.5), 0),
        (AlgoConfig(name="fedavg", rounds=3, client_fraction=0.5, lr=5e-3), 0),
        # one client per round: the aggregate is that client's own update (in server space)
        (AlgoConfig(name="fedavg", rounds=3, client_fraction=0.1, lr=5e-3), 1),
    ],
)
def test_aggregate_harvest_is_the_weighted_mean_of_the_individual_updates(tmp_path, algo, cohort):
    """The same seed without secure aggregation samples the same cohorts (cohort 0: from
    client_fraction; 1 = round(0.1 x clients)) and stores every individual update."""
    base = RunConfig(model=MODEL, algo=algo, eval=EvalConfig(select_after=0))
    store = Store(tmp_path)
    run_fl(base, store, dataset=DS)
    sa = RunConfig(model=MODEL, algo=algo, eval=EvalConfig(select_after=0),
                   defenses=secagg(cohort=cohort))  # fmt: skip
    row = run_fl(sa, store, dataset=DS)
    keys, arrays = rows_of(store, rid_of(base))
    akeys, agg = rows_of(store, rid_of(sa))
    # the server's view: one row per round, no client, no speaker, N_r as n_samples
    assert [k["round"] for k in akeys] == [1, 2, 3]
    assert {k["client_id"] for k in akeys} == {AGGREGATE_CLIENT}
    assert {k["kind"] for k in akeys} == {"gradient" if algo.name == "fedsgd" else "delta"}
    cohorts = read_cohorts(store, rid_of(sa))
    k = cohorts[0]["cohort_size"]
    assert row["defense"] == "secure_aggregation" and row["defense_level"] == float(k)
    assert k == (cohort or 3)
    for i, r in enumerate([1, 2, 3]):
        mine = [j for j, k in enumerate(keys) if k["round"] == r]
        assert sorted(keys[j]["client_id"] for j in mine) == cohorts[i]["client_ids"]
        n = np.array([keys[j]["n_samples"] for j in mine], dtype=np.float64)
        assert akeys[i]["n_samples"] == int(n.sum()) == cohorts[i]["n_samples"]
        for p in PARAMS:
            x = arrays[p][mine].astype(np.float64)
            if algo.name == "fedavg":  # pseudo-gradient -> delta, by hand
                x = x * np.array([-algo.lr * local_steps(int(m), algo) for m in n])[:, None]
            expected = (n[:, None] * x).sum(0) / n.sum()
            np.testing.assert_allclose(agg[p][i], expected, rtol=1e-4, atol=1e-6)
    # the base run's cohorts are the same draw; individual updates are never stored
    assert len(akeys) == 3 and len(keys) == 3 * k


def test_server_view_holds_no_attribute(tmp_path):
    sa = RunConfig(model=MODEL, algo=AlgoConfig(name="fedsgd", rounds=2, client_fraction=0.5),
                   defenses=secagg(cohort=3))  # fmt: skip
    store = Store(tmp_path)
    run_fl(sa, store, dataset=DS)
    keys = read_update_keys(store, rid_of(sa))
    assert keys.schema.names == schema.UPDATE_KEYS.names  # no gender / age / composition
    assert set(keys["speaker_id"].to_pylist()) == {"aggregate"}
    assert set(keys["client_id"].to_pylist()) == {AGGREGATE_CLIENT}
    cohorts = read_cohorts(store, rid_of(sa))
    assert [c["cohort_size"] for c in cohorts] == [3, 3]
    assert "gender" not in schema.COHORTS.names
    assert read_clients(store, rid_of(sa)) is not None  # ground truth stays in the side table


def test_min_cohort_refused_before_anything_is_written(tmp_path):
    cfg = RunConfig(model=MODEL, algo=AlgoConfig(rounds=2, client_fraction=0.25),
                    defenses=secagg(min_cohort=3))  # fmt: skip  # 8 clients x 0.25 = 2
    store = Store(tmp_path)
    with pytest.raises(ConfigError, match="min_cohort 3 refuses 2 clients per round"):
        run_fl(cfg, store, dataset=DS)
    assert not (tmp_path / "updates").exists() and not (tmp_path / "runs").exists()


FIXED = ModelConfig(hidden=(16, 8), dropout1=0.0, dropout2=0.0)


@pytest.mark.parametrize(
    "sampling, algo, model, exact",
    [  # across rounds: exact only at a fixed model (server_lr 0, full batch, no dropout)
        ("adversarial_differencing",
         AlgoConfig(name="fedsgd", rounds=4, server_lr=0.0, fedsgd_full_batch=True), FIXED, True),
        ("adversarial_differencing", AlgoConfig(name="fedsgd", rounds=4, server_lr=0.5), MODEL,
         False),
        # two sessions of one round: exact for any algorithm, mini-batches and dropout included
        ("adversarial_same_round", AlgoConfig(name="fedsgd", rounds=3, server_lr=0.5), MODEL, True),
        ("adversarial_same_round", AlgoConfig(name="fedavg", rounds=3, lr=5e-3), MODEL, True),
    ],
)  # fmt: skip
def test_differencing_recovers_a_client_update_where_it_should(
    tmp_path, monkeypatch, sampling, algo, model, exact
):
    """Oracle: the engine's own individual updates, captured as the server aggregates them
    (in server space), against N_a A_a - N_b A_b read back from the harvest."""
    from sergrad.fl import run as run_module
    from sergrad.fl.server import server_space

    seen: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    real = run_module.server_views

    def spy(spec, mean, updates, *, round, isolated, algo):
        for u in updates:
            seen[(round, int(u.client_id))] = {
                k: v.detach().double().numpy().copy() for k, v in server_space(u, algo=algo).items()
            }
        return real(spec, mean, updates, round=round, isolated=isolated, algo=algo)

    monkeypatch.setattr(run_module, "server_views", spy)
    cfg = RunConfig(model=model, algo=algo, eval=EvalConfig(select_after=0),
                    defenses=secagg(cohort=3, sampling=sampling))  # fmt: skip
    store = Store(tmp_path)
    run_fl(cfg, store, dataset=DS)
    cohorts = read_cohorts(store, rid_of(cfg))
    keys, agg = rows_of(store, rid_of(cfg))
    assert [(k["round"], k["client_id"]) for k in keys] == [
        (c["round"], -1 - c["session"]) for c in cohorts
    ]  # one harvest row per cohort row, in order
    pairs = differencing_pairs(cohorts)
    assert len(pairs) == 2 if sampling == "adversarial_differencing" else len(pairs) == 3
    worst = 0.0
    for a, b, i in pairs:
        na, nb = keys[a]["n_samples"], keys[b]["n_samples"]
        n_i = na - nb
        for p in PARAMS:
            recovered = (na * agg[p][a].astype(np.float64) - nb * agg[p][b]) / n_i
            truth = seen[(keys[a]["round"], i)][p].ravel()
            scale = np.abs(truth).max()
            worst = max(worst, float(np.abs(recovered - truth).max() / scale))
    if exact:
        assert worst < 1e-4
    else:  # the model moved and batches were redrawn between the two rounds
        assert worst > 1e-2


def leaky_dataset(*, n_speakers: int, utts: int, dim: int, seed: int, strength: float = 1.5):
    """A known answer: gender flips an emotion-dependent shift of the features (it survives
    per-speaker z-normalisation); the structure is the same in every corpus, speakers differ."""
    from sergrad.fl.data import Dataset

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, dim))
    shift = rng.normal(size=(4, dim))
    shift -= shift.mean(0)
    rng = np.random.default_rng(seed)
    xs, ys, spk, gen = [], [], [], []
    for s in range(n_speakers):
        g = "FM"[s % 2]
        y = np.arange(utts) % 4
        sign = 1.0 if g == "F" else -1.0
        xs.append(centres[y] + strength * sign * shift[y] + rng.normal(size=(utts, dim)))
        ys.append(y)
        spk += [f"s{s:03d}"] * utts
        gen += [g] * utts
    n = n_speakers * utts
    obj = lambda v: np.array(v, dtype=object)  # noqa: E731
    return Dataset(x=np.concatenate(xs).astype(np.float32), emotion=np.concatenate(ys),
                   utt_id=obj([f"c{seed}-u{i:06d}" for i in range(n)]), speaker_id=obj(spk),
                   gender=obj(gen), corpus=obj(["leaky"] * n), feature_set="leaky")  # fmt: skip


@pytest.mark.parametrize(
    "sampling", ["uniform", "adversarial_differencing", "adversarial_same_round"]
)
def test_attacks_beat_their_baselines_on_a_known_answer(tmp_path, sampling):
    from sergrad.attack.secagg import SecAggAttackConfig, run_secagg_attack
    from sergrad.fl.config import DataConfig

    target_ds = leaky_dataset(n_speakers=30, utts=30, dim=12, seed=3)
    shadow_ds = leaky_dataset(n_speakers=30, utts=30, dim=12, seed=4)

    def cfg(fold: int) -> RunConfig:
        return RunConfig(model=MODEL, algo=AlgoConfig(name="fedsgd", rounds=40, server_lr=0.5),
                         eval=EvalConfig(select_after=0, every=10), data=DataConfig(fold=fold),
                         defenses=secagg(cohort=3, sampling=sampling))  # fmt: skip

    store = Store(tmp_path)
    target = run_fl(cfg(0), store, dataset=target_ds)["run_id"]
    shadows = tuple(run_fl(cfg(f), store, dataset=shadow_ds)["run_id"] for f in range(1, 5))
    rows = run_secagg_attack(SecAggAttackConfig(target_run=target, shadow_runs=shadows,
                                                bootstrap=100, permutations=100), store)  # fmt: skip
    comp = next(r for r in rows if r["protocol"] == "cohort_composition")
    assert comp["threat_model"] == "secagg_aggregate" and comp["cohort_size"] == 3
    assert comp["n_scored"] == 40 and comp["mae"] < 0.5 * comp["baseline_mae"]
    assert comp["spearman"] > 0.5 and comp["spearman_ci_low"] > 0 and comp["p_value"] < 0.05
    diff = [r for r in rows if r["protocol"] == "per_client"]
    if sampling == "uniform":
        assert not diff  # the honest server's sampling gives no differencing pairs
    else:
        assert diff[0]["threat_model"] == "secagg_controlled_sampling"
        pairs = 20 if sampling == "adversarial_differencing" else 40  # 2 rounds | 1 per pair
        assert diff[0]["n_scored"] == pairs and diff[0]["uar"] > 0.8


SWEEP = """name: sa
corpora:
  a: {kind: synth, speakers: 6}
  b: {kind: synth, speakers: 6}
pairings: [{target: a, shadow: [b]}]
features: [{name: prosody}]
run:
  algo: {name: {grid: [fedsgd, fedavg]}, rounds: 2}
defenses:
  - {name: none}
  - name: secure_aggregation
    params: {cohort: {grid: [1, 5]}, min_cohort: MIN}
folds: [0]
shadow_folds: [0, 1]
attack: {models: [{name: logreg_stats}, {name: cnn}], layers: [fc1]}
"""


def test_min_cohort_refused_at_plan_time_exit_2(tmp_path, capsys):
    from sergrad.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("MIN", "2"))
    assert main(["sweep", "plan", str(path), "--store", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert "s.yaml:12" in err and "defenses[1].params.min_cohort" in err
    assert "min_cohort 2 refuses 1 clients per round" in err
    assert not (tmp_path / "st").exists()


def test_plan_gives_secagg_targets_their_own_attack_and_counts_agree(tmp_path):
    from sergrad.sweep.count import count
    from sergrad.sweep.expand import expand
    from sergrad.sweep.schema import load_sweep
    from sergrad.sweep.secagg_jobs import SecAggEvalJob

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("MIN", "1"))
    sweep = load_sweep(path)
    plan = expand(sweep, str(tmp_path / "st"))
    runs = {r.id: r for r in plan.runs}
    secagg = [e for e in plan.evals if isinstance(e, SecAggEvalJob)]
    assert len(secagg) == 2 * 2  # algorithms x cohort sizes; attack models do not multiply it
    assert len(plan.evals) - len(secagg) == 2 * 2  # undefended: algorithms x models
    for e in secagg:
        target = runs[e.config.target_run].config.defenses
        for s in e.config.shadow_runs:  # the attacker runs the same secure aggregation
            assert runs[s].role == "shadow" and runs[s].config.defenses == target
    c = count(sweep)
    assert (c.evaluations, c.target_runs, c.shadow_runs) == (
        len(plan.evals), sum(r.role == "target" for r in plan.runs),
        sum(r.role == "shadow" for r in plan.runs))  # fmt: skip


def test_cohort_figure_and_report_section_come_from_the_stored_rows(tmp_path):
    from sergrad.analysis.plots_secagg import plot_cohort
    from sergrad.analysis.report import write_report
    from sergrad.attack.secagg import SecAggAttackConfig, run_secagg_attack
    from sergrad.fl.config import DataConfig

    target_ds = leaky_dataset(n_speakers=20, utts=20, dim=8, seed=3)
    shadow_ds = leaky_dataset(n_speakers=20, utts=20, dim=8, seed=4)
    store = Store(tmp_path / "store")
    stored = {}
    for k in (1, 4):

        def cfg(fold: int, k=k) -> RunConfig:
            return RunConfig(model=MODEL, algo=AlgoConfig(name="fedsgd", rounds=20, server_lr=0.5),
                             eval=EvalConfig(select_after=0, every=10), data=DataConfig(fold=fold),
                             defenses=secagg(cohort=k))  # fmt: skip

        target = run_fl(cfg(0), store, dataset=target_ds, extra={"role": "target"})["run_id"]
        shadows = tuple(run_fl(cfg(f), store, dataset=shadow_ds)["run_id"] for f in range(1, 4))
        rows = run_secagg_attack(SecAggAttackConfig(target_run=target, shadow_runs=shadows,
                                                    bootstrap=50, permutations=50), store)  # fmt: skip
        stored[k] = rows[0]
    # the same FL setting without secure aggregation, attacked per update (the comparison)
    from sergrad.analysis.plots_secagg import cohort_one_check
    from sergrad.attack.config import AttackConfig, AttackModelConfig
    from sergrad.attack.run import run_attack

    def plain(fold: int) -> RunConfig:
        return RunConfig(model=MODEL, algo=AlgoConfig(name="fedsgd", rounds=20, server_lr=0.5,
                                                      client_fraction=0.2),
                         eval=EvalConfig(select_after=0, every=10), data=DataConfig(fold=fold))  # fmt: skip

    target = run_fl(plain(0), store, dataset=target_ds, extra={"role": "target"})["run_id"]
    shadows = tuple(run_fl(plain(f), store, dataset=shadow_ds)["run_id"] for f in range(1, 4))
    direct = run_attack(AttackConfig(target_run=target, shadow_runs=shadows, bootstrap=20,
                                     model=AttackModelConfig(name="logreg_stats", epochs=5),
                                     protocols=("per_update",)), store)  # fmt: skip
    check = cohort_one_check(store.uri).row(0, named=True)
    per_update = next(r for r in direct if r["protocol"] == "per_update"
                      and r["calibration"] == "shadow" and r["layer"] == "fc1")  # fmt: skip
    assert check["per_update_uar"] == pytest.approx(per_update["uar"])
    assert check["cohort1_uar"] == pytest.approx(stored[1]["uar"]) and check["cohort1_n"] == 20
    assert stored[4]["uar"] is None  # only a cohort of one is a per-client classifier
    frame = plot_cohort(store.uri, tmp_path / "secagg.png")
    assert (tmp_path / "secagg.png").stat().st_size > 0
    assert frame["cohort_size"].to_list() == [1, 4]
    for r in frame.iter_rows(named=True):
        s = stored[r["cohort_size"]]
        assert r["value"] == pytest.approx(s["spearman"]) and r["n_scored"] == s["n_scored"] == 20
        assert (r["ci_low"], r["ci_high"], r["p_value"]) == pytest.approx(
            (s["spearman_ci_low"], s["spearman_ci_high"], s["p_value"]))  # fmt: skip
    from sergrad.cli import main

    assert main(["plot", "cohort", str(store.uri), "-o", str(tmp_path / "c.png")]) == 0
    assert main(["table", "cohort", str(store.uri), "-o", str(tmp_path / "c.csv")]) == 0
    assert pl_read_csv(tmp_path / "c.csv")["cohort_size"].to_list() == [1, 4]
    page = write_report(store.uri, tmp_path / "report").read_text()
    assert "Secure aggregation: leakage against the cohort size" in page
    assert "Cohort of one against the attack on individual updates" in page


def pl_read_csv(path):
    import polars as pl

    return pl.read_csv(path)


def test_planning_and_the_secagg_attack_modules_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, sergrad.sweep.expand, sergrad.sweep.count, sergrad.fl.secagg, "
            "sergrad.attack.secagg_model; assert 'torch' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)

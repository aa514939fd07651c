"""fast == reference (the oracle), and determinism regardless of run order."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sergrad.fl.config import (
    AlgoConfig,
    DataConfig,
    DefenseConfig,
    EvalConfig,
    HarvestConfig,
    ModelConfig,
    RunConfig,
)
from sergrad.fl.engine import create_engine
from sergrad.fl.model import PARAM_NAMES, init_params
from sergrad.fl.partition import partition
from sergrad.fl.records import read_clients
from sergrad.fl.run import run_fl
from sergrad.fl.schedule import generator
from sergrad.fl.synthetic import random_dataset
from sergrad.fl.update import LocalTraining
from sergrad.store import Store

torch.set_num_threads(1)
SIZES = [13, 30, 7, 22, 41, 9, 18, 25, 3, 33]  # ragged: last batches and step counts differ
DS = random_dataset(n_speakers=10, utts_per_speaker=SIZES, dim=12, seed=0)
PART = partition(DS, DataConfig(), seed=0)

ALGOS = {
    "fedsgd": AlgoConfig(name="fedsgd", batch_size=5),
    "fedsgd_full": AlgoConfig(name="fedsgd", fedsgd_full_batch=True),
    "fedavg_adam": AlgoConfig(name="fedavg", batch_size=5, local_epochs=2, eps=1e-6),
    "fedavg_sgd": AlgoConfig(
        name="fedavg", optimizer="sgd", momentum=0.9, batch_size=4, lr=0.05, share="delta"
    ),
}
LOCALS = {
    "plain": None,
    "batch_clip": LocalTraining(batch_clip=0.5),
    "dp_sgd": LocalTraining(per_example_clip=0.3, noise_multiplier=1.0),
    "dp_sgd_poisson": LocalTraining(per_example_clip=0.3, noise_multiplier=0.5, poisson=True),
}


def _round(engine: str, algo, local, dropout: float):
    model = ModelConfig(hidden=(16, 8), dropout1=dropout, dropout2=dropout)
    params = init_params(12, model, generator=generator(0, "init"))
    e = create_engine(engine, PART, model=model, algo=algo, local=local, seed=0, device="cpu")
    return e.train_round(params, list(PART.clients), round=3)


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("local", list(LOCALS))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fast_equals_reference_one_round(algo, local, dropout):
    if algo == "fedsgd_full" and local == "dp_sgd_poisson":
        pytest.skip("full-batch FedSGD has no Poisson sampling")
    ref = _round("reference", ALGOS[algo], LOCALS[local], dropout)
    fast = _round("fast", ALGOS[algo], LOCALS[local], dropout)
    _assert_same_results(ref, fast, ALGOS[algo])


def _assert_same_results(ref, fast, algo: AlgoConfig) -> None:
    assert [r.client.client_id for r in ref] == [f.client.client_id for f in fast]
    for r, f in zip(ref, fast):
        assert (r.steps, r.sample_rate) == (f.steps, f.sample_rate)
        assert abs(r.loss - f.loss) < 1e-5
        # compare in model space: a pseudo-gradient is a delta divided by lr * steps
        scale = algo.lr * r.steps if algo.name == "fedavg" else 1.0
        for k in PARAM_NAMES:
            torch.testing.assert_close(
                f.tensors[k] * scale, r.tensors[k] * scale, rtol=1e-4, atol=1e-6
            )


# every client takes ONE local step (batch >= its data): the fast engine's closed form
ONE_STEP = {
    "adam": AlgoConfig(name="fedavg", batch_size=64, eps=1e-6),
    "adam_delta_no_decay": AlgoConfig(
        name="fedavg", batch_size=64, weight_decay=0.0, share="delta", eps=1e-6
    ),
    "sgd_momentum": AlgoConfig(
        name="fedavg", optimizer="sgd", momentum=0.9, batch_size=64, lr=0.05
    ),
    "sgd_delta": AlgoConfig(name="fedavg", optimizer="sgd", batch_size=64, lr=0.05, share="delta"),
}


@pytest.mark.parametrize("algo", list(ONE_STEP))
@pytest.mark.parametrize("local", ["plain", "batch_clip", "dp_sgd", "dp_sgd_poisson"])
def test_fast_one_local_step_closed_form_equals_reference(algo, local):
    ref = _round("reference", ONE_STEP[algo], LOCALS[local], 0.3)
    fast = _round("fast", ONE_STEP[algo], LOCALS[local], 0.3)
    assert {r.steps for r in ref} == {1}  # the closed form is what is tested
    _assert_same_results(ref, fast, ONE_STEP[algo])


def _config(engine: str, algo: AlgoConfig, **kw) -> RunConfig:
    return RunConfig(
        model=ModelConfig(hidden=(16, 8), dropout1=0.0, dropout2=0.0),
        algo=algo,
        eval=EvalConfig(select_after=2),
        engine=engine,
        **kw,
    )


def _updates(store: Store, run_id: str):
    return pq.read_table(store.file_path("updates", partition=("run_id", run_id), name="updates"))


def _values(table, name: str) -> torch.Tensor:
    """A harvested float32 parameter column as [rows, numel] (harvest_format.decode_value)."""
    from sergrad.fl.harvest_format import decode_value

    return torch.from_numpy(
        np.stack([decode_value(v, "float32") for v in table.column(name).to_pylist()])
    )


@pytest.mark.parametrize("algo", ["fedsgd", "fedavg_adam", "fedavg_sgd"])
def test_fast_equals_reference_whole_run(tmp_path, algo):
    a = ALGOS[algo].__class__(**{**ALGOS[algo].__dict__, "rounds": 4, "client_fraction": 0.5})
    rows, tables, clients = {}, {}, {}
    for engine in ("reference", "fast"):
        store = Store(tmp_path / engine)
        rows[engine] = run_fl(_config(engine, a), store, dataset=DS)
        tables[engine] = _updates(store, rows[engine]["run_id"])
        clients[engine] = read_clients(store, rows[engine]["run_id"])
    ref, fast = tables["reference"], tables["fast"]
    assert ref.num_rows == fast.num_rows == 4 * 4
    for col in ("round", "client_id", "speaker_id", "n_samples", "kind"):
        assert ref.column(col).to_pylist() == fast.column(col).to_pylist()
    assert clients["reference"] == clients["fast"] and clients["fast"]  # the ground truth
    for k in PARAM_NAMES:
        r, f = _values(ref, k), _values(fast, k)
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-4)  # pseudo-gradient scale
    for key in ("best_round", "test_uar", "test_acc", "val_uar", "n_updates"):
        assert rows["fast"][key] == pytest.approx(rows["reference"][key], abs=1e-9)


def test_same_config_same_numbers_in_any_order(tmp_path):
    fedavg = AlgoConfig(name="fedavg", rounds=3, batch_size=5, client_fraction=0.4)
    fedsgd = AlgoConfig(name="fedsgd", rounds=3, batch_size=5, client_fraction=0.4)
    c1, c2 = _config("fast", fedavg, seed=1), _config("fast", fedsgd, seed=1)
    first, second = Store(tmp_path / "a"), Store(tmp_path / "b")
    r1 = run_fl(c1, first, dataset=DS)
    run_fl(c2, first, dataset=DS)
    r2 = run_fl(c2, second, dataset=DS)
    r1b = run_fl(c1, second, dataset=DS)
    for rid in (r1["run_id"], r2["run_id"]):
        assert _updates(first, rid).equals(_updates(second, rid))
    assert r1["test_uar"] == r1b["test_uar"] and r1["best_round"] == r1b["best_round"]
    # a different seed gives different updates
    r3 = run_fl(_config("fast", fedavg, seed=2), first, dataset=DS)
    assert not _updates(first, r3["run_id"]).equals(_updates(first, r1["run_id"]))


def test_harvest_dtype_and_off(tmp_path):
    a = AlgoConfig(name="fedavg", rounds=2, batch_size=5, client_fraction=0.3)
    store = Store(tmp_path)
    off = run_fl(_config("fast", a, harvest=HarvestConfig(enabled=False)), store, dataset=DS)
    half = run_fl(_config("fast", a, harvest=HarvestConfig(dtype="float16")), store, dataset=DS)
    assert off["harvest_bytes"] == 0 and half["harvest_bytes"] > 0
    assert off["test_uar"] == half["test_uar"]  # the harvest never changes training


@pytest.mark.parametrize(
    "defense",
    [
        DefenseConfig(name="dp_sgd", params={"max_grad_norm": 0.5, "noise_multiplier": 1.0}),
        DefenseConfig(name="udp_paper", params={"clip": 0.25, "epsilon": 10.0}),
    ],
)
def test_defenses_in_the_loop_same_in_both_engines(tmp_path, defense):
    a = AlgoConfig(name="fedavg", rounds=3, batch_size=5, client_fraction=0.5, eps=1e-6)
    rows = {}
    for engine in ("reference", "fast"):
        store = Store(tmp_path / engine)
        rows[engine] = run_fl(_config(engine, a, defenses=(defense,)), store, dataset=DS)
        rows[engine]["updates"] = _updates(store, rows[engine]["run_id"])
    ref, fast = rows["reference"], rows["fast"]
    assert ref["defense"] == defense.name and ref["epsilon"] == pytest.approx(fast["epsilon"])
    if defense.name == "dp_sgd":  # udp_paper claims no guarantee (METHOD.md section 5)
        assert ref["epsilon"] > 0 and ref["dp_protects"] == "utterances"
    for k in PARAM_NAMES:
        r, f = _values(ref["updates"], k), _values(fast["updates"], k)
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-4)


# no client takes more than two local steps (batch 20: 1 or 2 steps here, ragged second
# batches): the fast engine's per-client fc1 path (sergrad.fl.fast_two_step)
TWO_STEP = {
    "adam": AlgoConfig(name="fedavg", batch_size=20, eps=1e-6),
    "adam_default_eps": AlgoConfig(name="fedavg", batch_size=20),
    "adam_delta_no_decay": AlgoConfig(
        name="fedavg", batch_size=20, weight_decay=0.0, share="delta", eps=1e-6
    ),
}


@pytest.mark.parametrize("algo", list(TWO_STEP))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fast_two_local_steps_equals_reference(algo, dropout):
    ref = _round("reference", TWO_STEP[algo], None, dropout)
    fast = _round("fast", TWO_STEP[algo], None, dropout)
    assert {r.steps for r in ref} == {1, 2}  # the two-step path with one-step clients
    _assert_same_results(ref, fast, TWO_STEP[algo])


@pytest.mark.parametrize("algo", list(TWO_STEP))
def test_fast_two_step_path_equals_batched_path(algo, monkeypatch):
    """Oracle: the same engine's batched path (every tensor stacked, fused Adam over all)."""
    import sergrad.fl.fast as fast_module

    calls = []
    spy = fast_module.train_two_steps
    monkeypatch.setattr(fast_module, "train_two_steps", lambda *a: calls.append(1) or spy(*a))
    model = ModelConfig(hidden=(16, 8), dropout1=0.2, dropout2=0.2)
    params = init_params(12, model, generator=generator(0, "init"))
    out = {}
    for two_step in (True, False):
        e = create_engine("fast", PART, model=model, algo=TWO_STEP[algo], local=None, seed=0,
                          device="cpu")  # fmt: skip
        e.two_step = two_step
        for rnd in (3, 4):  # buffers reused across rounds
            res = e.train_round(params, list(PART.clients), round=rnd)
        out[two_step] = [(r.steps, r.loss, {k: v.clone() for k, v in r.tensors.items()})
                         for r in res]  # fmt: skip
        assert len(calls) == 2  # both rounds of the first engine, none of the second
    for (s1, l1, t1), (s2, l2, t2) in zip(out[True], out[False]):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-6)
        for k in PARAM_NAMES:
            torch.testing.assert_close(t1[k], t2[k], rtol=1e-5, atol=1e-6)

"""Fit once, score many: evaluations that train the same attack model on the same shadow
feature rows fit it once (`sergrad.attack.fit_cache`), with bit-identical results."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sergrad import schema
from sergrad.attack import fit_cache, inputs, pipeline
from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig, eval_id
from sergrad.attack.models import create
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.attack.train import TrainResult
from sergrad.store import Store

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
NOISE = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
VARIABLE = ("wall_s", "created_at", "note")  # timings, and the note that names the reuse


def _world(store: Store) -> tuple[tuple[str, ...], list[str]]:
    shadows = []
    for i in range(2):
        write_synthetic_run(store, f"shadow{i}", corpus="a", shapes=TINY_SHAPES,
                            speakers=[(f"a{j}", "FM"[j % 2]) for j in range(12)], rounds=12,
                            clients_per_round=6, seed=i, signal=LEAK)  # fmt: skip
        shadows.append(f"shadow{i}")
    for k in range(2):
        write_synthetic_run(store, f"target{k}", corpus="b", shapes=TINY_SHAPES,
                            speakers=[(f"b{j}", "FM"[j % 2]) for j in range(10)], rounds=8,
                            clients_per_round=5, seed=50 + k, signal=LEAK, role="target")  # fmt: skip
    return tuple(shadows), ["target0", "target1"]


def _config(target: str, shadows, *, name="logreg_stats", params=None, **kw) -> AttackConfig:
    model = AttackModelConfig(name=name, epochs=6, params=params or {})
    return AttackConfig(target_run=target, shadow_runs=shadows, layers=("fc1", "fc2"),
                        model=model, n_avg=(1, 3, 0), trials=2, bootstrap=20, **kw)  # fmt: skip


class CountingFits:
    """Counts the attack models actually trained (pipeline.train_attack calls)."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        real = pipeline.train_attack

        def train_attack(*args, **kw):
            self.n += 1
            return real(*args, **kw)

        monkeypatch.setattr(pipeline, "train_attack", train_attack)


def _stored(store: Store, config: AttackConfig, corpus: str = "b") -> tuple[str, str]:
    eid = eval_id(config)
    part = (schema.ATTACKS_PARTITION, corpus)
    with store.open_input(store.file_path("attacks", partition=part, name=eid)) as f:
        attacks = pq.read_table(f).to_pylist()
    pred_part = (schema.PREDICTIONS_PARTITION, eid)
    with store.open_input(store.file_path("predictions", partition=pred_part,
                                          name="predictions")) as f:  # fmt: skip
        preds = pq.read_table(f).to_pylist()
    attacks = [{k: v for k, v in r.items() if k not in VARIABLE} for r in attacks]
    # JSON: floats as repr (exact), NaN equal to NaN
    return json.dumps(attacks, sort_keys=True), json.dumps(preds, sort_keys=True)


def _fits(store: Store) -> list[dict]:
    return [r for r in inputs.describe(store) if r["name"].startswith("fit-")]


def test_evaluations_sharing_a_shadow_set_fit_once_with_bit_identical_rows(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    shadows, targets = _world(store)
    fresh = tmp_path / "fresh"
    shutil.copytree(tmp_path / "store", fresh)  # the same harvests, nothing of the attack
    fits = CountingFits(monkeypatch)
    first = _config(targets[0], shadows)
    run_attack(first, store)
    assert fits.n == 2 and len(_fits(store)) == 2  # one fit per layer, stored
    # another target, another post-hoc defense on it: the same two fits, loaded
    second = _config(targets[1], shadows, posthoc=NOISE)
    rows = run_attack(second, store)
    assert fits.n == 2 and len(_fits(store)) == 2
    trained = [r for r in rows if r["layer"] in ("fc1", "fc2") and r["protocol"] == "per_update"]
    assert len(trained) == 4  # 2 layers x 2 calibrations, each noting the training
    assert all("fit reused from attack_inputs/key=" in r["note"] for r in trained)
    # the oracle: the second evaluation alone on a store that never saw the first
    fresh_store = Store(fresh)
    run_attack(second, fresh_store)
    assert fits.n == 4
    reused_attacks, reused_preds = _stored(store, second)
    fresh_attacks, fresh_preds = _stored(fresh_store, second)
    assert reused_preds == fresh_preds  # every P(male), exactly
    assert reused_attacks == fresh_attacks  # every metric, interval and threshold, exactly


def test_what_the_fit_depends_on_gets_its_own_fit(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, targets = _world(store)
    fits = CountingFits(monkeypatch)
    run_attack(_config(targets[0], shadows), store)
    assert fits.n == 2
    # same featurizer, other training options / seed / model: each trains its own two fits
    run_attack(_config(targets[0], shadows, params={"lr": 3e-3}), store)
    assert fits.n == 4
    run_attack(_config(targets[0], shadows, seed=1), store)
    assert fits.n == 6
    run_attack(_config(targets[0], shadows, name="logreg_colcorr"), store)
    assert fits.n == 8
    # an adaptive attacker mimicking the defense trains on other shadow features
    run_attack(_config(targets[0], shadows, posthoc=NOISE, adaptive=True), store)
    assert fits.n == 10
    # only the fusion / protocol settings differ: the fits are reused
    run_attack(_config(targets[1], shadows, fusion=False), store)
    assert fits.n == 10 and len(_fits(store)) == 10


def test_a_layer_shares_its_features_and_fit_across_layer_sets(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, targets = _world(store)
    fits = CountingFits(monkeypatch)
    both = run_attack(_config(targets[0], shadows), store)  # fc1 + fc2
    features = {r["key"] for r in inputs.describe(store) if r["name"] == "features.parquet"}
    assert fits.n == 2 and len(features) == 2
    # fc1 alone (other moments key): fc1's feature rows and fit are the same ones
    alone = run_attack(dataclasses.replace(_config(targets[0], shadows), layers=("fc1",)), store)
    assert fits.n == 2
    assert {r["key"] for r in inputs.describe(store) if r["name"] == "features.parquet"} == features

    def fc1(rows):
        return sorted((r["protocol"], r["n_avg"], r["calibration"], r["uar"], r["auc"])
                      for r in rows if r["layer"] == "fc1")  # fmt: skip

    assert fc1(alone) == fc1(both)
    # an attacker mimicking a defense: its noise draws span the pass's params, so fc1 alone
    # and fc1 + fc2 are other feature rows
    adaptive = dict(posthoc=NOISE, adaptive=True)
    run_attack(_config(targets[0], shadows, **adaptive), store)
    assert fits.n == 4
    run_attack(dataclasses.replace(_config(targets[0], shadows, **adaptive), layers=("fc1",)),
               store)  # fmt: skip
    assert fits.n == 5


def test_a_fit_stopped_by_its_time_budget_is_not_stored(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, targets = _world(store)
    fits = CountingFits(monkeypatch)
    budget = _config(targets[0], shadows, params={"max_seconds": 0.0})  # one epoch, then stop
    rows = run_attack(budget, store)
    assert any("stopped=budget" in r["note"] for r in rows)
    run_attack(_config(targets[1], shadows, params={"max_seconds": 0.0}), store)
    assert fits.n == 4 and _fits(store) == []


def test_no_fit_key_on_cuda():
    model = create("logreg_stats", shapes=dict(TINY_SHAPES), params={},
                   generator=torch.Generator().manual_seed(0))  # fmt: skip
    common = dict(features_key="k", model=model, model_config=AttackModelConfig(),
                  labels=np.array([0, 1]), split=(np.array([0]), np.array([1])),
                  generator_state=torch.Generator().manual_seed(0).get_state(),
                  shapes=dict(TINY_SHAPES))  # fmt: skip
    assert fit_cache.fit_key(**common, device="cuda") is None
    key = fit_cache.fit_key(**common, device="cpu")
    assert key and key == fit_cache.fit_key(**common, device="cpu")
    other = {**common, "labels": np.array([1, 0])}
    assert fit_cache.fit_key(**other, device="cpu") != key


@pytest.mark.parametrize("name", ["logreg_stats", "mlp_proj"])
def test_stored_fit_round_trips_every_weight_and_buffer(tmp_path, name):
    store = Store(tmp_path)
    shapes = {"fc2.weight": (6, 8), "fc2.bias": (6,)}
    model = create(name, shapes=shapes, params={}, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # non-default buffers (batch-norm running stats) and weights
        for t in model.module.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=torch.Generator().manual_seed(t.numel())))
            else:
                t.fill_(7)
    result = TrainResult(best_val_uar=float("nan"), best_epoch=3, epochs_run=5, n_train=10,
                         n_val=0, wall_s=0.5, updates_per_s=20.0, stopped="patience",
                         history=({"epoch": 1, "train_loss": 0.7, "val_uar": float("nan")},))  # fmt: skip
    fit_cache.save(store, "fkey", "abc", model, result)
    other = create(name, shapes=shapes, params={}, generator=torch.Generator().manual_seed(2))
    loaded = fit_cache.load(store, "fkey", "abc", other)
    assert loaded.reused == "attack_inputs/key=fkey/fit-abc"
    assert loaded.best_epoch == 3 and loaded.stopped == "patience" and np.isnan(loaded.best_val_uar)
    assert loaded.history[0]["train_loss"] == 0.7
    want, got = model.module.state_dict(), other.module.state_dict()
    assert list(want) == list(got)
    for k in want:
        assert want[k].dtype == got[k].dtype and torch.equal(want[k], got[k]), k
    assert fit_cache.load(store, "fkey", "other", other) is None


def test_evicted_fits_are_trained_again_with_the_same_results(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, targets = _world(store)
    fits = CountingFits(monkeypatch)
    config = _config(targets[0], shadows)
    run_attack(config, store)
    before = _stored(store, config)
    assert len(inputs.evict(store, 0)) == 3  # moments + 2 feature keys, with their fits
    assert _fits(store) == []
    for table in ("attacks", "predictions"):
        shutil.rmtree(store.path(table))
    run_attack(config, store)
    assert fits.n == 4 and len(_fits(store)) == 2
    assert _stored(store, config) == before

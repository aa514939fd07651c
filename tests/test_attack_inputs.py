"""Featurize once, fit many: evaluations sharing a shadow set read and featurize it once."""

from __future__ import annotations

import collections
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from sergrad.attack import inputs, source
from sergrad.attack.config import AttackConfig, AttackModelConfig, PostHocConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.store import Store

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
METRICS = ("uar", "auc", "acc")


def _world(store: Store) -> tuple[tuple[str, ...], list[str]]:
    shadows = []
    for i in range(2):
        rid = f"shadow{i}"
        write_synthetic_run(store, rid, corpus="a", shapes=TINY_SHAPES,
                            speakers=[(f"a{j}", "FM"[j % 2]) for j in range(12)], rounds=12,
                            clients_per_round=6, seed=i, signal=LEAK)  # fmt: skip
        shadows.append(rid)
    targets = []
    for k in range(2):
        rid = f"target{k}"
        write_synthetic_run(store, rid, corpus="b", shapes=TINY_SHAPES,
                            speakers=[(f"b{j}", "FM"[j % 2]) for j in range(10)], rounds=8,
                            clients_per_round=5, seed=50 + k, signal=LEAK, role="target")  # fmt: skip
        targets.append(rid)
    return tuple(shadows), targets


def _config(target: str, shadows, name: str = "logreg_colcorr", **kw) -> AttackConfig:
    model = AttackModelConfig(name=name, epochs=4, params=kw.pop("params", {}))
    return AttackConfig(target_run=target, shadow_runs=shadows, layers=("fc1", "fc2"),
                        model=model, n_avg=(1, 0), trials=2, bootstrap=0, **kw)  # fmt: skip


class Counting:
    """Counts harvest streams per run (source.iter_batches) and shadow rows featurized."""

    def __init__(self, monkeypatch) -> None:
        self.reads: collections.Counter = collections.Counter()
        self.featurized = 0
        real_iter, real_append = source.iter_batches, inputs.FeatureWriter.append

        def iter_batches(store, run_id, **kw):
            self.reads[run_id] += 1
            yield from real_iter(store, run_id, **kw)

        def append(writer, rows):
            self.featurized += len(rows)
            real_append(writer, rows)

        monkeypatch.setattr(source, "iter_batches", iter_batches)
        monkeypatch.setattr(inputs.FeatureWriter, "append", append)


def _metrics(rows) -> list[tuple]:
    return sorted((r["layer"], r["protocol"], r["n_avg"], *(r[m] for m in METRICS)) for r in rows)


def test_two_evaluations_sharing_a_shadow_set_read_and_featurize_it_once(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    shadows, targets = _world(store)
    fresh = tmp_path / "fresh"
    shutil.copytree(tmp_path / "store", fresh)  # the same harvests, no attack_inputs
    count = Counting(monkeypatch)
    first = run_attack(_config(targets[0], shadows), store)
    after_first = dict(count.reads)
    # one pass for the moments; its batches (small enough to keep) give both layers'
    # features: 1 read per shadow run
    assert all(after_first[r] == 1 for r in shadows), after_first
    rows_per_shadow_set = sum(source.run_meta(store, r, role="shadow").n_rows for r in shadows)
    assert count.featurized == 2 * rows_per_shadow_set  # two layers, each row once
    # a second evaluation on another target (and another post-hoc defense on the target):
    # no shadow harvest read, nothing featurized again; the target is read once
    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    second = run_attack(_config(targets[1], shadows, posthoc=noise), store)
    assert all(count.reads[r] == 1 for r in shadows), dict(count.reads)
    assert count.reads[targets[1]] == 1 and count.featurized == 2 * rows_per_shadow_set
    # the cache changes nothing: the same evaluations on a store without attack_inputs
    fresh_store = Store(fresh)
    assert _metrics(run_attack(_config(targets[0], shadows), fresh_store)) == _metrics(first)
    again = run_attack(_config(targets[1], shadows, posthoc=noise), fresh_store)
    assert _metrics(again) == _metrics(second)


def test_other_featurizers_and_mimicked_defenses_get_their_own_inputs(tmp_path, monkeypatch):
    store = Store(tmp_path)
    shadows, targets = _world(store)
    count = Counting(monkeypatch)
    run_attack(_config(targets[0], shadows), store)
    # training-only params share the featurizer: nothing new
    run_attack(_config(targets[0], shadows, params={"lr": 3e-3}), store)
    assert all(count.reads[r] == 1 for r in shadows)
    # another featurizer: one more shadow pass for both layers, moments reused
    run_attack(_config(targets[0], shadows, name="logreg_stats"), store)
    assert all(count.reads[r] == 2 for r in shadows)
    # an adaptive attacker mimicking a defense has other moments and features
    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    run_attack(_config(targets[0], shadows, posthoc=noise, adaptive=True), store)
    assert all(count.reads[r] == 2 + 1 + 2 for r in shadows)  # moments + one pass per layer
    keys = {r["key"] for r in inputs.describe(store)}
    assert len(keys) == 2 + 2 * 3  # 2 moments, 2 layers x 3 (featurizer, moments) pairs


def test_moments_round_trip_and_key_depends_on_what_it_should():
    cfg = AttackConfig(target_run="t", shadow_runs=("a", "b"))
    k = inputs.moments_key(cfg, ["fc1.weight"], batch_rows=32)
    assert k == inputs.moments_key(dataclasses.replace(cfg, target_run="u"), ["fc1.weight"],
                                   batch_rows=32)  # fmt: skip
    assert k != inputs.moments_key(dataclasses.replace(cfg, shadow_runs=("b", "a")),
                                   ["fc1.weight"], batch_rows=32)  # fmt: skip
    noise = (PostHocConfig("layer_perturbation", {"std": 0.5}),)
    assert k == inputs.moments_key(dataclasses.replace(cfg, posthoc=noise), ["fc1.weight"],
                                   batch_rows=32)  # fmt: skip
    assert k != inputs.moments_key(dataclasses.replace(cfg, posthoc=noise, adaptive=True),
                                   ["fc1.weight"], batch_rows=32)  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_feature_rows_round_trip(tmp_path, dtype):
    store = Store(tmp_path)
    rows = np.random.default_rng(0).standard_normal((150, 7)).astype(dtype)
    w = inputs.FeatureWriter(store, "k1", width=7, dtype=dtype)
    w.append(rows[:100])
    w.append(rows[100:])
    w.close()
    got = inputs.load_features(store, "k1", str(tmp_path / "rows.bin"))
    np.testing.assert_array_equal(got.read(np.arange(150)), rows.astype(np.float32))
    assert inputs.load_features(store, "missing", str(tmp_path / "x.bin")) is None


def test_prepared_group_reads_each_shadow_run_once_for_all_featurizers(tmp_path, monkeypatch):
    from sergrad.attack.group import prepare_attack_inputs

    store = Store(tmp_path)
    shadows, targets = _world(store)
    configs = [
        _config(t, shadows, name=name)
        for t in targets
        for name in ("logreg_colcorr", "logreg_stats", "mlp_proj")
    ]
    count = Counting(monkeypatch)
    passes = prepare_attack_inputs(store, configs)
    assert list(passes.values()) == [1]  # one featurizing pass for 3 featurizers x 2 layers
    assert all(count.reads[r] == 1 for r in shadows), dict(count.reads)  # from memory
    n_rows = sum(source.run_meta(store, r, role="shadow").n_rows for r in shadows)
    assert count.featurized == 3 * 2 * n_rows
    for c in configs:
        run_attack(c, store)
    assert all(count.reads[r] == 1 for r in shadows)  # the evaluations read no shadow harvest
    assert all(count.reads[t] == 3 for t in targets)  # each evaluation reads its target once
    assert prepare_attack_inputs(store, configs) == {next(iter(passes)): 0}


def test_cache_cap_evicts_least_recently_used_keys_and_rebuilds_them(tmp_path, monkeypatch):
    import os
    import time

    store = Store(tmp_path)
    shadows, targets = _world(store)
    stats = _config(targets[0], shadows, name="logreg_stats")
    first = run_attack(stats, store)
    run_attack(_config(targets[0], shadows), store)  # logreg_colcorr: same moments
    rows = {r["key"]: r for r in inputs.usage(store)}
    assert len(rows) == 1 + 2 * 2  # moments + 2 layers x 2 featurizers
    by_file = collections.Counter()
    for r in inputs.describe(store):
        by_file[r["key"]] += r["bytes"]
    assert {k: r["bytes"] for k, r in rows.items()} == dict(by_file)
    # every file an hour old; then an evaluation with colcorr uses its moments and features
    old = time.time() - 3600
    for path in store.files(inputs.TABLE):
        os.utime(path, (old, old))
    count = Counting(monkeypatch)
    run_attack(_config(targets[1], shadows), store)
    assert not any(count.reads[r] for r in shadows)  # all from the cache
    recent = {r["key"] for r in inputs.usage(store) if r["last_used"] > old + 1800}
    assert len(recent) == 3  # the moments and colcorr's two layers, marked used
    # cap = what the recently used keys hold: exactly the two stats keys go, oldest first
    keep_bytes = sum(rows[k]["bytes"] for k in recent)
    assert set(inputs.evict(store, keep_bytes)) == set(rows) - recent
    assert {r["key"] for r in inputs.usage(store)} == recent
    assert inputs.evict(store, keep_bytes) == []  # under the cap: nothing more
    # an evicted featurizer is rebuilt from the harvest (one pass), with the same results
    for table in ("attacks", "predictions"):
        shutil.rmtree(store.path(table))
    again = run_attack(stats, store)
    assert all(count.reads[r] == 1 for r in shadows), dict(count.reads)
    assert _metrics(again) == _metrics(first)
    assert len(inputs.evict(store, 0)) == 5 and inputs.usage(store) == []


def test_cache_cap_setting_is_validated():
    from sergrad.errors import ConfigError
    from sergrad.sweep.schema import ResourcesSpec

    assert ResourcesSpec().attack_inputs_max_gb == inputs.DEFAULT_MAX_GB
    with pytest.raises(ConfigError, match="attack_inputs_max_gb"):
        ResourcesSpec(attack_inputs_max_gb=-1.0)


def test_shadow_set_too_big_to_keep_is_streamed_twice_with_the_same_results(tmp_path, monkeypatch):
    from sergrad.attack import pipeline

    store = Store(tmp_path / "kept")
    shadows, targets = _world(store)
    shutil.copytree(tmp_path / "kept", tmp_path / "streamed")
    kept = run_attack(_config(targets[0], shadows), store)
    monkeypatch.setattr(pipeline, "RAW_IN_MEMORY_BYTES", 0)  # nothing fits: read again
    count = Counting(monkeypatch)
    streamed = run_attack(_config(targets[0], shadows), Store(tmp_path / "streamed"))
    assert all(count.reads[r] == 2 for r in shadows), dict(count.reads)
    assert _metrics(streamed) == _metrics(kept)

"""The process-wide cache of decoded harvest batches (`sergrad.attack.batch_cache`): a run read
twice is decoded once, replays equal a fresh read (the oracle: the uncached reader), batches
are read-only, a re-written file is read again, the byte cap and LRU order hold, and two
evaluations of one target decode its harvest once with rows identical to a cold process."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from sergrad.attack import batch_cache
from sergrad.attack.config import AttackConfig, AttackModelConfig
from sergrad.attack.run import run_attack
from sergrad.attack.synth import TINY_SHAPES, write_synthetic_run
from sergrad.fl.harvest_read import iter_update_batches
from sergrad.store import Store

torch.set_num_threads(1)
LEAK = {"fc1": 0.8, "fc2": 0.15, "fc3": 0.0}
PARAMS = ["fc1.weight", "fc1.bias"]


@pytest.fixture(autouse=True)
def counted(monkeypatch):
    """Counts the underlying (uncached) reads per run; the cache starts and ends empty."""
    reads: collections.Counter = collections.Counter()

    def counting(store, run_id, **kw):
        reads[run_id] += 1
        yield from iter_update_batches(store, run_id, **kw)

    batch_cache.clear()
    monkeypatch.setattr(batch_cache, "iter_update_batches", counting)
    yield reads
    batch_cache.clear()


def _run(store: Store, rid: str, *, seed: int, rounds: int = 4, role: str = "shadow") -> None:
    write_synthetic_run(store, rid, corpus="a", shapes=TINY_SHAPES,
                        speakers=[(f"s{j}", "FM"[j % 2]) for j in range(8)], rounds=rounds,
                        clients_per_round=4, seed=seed, signal=LEAK, role=role)  # fmt: skip


def _read(store: Store, rid: str, batch_rows: int = 5) -> list:
    return list(batch_cache.batches(store, rid, params=PARAMS, batch_rows=batch_rows))


def _same(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        g.keys.equals(w.keys) and all(np.array_equal(g.arrays[p], w.arrays[p]) for p in PARAMS)
        for g, w in zip(got, want)
    )


def test_a_second_read_replays_the_first_decode(tmp_path, counted):
    store = Store(tmp_path)
    _run(store, "r0", seed=0)
    oracle = list(iter_update_batches(store, "r0", params=PARAMS, batch_rows=5))
    first, second = _read(store, "r0"), _read(store, "r0")
    assert counted["r0"] == 1 and _same(first, oracle) and _same(second, oracle)
    with pytest.raises(ValueError, match="read-only"):
        second[0].arrays["fc1.weight"][0, 0] = 1.0
    # another batch size or parameter list is another key
    _read(store, "r0", batch_rows=7)
    list(batch_cache.batches(store, "r0", params=["fc2.weight"], batch_rows=5))
    assert counted["r0"] == 3


def test_a_rewritten_harvest_is_read_again(tmp_path, counted):
    store = Store(tmp_path)
    _run(store, "r0", seed=0)
    before = _read(store, "r0")
    _run(store, "r0", seed=1, rounds=5)  # same run id, new file (size and mtime differ)
    after = _read(store, "r0")
    assert counted["r0"] == 2
    assert _same(after, list(iter_update_batches(store, "r0", params=PARAMS, batch_rows=5)))
    assert not _same(after, before)


def test_the_byte_cap_and_least_recently_used_order(tmp_path, counted, monkeypatch):
    store = Store(tmp_path)
    for i, rid in enumerate(("a", "b")):
        _run(store, rid, seed=i)
    size = sum(sum(a.nbytes for a in b.arrays.values()) for b in _read(store, "a"))
    batch_cache.clear()
    counted.clear()
    monkeypatch.setattr(batch_cache, "CACHE_BYTES", size)  # room for one run
    _read(store, "a"), _read(store, "a"), _read(store, "b"), _read(store, "a")
    assert (counted["a"], counted["b"]) == (2, 1)  # b evicted a; a evicted b
    assert batch_cache.held_bytes() == size
    monkeypatch.setattr(batch_cache, "CACHE_BYTES", size - 1)  # a run over the cap: streamed
    batch_cache.clear()
    _read(store, "a"), _read(store, "a")
    assert counted["a"] == 4 and batch_cache.held_bytes() == 0  # 2 before, 2 now


def test_two_evaluations_of_one_target_decode_it_once(tmp_path, counted):
    store = Store(tmp_path / "warm")
    for i in range(2):
        _run(store, f"shadow{i}", seed=i, rounds=8)
    _run(store, "target", seed=9, rounds=6, role="target")

    def config(model: str) -> AttackConfig:
        return AttackConfig(target_run="target", shadow_runs=("shadow0", "shadow1"),
                            layers=("fc1",), model=AttackModelConfig(name=model, epochs=3),
                            n_avg=(1,), trials=1, bootstrap=0)  # fmt: skip

    warm = [run_attack(config(m), store) for m in ("logreg_colcorr", "logreg_stats")]
    assert counted["target"] == 1
    # oracle: each evaluation alone in a cold process (cache emptied, results deleted)
    cold_store = Store(tmp_path / "cold")
    for i in range(2):
        _run(cold_store, f"shadow{i}", seed=i, rounds=8)
    _run(cold_store, "target", seed=9, rounds=6, role="target")
    cold = []
    for m in ("logreg_colcorr", "logreg_stats"):
        batch_cache.clear()
        cold.append(run_attack(config(m), cold_store))
    keep = ("layer", "protocol", "calibration", "uar", "auc", "n_scored")
    for w, c in zip(warm, cold):
        assert [[r[k] for k in keep] for r in w] == [[r[k] for k in keep] for r in c]

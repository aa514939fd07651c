"""Smoke test of `sergrad bench fl` pieces at the demo shape (no timing asserted)."""

from __future__ import annotations

import torch

from sergrad.bench.fl import SHAPES, Setup, _build, flops_per_round, measure


def test_measure_smoke(monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setitem(SHAPES, "tiny", (16, (8, 4), 5, 10, 4))
    for engine in ("reference", "fast"):
        out = measure(Setup("tiny", "fedsgd", engine), seconds=0.0)
        assert out["updates_per_s"] > 0 and out["gflops"] > 0
        # one thread, so CPU time <= wall time (up to clock granularity)
        assert out["updates_per_cpu_s"] >= 0.9 * out["updates_per_s"]
    out = measure(Setup("tiny", "fedavg", "fast"), seconds=0.0, harvest="float16")
    assert out["bytes_per_update"] > 0


def test_harvest_options_store_what_they_say_and_leave_no_temp_folder(monkeypatch, tmp_path):
    """Every 5th round stores 1/5 of the trained updates; fc1 only and the sketch store fewer
    bytes; the reference layout is written too; the temp harvest folders are gone afterwards."""
    import tempfile

    torch.set_num_threads(1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # fc1 16x64: its sketch (3 x 80 values) is well below the full update's 1024 values (at
    # 8x16 the sign-packed full updates compress below the sketch's random floats)
    monkeypatch.setitem(SHAPES, "tiny", (64, (16, 4), 5, 10, 4))
    setup = Setup("tiny", "fedavg", "fast")
    full = measure(setup, seconds=0.0, harvest="float16")
    every = measure(setup, seconds=0.0, harvest="float16, every 5th round")
    fc1 = measure(setup, seconds=0.0, harvest="float16, fc1 only")
    sketch = measure(setup, seconds=0.0, harvest="float16, sketch")
    ref = measure(setup, seconds=0.0, harvest="reference layout, float16")
    assert abs(full["bytes_per_trained_update"] / full["bytes_per_update"] - 1) < 1e-9
    ratio = every["bytes_per_trained_update"] / every["bytes_per_update"]
    assert abs(ratio - 0.2) < 1e-9
    assert fc1["bytes_per_update"] < full["bytes_per_update"]
    assert 0 < sketch["bytes_per_update"] < full["bytes_per_update"]
    assert ref["bytes_per_update"] > 0
    assert list(tmp_path.iterdir()) == []


def test_flops_count_by_hand(monkeypatch):
    monkeypatch.setitem(SHAPES, "tiny", (16, (8, 4), 5, 10, 4))
    part, model, algo, _, _ = _build(Setup("tiny", "fedavg", "fast"))
    dim, (h1, h2), _, per_client, per_round = SHAPES["tiny"]
    assert len(part.clients) == per_round and part.x.shape[1] == dim
    weights = dim * h1 + h1 * h2 + h2 * 4
    samples = sum(c.n_train for c in part.clients)
    # forward 2*w, weight grads 2*w, input grads 2*(w - dim*h1) per sample
    assert flops_per_round(part, model, algo) == samples * (6 * weights - 2 * dim * h1)


def test_stacked_rate_smoke(monkeypatch):
    from sergrad.bench.fl import stacked_rate

    torch.set_num_threads(1)
    monkeypatch.setitem(SHAPES, "tiny", (16, (8, 4), 5, 10, 4))
    got = stacked_rate("tiny", "fedavg", "cpu", 2, 0.0)
    assert got["alone"] > 0 and got["stacked"] > 0

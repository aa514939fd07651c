"""Smoke test of `sergrad bench sweep` at tiny size (no timing is asserted)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_bench_sweep_smoke():
    from sergrad.bench.sweep import measure

    out = measure(runs=6, seconds=0.01, cores=2, per_trial=2)
    assert out["ok"] == 6
    assert out["ideal_s"] > 0 and out["wall_s"] >= out["ray_startup_s"] >= 0
    assert out["overhead"] == pytest.approx(out["wall_s"] / out["ideal_s"] - 1, abs=1e-3)

"""Issue 11 item 5: the demo's centralized check shows progress and is cached in the store,
so a resumed demo does not recompute it."""

from __future__ import annotations

from pathlib import Path

import pytest

import sergrad.centralized
from sergrad.demo import print_summary
from sergrad.store import Store
from sergrad.sweep.expand import expand
from sergrad.sweep.inputs import ensure_inputs
from sergrad.sweep.schema import load_sweep

SMALL = Path(__file__).resolve().parents[1] / "sweeps" / "small.yaml"


def test_centralized_check_progress_and_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERGRAD_CACHE", str(tmp_path / "cache"))
    uri = str(tmp_path / "store")
    plan = expand(load_sweep(SMALL), uri)
    ensure_inputs(Store(uri), plan.inputs)
    said: list[str] = []
    calls = []
    real = sergrad.centralized.centralized_check

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(sergrad.centralized, "centralized_check", counted)
    capsys.readouterr()
    print_summary(uri, plan.inputs, say=said.append)
    first = capsys.readouterr().out
    assert len(calls) == len(plan.inputs)
    assert any("centralized check studio x prosody: fold 1/" in m for m in said)
    assert "emotion UAR" in first

    monkeypatch.setattr(
        sergrad.centralized, "centralized_check", lambda *a, **k: pytest.fail("recomputed")
    )
    print_summary(uri, plan.inputs, say=said.append)
    assert capsys.readouterr().out == first  # same numbers, read back from the store

"""Smoke test of `sergrad bench attack --quick` (numbers are reported, never asserted)."""

from __future__ import annotations

import argparse

from sergrad.bench import attack


def test_bench_quick_prints_a_markdown_row_per_model(capsys):
    parser = argparse.ArgumentParser()
    attack.add_arguments(parser)
    args = parser.parse_args(["--quick", "--models", "logreg_stats", "cnn"])
    assert attack.main(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["model", "logreg_stats", "cnn"]


def test_bench_quick_comovement_leak(capsys):
    parser = argparse.ArgumentParser()
    attack.add_arguments(parser)
    args = parser.parse_args(["--quick", "--leak", "comovement", "--models", "logreg_colcorr"])
    assert attack.main(args) == 0
    out = capsys.readouterr().out
    assert "comovement leak (signal 0.15)" in out and "| logreg_colcorr |" in out


def test_comovement_updates_are_sums_of_outer_products():
    import numpy as np

    shapes = {"fc1.weight": (5, 7), "fc1.bias": (5,)}
    patterns = np.random.default_rng(0).standard_normal((2, 7))
    genders = np.array([0, 1, 1])
    one = attack.comovement_updates(
        shapes, genders, patterns, signal=1.0, rng=np.random.default_rng(1), samples=1
    )
    for k in range(3):  # one sample: the update is exactly outer(a, x), rank 1
        w = one["fc1.weight"][k].reshape(5, 7)
        assert np.linalg.matrix_rank(w, tol=1e-5) == 1
    rng = np.random.default_rng(2)
    many = attack.comovement_updates(shapes, genders, patterns, signal=0.0, rng=rng, samples=4)
    rng = np.random.default_rng(2)  # the same draws, by hand
    for k in range(3):
        x = rng.standard_normal((4, 7))
        x += 0.0 * rng.standard_normal((4, 1)) * patterns[genders[k]]
        a = rng.standard_normal((4, 5))
        np.testing.assert_allclose(many["fc1.weight"][k], (a.T @ x / 4).ravel(), rtol=1e-5)
        np.testing.assert_allclose(many["fc1.bias"][k], a.mean(axis=0), rtol=1e-5)

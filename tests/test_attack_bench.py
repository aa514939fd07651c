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

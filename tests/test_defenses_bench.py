"""`sergrad bench dp` smoke test at tiny sizes (no timing is asserted)."""

from __future__ import annotations

import argparse

import pytest

from sergrad.bench import dp

pytestmark = pytest.mark.filterwarnings("ignore")


def test_bench_dp_smoke(capsys):
    parser = argparse.ArgumentParser()
    dp.add_arguments(parser)
    args = parser.parse_args(
        ["--dim", "12", "--hidden", "6", "5", "--batch", "4", "--repeats", "2", "--warmup", "1"]
    )
    assert dp.main(args) == 0
    out = capsys.readouterr().out
    for row in ("fast DP-SGD, clip + noise", "Opacus hooks", "Opacus ghost clipping",
                "Gaussian noise draw alone", "fast DP-SGD / (manual + noise draw)"):  # fmt: skip
        assert row in out
    rows = dp.run(args)
    assert {r[0] for r in rows} == {4} and len(rows) == 8
    assert all(r[2] > 0 for r in rows)
    assert rows[0][3] == 1.0  # the nn.Module baseline is the unit
    ms = {name: t for _, name, t, _, _ in rows}
    floor = ms["non-private (manual)"] + ms["Gaussian noise draw alone"]
    ratio = rows[-1]
    assert ratio[2] == pytest.approx(floor) and ratio[3] == pytest.approx(
        ms["fast DP-SGD, clip + noise"] / floor
    )

"""A DP run whose `runs` file is missing or unreadable: the epsilon plot leaves its rounds out
with a note (figure title, warning) and the report is written, instead of crashing."""

from __future__ import annotations

import polars as pl
import pytest
from store_fixtures import build_store

from sergrad.analysis import plots_runs
from sergrad.analysis.report import write_report
from sergrad.errors import DataError

DP_SGD = "alpha-dp_sgd-2.0-f0"  # the fixture's only dp_sgd run with per-round epsilons


def _runs_file(root):
    return root / "runs" / "corpus=alpha" / f"{DP_SGD}.parquet"


@pytest.mark.parametrize("damage", ["removed", "corrupt"])
def test_report_skips_a_dp_run_without_its_runs_row(tmp_path, damage):
    fx = build_store(tmp_path / "store")
    full = plots_runs.epsilon_frame(fx.root)
    assert "dp_sgd" in full["defense"].to_list()
    path = _runs_file(tmp_path / "store")
    if damage == "removed":
        path.unlink()
    else:
        path.write_bytes(b"PAR1 not parquet")
    with pytest.warns(UserWarning, match=f"1 run\\(s\\) left out.*{DP_SGD}"):
        data = plots_runs.plot_epsilon(fx.root, tmp_path / "e.png")
    # the oracle: the full store's series minus the damaged run's (it was alone in its series)
    assert data.sort(data.columns).equals(
        full.filter(pl.col("defense") != "dp_sgd").sort(full.columns)
    )
    assert plots_runs.skipped_runs(fx.root) == [DP_SGD]
    with pytest.warns(UserWarning):
        html = write_report(fx.root, tmp_path / "report")
    assert (tmp_path / "report" / "epsilon.png").stat().st_size > 1000
    assert "Privacy loss against rounds" in html.read_text()


def test_only_undescribed_runs_is_no_data_with_the_reason(tmp_path):
    fx = build_store(tmp_path / "store")
    for path in (tmp_path / "store" / "runs").rglob("*.parquet"):
        path.unlink()
    with pytest.warns(UserWarning), pytest.raises(DataError, match="runs row is missing"):
        plots_runs.plot_epsilon(fx.root, tmp_path / "e.png")

"""The canary audits in analysis, on the hand-built fixture store (tests/store_fixtures.py):
the canary eps_lb beside the accountant's epsilon in `table eps`, the eps_lb figure and the
report's findings; a violation (eps_lb above the accountant) flagged loudly."""

from __future__ import annotations

import shutil

import pytest

from sergrad.analysis import findings, plots
from sergrad.analysis.audits import canary_table
from sergrad.store import Store
from tests.store_fixtures import audit_row, build_store, write_audits


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    build_store(root)
    return str(root)


def test_canary_table_from_the_fixture(fixture_store):
    t = canary_table(fixture_store)
    assert t.height == 1
    r = t.row(0, named=True)
    assert (r["target_corpus"], r["defense_name"], r["level"], r["mechanism"]) == (
        "alpha", "dp_sgd", 2.0, "dp_sgd")  # fmt: skip
    assert r["canary_eps_lb"] == pytest.approx(0.4)  # max over folds 0.3, 0.4
    assert (r["n_audits"], r["n_canaries"], r["n_guesses"], r["n_correct_max"]) == (2, 200, 40, 31)
    assert r["accountant_epsilon"] == 2.0 and r["delta"] == 1e-5
    assert r["audits_failed"] == 1 and r["canary_violation"] is False
    assert canary_table(fixture_store, where="fold = 0")["canary_eps_lb"][0] == pytest.approx(0.3)


def test_eps_table_shows_the_canary_beside_the_attack_and_the_accountant(fixture_store):
    t = plots.eps_table(fixture_store)
    dp = t.filter(t["defense_name"] == "dp_sgd").row(0, named=True)
    assert dp["canary_eps_lb"] == pytest.approx(0.4) and dp["canary_n_canaries"] == 200
    assert dp["canary_accountant_epsilon"] == 2.0 and dp["epsilon"] == 2.0
    assert dp["eps_lb"] is not None  # the gender attack's bound stays beside it
    others = t.filter(t["defense_name"] != "dp_sgd")
    assert others.height > 0 and others["canary_eps_lb"].null_count() == others.height


def test_findings_and_figure_label_the_canary_audit(fixture_store, tmp_path):
    html = findings.findings_html(fixture_store, n_boot=50, n_perm=50)
    assert "canary audit ε̂ ≥ 0.40 (95%, 200 canaries x 2 run(s)) vs accountant ε = 2" in html
    assert "VIOLATION" not in html
    out = tmp_path / "eps_lb.png"
    data = plots.plot_eps_lb(fixture_store, out)
    assert out.stat().st_size > 0 and data["canary_eps_lb"].drop_nulls().to_list() == [0.4]


def test_a_canary_violation_is_flagged_loudly(fixture_store, tmp_path, capsys):
    from sergrad.cli import main

    root = tmp_path / "bad"
    shutil.copytree(fixture_store, root)
    write_audits(Store(root), [{**audit_row("au-bad", "alpha-dp_sgd-2.0-f1", fold=1, eps_lb=5.0,
                                            n_correct=40), "target_corpus": "alpha"}])  # fmt: skip
    t = canary_table(str(root))
    assert t["canary_violation"].to_list() == [True] and t["canary_eps_lb"][0] == 5.0
    html = findings.findings_html(str(root), n_boot=50, n_perm=50)
    assert "DP VIOLATION (canary ε̂ above the accountant&#x27;s ε: a bug)" in html
    assert (
        plots.eps_table(str(root)).filter(plots.pl.col("canary_violation"))["defense_name"][0]
        == "dp_sgd"
    )
    plots.plot_eps_lb(str(root), tmp_path / "bad.png")
    capsys.readouterr()
    assert main(["table", "eps", str(root), "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "DP VIOLATION (the canary audit's eps_lb above the accountant's" in err
    assert "alpha dp_sgd 2.0" in err
    assert main(["table", "eps", fixture_store, "--format", "csv"]) == 0
    assert "VIOLATION" not in capsys.readouterr().err

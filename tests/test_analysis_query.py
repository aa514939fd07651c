"""`sergrad query` and the report, on the fixture store."""

from __future__ import annotations

import polars as pl
import pytest
from store_fixtures import SWEEP, build_store

from sergrad.analysis.query import run_query, write_frame
from sergrad.analysis.report import write_report
from sergrad.cli import main
from sergrad.errors import ConfigError


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store"))


def test_query_against_naive_count(fx):
    got = run_query(fx.root, "SELECT corpus, count(*) AS n FROM runs WHERE status = 'ok' "
                    "GROUP BY corpus ORDER BY corpus")  # fmt: skip
    expected = {}
    for r in fx.runs:
        if r["status"] == "ok":
            expected[r["corpus"]] = expected.get(r["corpus"], 0) + 1
    assert dict(got.iter_rows()) == expected
    res = run_query(fx.root, "SELECT avg(uar) AS u FROM results WHERE layer = 'fc1' "
                    "AND protocol = 'per_update' AND defense_name = 'user_dp'")  # fmt: skip
    rows = [a["uar"] for a in fx.attacks if a["layer"] == "fc1" and a["protocol"] == "per_update"
            and a["defense"] == "user_dp"]  # fmt: skip
    assert res.item() == pytest.approx(sum(rows) / len(rows))
    n = run_query(fx.root, "SELECT count(*) FROM scored_predictions WHERE y IS NOT NULL").item()
    assert n == 80


def test_query_cli_outputs(fx, tmp_path, capsys):
    sql = "SELECT target_run, ser_uar, epsilon FROM results WHERE defense = 'user_dp' AND layer = 'fc1' AND protocol = 'per_update'"
    assert main(["query", str(fx.root), sql, "-o", str(tmp_path / "o.csv")]) == 0
    assert main(["query", str(fx.root), sql, "-o", str(tmp_path / "o.parquet")]) == 0
    csv, pq = pl.read_csv(tmp_path / "o.csv"), pl.read_parquet(tmp_path / "o.parquet")
    assert csv.height == pq.height == 4
    assert sorted(pq["epsilon"].to_list()) == pytest.approx([1.0, 1.1, 4.0, 4.1])
    assert csv.sort("target_run")["ser_uar"].to_list() == pytest.approx(
        pq.sort("target_run")["ser_uar"].to_list()
    )
    assert main(["query", str(fx.root), "SELECT count(*) AS n FROM attacks"]) == 0
    assert str(len(fx.attacks)) in capsys.readouterr().out
    assert main(["table", "ser", str(fx.root), "-o", str(tmp_path / "ser.csv")]) == 0
    assert pl.read_csv(tmp_path / "ser.csv").height == 8


def test_query_errors(fx, tmp_path, capsys):
    with pytest.raises(ConfigError, match="tables: runs, rounds, attacks, predictions, results"):
        run_query(fx.root, "SELECT * FROM nope")
    with pytest.raises(ConfigError, match="query failed"):
        run_query(fx.root, "SELEC * FROM runs")
    with pytest.raises(ConfigError, match="unknown format"):
        write_frame(pl.DataFrame({"a": [1]}), tmp_path / "x.xlsx")
    assert main(["query", str(fx.root), "SELECT * FROM nope"]) == 2
    assert "tables:" in capsys.readouterr().err


def test_report(fx, tmp_path):
    path = write_report(fx.root, tmp_path / "rep")
    text = path.read_text()
    for heading in ("SER utility", "Privacy-utility trade-off", "Attack success against averaged",
                    "Per-layer leakage", "Privacy loss against rounds", "Attack ROC",
                    "Sweep definition"):  # fmt: skip
        assert heading in text
    for name in ("tradeoff", "updates", "layers", "epsilon", "eps_lb", "roc"):
        f = tmp_path / "rep" / f"{name}.png"
        assert f.read_bytes().startswith(b"\x89PNG")
        assert f"href='{name}.png'" in text
    assert text.count("data:image/png;base64,") == 6
    assert text.index("Key findings") < text.index("SER utility (undefended")
    assert '"name": "fixture"' in text and SWEEP["name"] == "fixture"
    assert "no data" not in text
    assert "63.0 ± 4.1 (n=4)" in text  # alpha / prosody / fedsgd SER UAR


def test_report_on_empty_and_partial_store(fx, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "-o", str(tmp_path / "r1")]) == 0
    text = (tmp_path / "r1" / "index.html").read_text()
    assert text.count("no data") >= 6 and "no sweep.json" in text
    # runs only: SER table present, attack sections empty
    import shutil

    part = tmp_path / "part"
    shutil.copytree(fx.root / "runs", part / "runs")
    text = write_report(part, tmp_path / "r2").read_text()
    assert "63.0 ± 4.1" in text and "no data" in text

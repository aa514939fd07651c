"""`sergrad query` and the report, on the fixture store."""

from __future__ import annotations

import io
import json

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
    with pytest.raises(
        ConfigError, match="tables: runs, rounds, attacks, predictions, audits, results"
    ):
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
                    "Sweep settings"):  # fmt: skip
        assert heading in text
    for name in ("tradeoff", "updates", "layers", "epsilon", "eps_lb", "roc"):
        f = tmp_path / "rep" / f"{name}.png"
        assert f.read_bytes().startswith(b"\x89PNG")
        assert f"href='{name}.png'" in text
    assert text.count("data:image/png;base64,") == 6
    assert text.index("Key findings") < text.index("SER utility (undefended")
    assert "corpora: [alpha, beta]" in text and SWEEP["name"] == "fixture"  # YAML grid
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


def _readme_queries() -> list[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "analysis" / "README.md").read_text()
    section = text.split("## Worked queries")[1].split("\n## ")[0]
    return [" ".join(q.split()) for q in re.findall(r'sergrad query STORE "(.*?)"', section, re.S)]


def test_readme_worked_queries_against_naive_loops(fx):
    by_layer, ser, levels = (run_query(fx.root, q) for q in _readme_queries())
    # 1. attack by layer, undefended, per_update n_avg 1: naive mean per (corpus, algo, attack, layer)
    naive: dict[tuple, list[float]] = {}
    for a in fx.attacks:
        if a["defense"] == "none" and a["posthoc"] == "none" and a["protocol"] == "per_update":
            key = (a["target_corpus"], a["algorithm"], a["attack"], a["layer"])
            naive.setdefault(key, []).append(a["uar"])
    got = {tuple(r[:4]): (r[4], r[5]) for r in by_layer.iter_rows()}
    assert got == {k: (pytest.approx(sum(v) / len(v)), len(v)) for k, v in naive.items()}
    assert got[("alpha", "fedsgd", "cnn", "fc2")][1] == 8  # 2 features x 2 folds x 2 seeds
    # 2. SER by defense: target runs with status ok only
    runs = [r for r in fx.runs if r["status"] == "ok" and r["role"] == "target"]
    naive = {}
    for r in runs:
        key = (r["corpus"], r["algorithm"], r["defense"], r["defense_level"])
        naive.setdefault(key, []).append(r["test_uar"])
    got = {tuple(r[:4]): (r[4], r[5]) for r in ser.iter_rows()}
    assert got == {k: (pytest.approx(sum(v) / len(v)), len(v)) for k, v in naive.items()}
    # 3. user_dp across levels: epsilon = level + 0.1 * fold, folds 0 and 1
    assert levels["level"].to_list() == [1.0, 4.0]
    assert levels["epsilon"].to_list() == pytest.approx([1.05, 4.05])
    assert levels["n"].to_list() == [2, 2]
    shrink = {1.0: 0.1, 4.0: 0.4}
    for lv, uar in zip(levels["level"], levels["attack_uar"]):  # (0.80 + 0.02 + 0.005 - 0.5) * s
        assert uar == pytest.approx(0.5 + (0.825 - 0.5) * shrink[lv])


def test_query_schema_and_formats(fx, capsys):
    from sergrad.analysis.query import schema_frame

    schema = schema_frame(fx.root)
    values = {(t, c): v for t, c, _, v in schema.iter_rows()}
    assert values[("attacks", "protocol")] == "baseline_majority, per_client, per_update"
    assert values[("runs", "defense")] == "dp_sgd, layer_perturbation, none, user_dp"
    assert values[("results", "defense_name")].split(", ") == sorted(
        ["dp_sgd", "layer_perturbation", "layer_perturbation (post-hoc)", "none", "user_dp"]
    )
    assert values[("runs", "run_id")] == ""  # ids are never listed
    assert main(["query", str(fx.root), "--schema"]) == 0
    out = capsys.readouterr().out
    assert "results (view" in out and "defense_name" in out
    from sergrad.analysis.query import format_schema

    narrow = format_schema(schema, width=60).splitlines()
    assert max(len(x) for x in narrow[:-1]) <= 60 and "cut to fit 60" in narrow[-1]
    sql = "SELECT layer, count(*) AS n FROM attacks GROUP BY layer ORDER BY layer"
    assert main(["query", str(fx.root), sql, "--format", "csv"]) == 0
    n = sum(a["layer"] == "fc1" for a in fx.attacks)
    assert capsys.readouterr().out.splitlines()[:2] == ["layer,n", f"fc1,{n}"]
    assert main(["query", str(fx.root), sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {"layer": "fc1", "n": n}
    assert main(["table", "ser", str(fx.root), "--format", "csv"]) == 0
    ser = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert ser.height == 8 and {"corpus", "uar_mean", "uar_ci_low"} <= set(ser.columns)
    assert main(["query", str(fx.root), sql, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "| layer | n |",
        "|---|---:|",
        f"| fc1 | {n} |",
    ]


def test_printed_table_fits_the_width():
    from sergrad.analysis.terminal import render

    frame = pl.DataFrame({f"column_{i}": ["x" * (5 + 7 * i)] * 3 for i in range(12)})
    for width in (40, 80, 200):
        text = render(frame, "table", width=width)
        lines = text.splitlines()
        assert max(len(x) for x in lines[:-1]) <= width
        shown = lines[0].split()
        hidden = [c for c in frame.columns if c not in shown]
        note = lines[-1]
        assert (
            (f"{len(hidden)} more column(s) not shown: " + ", ".join(hidden)) in note
            if hidden
            else "not shown" not in note
        )
        assert "cut to fit" in note  # the widest columns are cut
    assert "cut" not in render(frame.select("column_0"), "table", width=80)


def test_query_piped_into_head_exits_quietly(fx):
    import subprocess
    import sys

    cmd = (f"{sys.executable} -m sergrad.cli query {fx.root} 'SELECT * FROM results' "
           "--max-rows 500 | head -2")  # fmt: skip
    res = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True)
    assert len(res.stdout.splitlines()) == 2
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr


def test_report_tables_state_constants_fold_and_link_csv(fx, tmp_path):
    text = write_report(fx.root, tmp_path / "rep").read_text()
    ser = pl.read_csv(tmp_path / "rep" / "ser.csv")  # the whole table, constants included
    assert ser.height == 8 and set(ser["corpus"]) == {"alpha", "beta"}
    # n_folds and n_seeds are 2 in every SER row: stated once above the table, not as columns
    ser_html = text.split("<h2>SER utility (undefended")[1].split("<h2>")[0]
    assert "In every row: n_folds = <b>2</b> · n_seeds = <b>2</b>" in ser_html
    assert "n_folds</th>" not in ser_html and ">corpus</th>" in ser_html
    assert "href='ser.csv'" in ser_html and "<details>" not in ser_html  # 8 rows: not folded
    updates = pl.read_csv(tmp_path / "rep" / "updates.csv")
    assert updates.height > 15
    upd_html = text.split("Attack vs number of averaged updates")[1].split("<h2>")[0]
    assert f"<summary>{updates.height} rows: show the table</summary>" in upd_html


def test_report_where_vocabulary_and_atomic_folder(fx, tmp_path, monkeypatch):
    from sergrad.analysis import report

    for cond in ("target_corpus = 'alpha'", "corpus = 'alpha'"):
        out = tmp_path / cond.split()[0]
        assert main(["report", str(fx.root), "-o", str(out), "--where", cond]) == 0
        text = (out / "index.html").read_text()
        assert "not shown" not in text and "no data" not in text
        assert set(pl.read_csv(out / "ser.csv")["corpus"]) == {"alpha"}
        assert set(pl.read_csv(out / "layers.csv")["target_corpus"]) == {"alpha"}
    # a column only attack views have: the SER and epsilon sections say so, the rest filter
    text = write_report(fx.root, tmp_path / "lay", where="layer = 'fc1'").read_text()
    assert text.count("not shown: the filter reads layer") == 2
    # a column no view has: exit 2 and no folder at all
    bad = tmp_path / "bad"
    assert main(["report", str(fx.root), "-o", str(bad), "--where", "corpuss = 'a'"]) == 2
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))
    # a report that fails half-way leaves the earlier report untouched and no temp folder
    good = tmp_path / "target_corpus"
    before = (good / "index.html").read_text()

    def boom(ctx):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(report, "SECTIONS", [report.SECTIONS[0], boom])
    with pytest.raises(RuntimeError, match="exploded"):
        write_report(fx.root, good)
    assert (good / "index.html").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a folder with other contents is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="holds no report"):
        write_report(fx.root, other)
    assert (other / "notes.txt").read_text() == "keep me"

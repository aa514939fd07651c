"""Analysis of attacks on several speaker attributes (issue 15 item 5): the attribute facet of
the verdicts and tables, categorical and numeric verdicts against naive recomputations from
the stored predictions, the per-attribute figure and its report section."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from sergrad.analysis import verdicts as V
from sergrad.analysis import verdicts_numeric as VN
from sergrad.analysis.load import scan
from sergrad.analysis.plots_attributes import has_several_attributes, plot_attributes
from sergrad.analysis.report import write_report
from sergrad.analysis.tables import layer_table
from sergrad.cli import main
from tests.attribute_store import ATTRIBUTES, build
from tests.store_fixtures import build_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("attributes")
    build(root)
    return root


def test_pooled_uar_over_classes_against_a_naive_loop():
    rng = np.random.default_rng(0)
    runs, hit, tot = [], np.zeros(3), np.zeros(3)
    for _ in range(3):
        y = np.r_[0, 1, 2, rng.integers(0, 3, 5)]
        n = rng.integers(1, 6, len(y)).astype(float)
        counts = np.array([rng.multinomial(int(k), [1 / 3] * 3) for k in n], float)
        runs.append((y, counts, n))
        for yy, c, nn in zip(y, counts, n):
            hit[yy] += c[yy]
            tot[yy] += nn
    assert V.pooled_uar(runs) == pytest.approx(np.mean(hit / tot))
    # the binary form (predicted-male counts) is the two-class case
    y, k, n = np.array([1, 0]), np.array([3.0, 1.0]), np.array([4.0, 4.0])
    assert V.pooled_uar([(y, k, n)]) == V.pooled_uar([(y, np.c_[n - k, k], n)]) == 0.75


def _naive_categorical(store, rows: pl.DataFrame) -> float:
    """Pool every evaluation's stored predictions with its own class offsets (naive loops)."""
    preds = scan(store, "predictions").collect()
    hit, tot = {}, {}
    for r in rows.iter_rows(named=True):
        classes, off = json.loads(r["classes"]), json.loads(r["class_offsets"])
        p = preds.filter((pl.col("eval_id") == r["eval_id"]) & (pl.col("layer") == r["layer"])
                         & (pl.col("protocol") == r["protocol"]) & (pl.col("n_avg") == r["n_avg"]))  # fmt: skip
        for label, proba in zip(p["label"], p["proba"]):
            pred = classes[int(np.argmax(np.log(proba) + np.array(off)))]
            hit[label] = hit.get(label, 0) + (pred == label)
            tot[label] = tot.get(label, 0) + 1
    return float(np.mean([hit[c] / tot[c] for c in tot]))


def test_categorical_verdict_pools_stored_predictions_with_their_offsets(store):
    v = V.verdicts(store, n_boot=100, n_perm=100)
    assert set(v["attribute"]) == set(ATTRIBUTES)  # one cell family per attribute
    cell = v.filter((pl.col("attribute") == "age_group") & (pl.col("layer") == "fc1")).row(
        0, named=True
    )
    assert cell["chance"] == pytest.approx(1 / 3) and cell["n_runs"] == 2
    rows = scan(store, "attacks").collect().filter(
        (pl.col("attribute") == "age_group") & (pl.col("layer") == "fc1")
        & (pl.col("protocol") == cell["protocol"]) & (pl.col("n_avg") == 1)
        & (pl.col("calibration") == cell["calibration"]) & (pl.col("attack") == cell["attack"])
    )  # fmt: skip
    assert rows.height == 2
    assert cell["uar"] == pytest.approx(_naive_categorical(store, rows))
    assert cell["uar_ci_low"] > 1 / 3 and cell["significant"]  # fc1 leaks age
    fc2 = v.filter((pl.col("attribute") == "age_group") & (pl.col("layer") == "fc2")).row(
        0, named=True
    )
    assert not fc2["significant"]  # fc2 does not


def test_numeric_verdict_gain_against_a_naive_recomputation(store):
    v = VN.numeric_verdicts(store, n_boot=100, n_perm=100)
    assert set(v["attribute"]) == {"age"}
    cell = v.filter(pl.col("layer") == "fc1").row(0, named=True)
    rows = scan(store, "attacks").collect().filter(
        (pl.col("attribute") == "age") & (pl.col("layer") == "fc1")
        & (pl.col("protocol") == cell["protocol"]) & (pl.col("n_avg") == 1)
        & (pl.col("attack") == cell["attack"])
    )  # fmt: skip
    preds = scan(store, "predictions").collect()
    gain = n = 0.0
    for r in rows.iter_rows(named=True):
        p = preds.filter((pl.col("eval_id") == r["eval_id"]) & (pl.col("layer") == "fc1")
                         & (pl.col("protocol") == r["protocol"]) & (pl.col("n_avg") == 1))  # fmt: skip
        y, yhat = p["value"].to_numpy(), p["prediction"].to_numpy()
        gain += np.sum(np.abs(r["baseline_value"] - y) - np.abs(yhat - y))
        n += len(y)
    assert cell["mae_gain"] == pytest.approx(gain / n)
    assert cell["mae_gain_ci_low"] > 0 and cell["significant"] and cell["spearman"] > 0.5
    assert not v.filter(pl.col("layer") == "fc2")["significant"][0]
    # the combined verdict table carries the numeric rows below the class rows
    all_ = V.verdicts(store, n_boot=50, n_perm=50)
    assert all_.filter(pl.col("attribute") == "age")["mae_gain"].is_not_null().all()


def test_table_verdicts_by_and_where_attribute(store, capsys):
    assert main(["table", "verdicts", str(store), "--by", "attribute", "--where",
                 "attribute = 'age_group'", "--format", "csv"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    head = lines[0].split(",")
    assert head[0] == "attribute" and len(lines) == 1 + 3  # fc1, fc2, fusion
    assert {line.split(",")[0] for line in lines[1:]} == {"age_group"}


def test_tables_never_average_two_attributes(store):
    t = layer_table(store)
    assert set(t["attribute"]) == {"gender", "age_group", "language"}  # numeric age left out
    assert t.group_by(["attribute", "attack", "calibration", "layer"]).len()["len"].max() == 1


def test_attribute_figure_and_report_section(store, tmp_path):
    data = plot_attributes(store, tmp_path / "attributes.png")
    assert (tmp_path / "attributes.png").stat().st_size > 10_000
    classes = data.filter(pl.col("scale") == "classes")
    assert (classes["leak"] - (classes["uar"] - classes["chance"])).abs().max() < 1e-12
    report = write_report(store, tmp_path / "report")
    html = (
        (report.parent / "index.html").read_text()
        if report.is_file()
        else (report / "index.html").read_text()
    )
    assert "Leakage per speaker attribute" in html
    assert (tmp_path / "report" / "attributes.csv").exists()


def test_old_stores_read_as_gender_and_show_no_attribute_section(tmp_path):
    build_store(tmp_path / "old")  # written without an attribute column
    assert not has_several_attributes(tmp_path / "old")
    v = V.verdicts(tmp_path / "old", n_boot=20, n_perm=20)
    assert set(v["attribute"]) == {"gender"}


def test_figures_draw_each_attributes_own_chance(store, tmp_path):
    """The averaged-updates and trade-off panels of age_group draw chance at 1/3, gender's
    at 1/2 (they drew 50% for every attribute)."""
    from sergrad.analysis import tables as T
    from sergrad.analysis.plots import plot_updates

    data = plot_updates(store, tmp_path / "u.png")
    for attribute, want in (("age_group", 1 / 3), ("gender", 0.5), ("language", 0.5)):
        panel = data.filter(pl.col("attribute") == attribute)
        assert T.chance_of(panel) == pytest.approx(want), attribute
    assert T.chance_of(pl.DataFrame({"x": [1]}), "tpr_at_10fpr") == 0.1

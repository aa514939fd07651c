"""Tables against hand computation on the fixture store (tests/store_fixtures.py)."""

from __future__ import annotations

import math
import statistics

import polars as pl
import pytest
from scipy import stats as sps
from store_fixtures import LAYER, PROTO, SHRINK, build_store

from sergrad.analysis import load, tables
from sergrad.analysis.stats import summarize, t_critical
from sergrad.errors import ConfigError, DataError, StoreError
from sergrad.privacy_bound import dp_attack_ceiling


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store"))


def _ci(values):
    """Naive oracle: mean, sample std, t-interval half-width."""
    n = len(values)
    m = sum(values) / n
    s = statistics.stdev(values)
    return m, s, sps.t.ppf(0.975, n - 1) * s / math.sqrt(n)


def test_t_critical_and_single_observation():
    assert t_critical(4) == pytest.approx(3.182446305, abs=1e-6)
    assert math.isnan(t_critical(1))
    one = summarize(pl.DataFrame({"g": ["a"], "v": [0.7]}), ["g"], "v").row(0, named=True)
    assert one["v_mean"] == 0.7 and one["v_n"] == 1
    assert one["v_std"] is None and one["v_ci_low"] is None and one["v_ci_high"] is None


def test_scan_tables_and_partition_columns(fx):
    runs = load.scan(fx.root, "runs").collect()
    assert runs.height == len(fx.runs)
    assert runs.schema["corpus"] == pl.String
    assert set(runs["corpus"]) == {"alpha", "beta", "alpha+beta"}
    attacks = load.scan(fx.root, "attacks").collect()
    assert attacks.height == len(fx.attacks)
    res = load.results(fx.root).collect()
    assert res.height == len(fx.attacks)  # left join keeps every attack row exactly once
    row = res.filter(pl.col("target_run") == "alpha-user_dp-1.0-f1").row(0, named=True)
    assert row["epsilon"] == pytest.approx(1.1) and row["ser_uar"] == pytest.approx(0.56)
    assert row["fold"] == 1 and row["dp_protects"] == "speakers"
    rr = load.round_results(fx.root).collect()
    assert rr.height == 4 * 5 and set(rr["defense"]) == {"none", "user_dp", "dp_sgd"}
    with pytest.raises(StoreError, match="valid: runs, rounds"):
        load.scan(fx.root, "nope")


def test_empty_store_gives_schema_columns(tmp_path):
    for table in load.TABLE_NAMES:
        frame = load.scan(tmp_path, table).collect()
        assert frame.height == 0
        assert frame.columns == list(load.polars_schema(table))
    assert tables.ser_table(tmp_path).height == 0
    assert tables.tradeoff_table(tmp_path).height == 0
    assert load.read_sweep(tmp_path) is None


def test_ser_table_matches_hand_computation(fx):
    t = tables.ser_table(fx.root)
    assert t.height == 2 * 2 * 2  # corpus x feature x algorithm, undefended only
    row = t.filter(
        (pl.col("corpus") == "alpha")
        & (pl.col("feature_set") == "prosody")
        & (pl.col("algorithm") == "fedsgd")
    ).row(0, named=True)
    # UARs 0.60, 0.62, 0.64, 0.66 (the failed run is excluded): worked by hand
    assert row["uar_n"] == 4 and row["n_folds"] == 2 and row["n_seeds"] == 2
    assert row["uar_mean"] == pytest.approx(0.63)
    assert row["uar_std"] == pytest.approx(math.sqrt(0.002 / 3))
    half = 3.182446305 * math.sqrt(0.002 / 3) / 2
    assert row["uar_ci_low"] == pytest.approx(0.63 - half)
    assert row["uar_ci_high"] == pytest.approx(0.63 + half)
    assert row["acc_mean"] == pytest.approx(0.68)
    # every cell against a naive loop over the written rows
    for r in t.iter_rows(named=True):
        vals = [x["test_uar"] for x in fx.runs if x["role"] == "target" and x["status"] == "ok"
                and x["defense"] == "none" and (x["corpus"], x["feature_set"], x["algorithm"])
                == (r["corpus"], r["feature_set"], r["algorithm"])]  # fmt: skip
        m, s, h = _ci(vals)
        assert r["uar_mean"] == pytest.approx(m) and r["uar_std"] == pytest.approx(s)
        assert r["uar_ci_high"] - r["uar_mean"] == pytest.approx(h)
    by_defense = tables.ser_table(fx.root, defense=None)
    assert by_defense.height == 8 + 5  # plus the 5 defended (defense, level) groups
    assert "alpha+beta" not in by_defense["corpus"].to_list()  # shadow runs excluded


def test_layer_table(fx):
    t = tables.layer_table(fx.root)
    assert set(t["layer"]) == set(LAYER) and set(t["defense_name"]) == {"none"}
    r = t.filter((pl.col("target_corpus") == "beta") & (pl.col("layer") == "fc2")
                 & (pl.col("feature_set") == "mfcc") & (pl.col("algorithm") == "fedavg")).row(0, named=True)  # fmt: skip
    vals = [LAYER["fc2"] + 0.01 * f for f in (0, 1) for _ in (0, 1)]  # folds x seeds
    m, s, h = _ci(vals)
    assert r["uar_mean"] == pytest.approx(m) and r["uar_std"] == pytest.approx(s)
    assert r["uar_ci_low"] == pytest.approx(m - h)
    auc = tables.layer_table(fx.root, metric="auc", protocol="per_client", n_avg=0)
    assert auc["auc_mean"].max() == pytest.approx(
        min(1.0, LAYER["fc1"] + PROTO[("per_client", 0)] + 0.005 + 0.05)
    )
    with pytest.raises(ConfigError, match="valid: uar, acc"):
        tables.layer_table(fx.root, metric="f1")


def test_updates_table_orders_all_last(fx):
    where = "target_corpus = 'alpha' AND feature_set = 'prosody' AND algorithm = 'fedavg'"
    t = tables.updates_table(fx.root, where=where)
    assert set(t["layer"]) == {"fc1"}
    ud = t.filter((pl.col("defense_name") == "user_dp") & (pl.col("level") == 1.0))
    assert ud["n_avg_label"].to_list() == ["1", "5", "all"]
    expected = [
        0.5 + (0.8 + PROTO[("per_client", n)] + 0.005 - 0.5) * SHRINK[("user_dp", 1.0)]
        for n in (1, 5, 0)
    ]
    assert ud["uar_mean"].to_list() == pytest.approx(expected)
    assert t["defense_name"][0] == "none"  # undefended first
    with pytest.raises(DataError, match="layer 'fc9'"):
        tables.updates_table(fx.root, layer="fc9")


def test_tradeoff_table(fx):
    where = "target_corpus = 'alpha' AND feature_set = 'prosody' AND algorithm = 'fedavg'"
    t = tables.tradeoff_table(fx.root, where=where)
    names = list(zip(t["defense_name"], t["level"]))
    assert names[0] == ("none", None)
    assert set(names) == {("none", None), ("dp_sgd", 2.0), ("layer_perturbation", 0.01),
                          ("layer_perturbation", 0.1), ("layer_perturbation (post-hoc)", 0.05),
                          ("user_dp", 1.0), ("user_dp", 4.0)}  # fmt: skip
    u1 = t.filter((pl.col("defense_name") == "user_dp") & (pl.col("level") == 1.0)).row(
        0, named=True
    )
    assert u1["epsilon"] == pytest.approx(1.1) and u1["epsilon_mean"] == pytest.approx(1.05)
    assert u1["ceiling"] == pytest.approx(dp_attack_ceiling(1.1, 1e-3))
    assert u1["ceiling"] == pytest.approx((math.exp(1.1) + 1e-3) / (1 + math.exp(1.1)))
    assert u1["ceiling_applies"] and u1["ser_mean"] == pytest.approx(0.555) and u1["n_runs"] == 2
    expected = [0.5 + (0.8 + 0.02 + 0.01 * f - 0.5) * 0.1 for f in (0, 1)]
    assert u1["uar_mean"] == pytest.approx(sum(expected) / 2)
    dp = t.filter(pl.col("defense_name") == "dp_sgd").row(0, named=True)
    assert dp["ceiling"] is not None and not dp["ceiling_applies"]  # protects utterances only
    lp = t.filter(pl.col("defense_name") == "layer_perturbation").row(0, named=True)
    assert lp["epsilon"] is None and lp["ceiling"] is None
    none = t.filter(pl.col("defense_name") == "none").row(0, named=True)
    # undefended: 4 runs (folds x seeds); the post-hoc rows are their own group
    assert none["n_runs"] == 4 and none["ser_mean"] == pytest.approx(0.73)
    ph = t.filter(pl.col("defense_name") == "layer_perturbation (post-hoc)").row(0, named=True)
    assert ph["n_runs"] == 2 and ph["ser_mean"] == pytest.approx(0.71)  # seed-0 runs: 0.70, 0.72

"""Verdicts: cluster bootstrap coverage and permutation test on simulated data with a known
answer; the strongest legitimate attacker per cell on a hand-built store with predictions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sergrad import schema
from sergrad.analysis import tables
from sergrad.analysis import verdicts as V
from sergrad.analysis.findings import findings_html
from sergrad.analysis.stats import summarize
from sergrad.store import Store


def _simulated_runs(rng, *, acc_mean: float, runs=4, speakers=20, per_speaker=10, kappa=10.0):
    """Speakers with their own accuracy ~ Beta(mean acc_mean): predictions correlated within a
    speaker. The population UAR is acc_mean for both classes."""
    out = []
    a, b = acc_mean * kappa, (1 - acc_mean) * kappa
    for _ in range(runs):
        y = np.arange(speakers) % 2
        acc = rng.beta(a, b, speakers)
        correct = rng.binomial(per_speaker, acc)
        k = np.where(y == 1, correct, per_speaker - correct).astype(float)  # predicted male
        out.append((y, k, np.full(speakers, float(per_speaker))))
    return out


def test_pooled_uar_against_a_naive_loop():
    rng = np.random.default_rng(0)
    runs = _simulated_runs(rng, acc_mean=0.7)
    y_all, pred_all = [], []
    for y, k, n in runs:  # expand back to individual predictions
        for yi, ki, ni in zip(y, k, n):
            y_all += [yi] * int(ni)
            pred_all += [1] * int(ki) + [0] * int(ni - ki)
    y_all, pred_all = np.array(y_all), np.array(pred_all)
    naive = np.mean([np.mean(pred_all[y_all == c] == c) for c in (0, 1)])
    assert V.pooled_uar(runs) == pytest.approx(naive)


def test_cluster_bootstrap_covers_the_true_uar_about_95_percent():
    rng = np.random.default_rng(1)
    hits, inside = 0, True
    sims = 150
    for _ in range(sims):
        runs = _simulated_runs(rng, acc_mean=0.7)
        lo, hi = V.cluster_bootstrap(runs, n_boot=200, rng=rng)
        inside &= 0.0 <= lo <= hi <= 1.0
        hits += lo <= 0.7 <= hi
    assert inside
    assert 0.88 <= hits / sims <= 1.0


def test_permutation_test_calibrated_under_the_null_and_powerful_under_a_leak():
    rng = np.random.default_rng(2)
    null_p = [
        V.permutation_pvalue(_simulated_runs(rng, acc_mean=0.5), n_perm=100, rng=rng)
        for _ in range(100)
    ]
    assert np.mean(np.array(null_p) < 0.05) <= 0.12
    assert all(0 < p <= 1 for p in null_p)
    leak = V.permutation_pvalue(_simulated_runs(rng, acc_mean=0.75), n_perm=200, rng=rng)
    assert leak < 0.01


def test_t_interval_needs_three_runs_and_stays_in_range():
    two = summarize(pl.DataFrame({"g": ["a", "a"], "v": [0.2, 0.9]}), ["g"], "v").row(0, named=True)
    assert two["v_ci_low"] is None and two["v_ci_high"] is None
    high = summarize(pl.DataFrame({"g": ["a"] * 3, "v": [0.9, 1.0, 1.0]}), ["g"], "v")
    r = high.row(0, named=True)
    assert 0 <= r["v_ci_low"] <= r["v_mean"] <= r["v_ci_high"] <= 1.0


# --- a hand-built store: one cell, three attackers, per-client predictions ----------------


def _preds(rng, *, strength: float, shift: float, speakers=12, trials=5) -> list[dict]:
    rows = []
    for t in range(trials):
        for s in range(speakers):
            g = "M" if s % 2 else "F"
            p = 0.5 + shift + strength * (1 if g == "M" else -1) + rng.normal(0, 0.05)
            rows.append({"layer": "fc1", "protocol": "per_client", "n_avg": 1, "trial": t,
                         "round": -1, "client_id": s, "speaker_id": f"spk{s}", "gender": g,
                         "p_male": float(np.clip(p, 0, 1))})  # fmt: skip
    return rows


def _store(root) -> Store:
    """Undefended target runs r0, r1, r2 (folds 0-2); per run three evaluations:
    weak (strength 0.02), shifted (strength 0.08, every score + 0.4: degenerate at 0.5, the
    prior threshold recovers it) and adaptive (strength 0.1)."""
    store = Store(root)
    rng = np.random.default_rng(3)
    for fold in range(3):
        rid = f"r{fold}"
        run = {"run_id": rid, "status": "ok", "role": "target", "feature_set": "f",
               "algorithm": "fedsgd", "fold": fold, "seed": 0, "defense": "none",
               "test_uar": 0.6 + 0.01 * fold, "dp_protects": "none"}  # fmt: skip
        store.write_table("runs", schema.table_from_rows([run], schema.RUNS),
                          partition=("corpus", "c"), name=rid)  # fmt: skip
        for name, strength, shift, adaptive in (("weak", 0.02, 0.0, False),
                                                ("shifted", 0.08, 0.4, False),
                                                ("adapt", 0.04, 0.0, True)):  # fmt: skip
            eid = f"{name}-{rid}"
            preds = _preds(rng, strength=strength, shift=shift)
            store.write_table("predictions", schema.table_from_rows(preds, schema.PREDICTIONS),
                              partition=("eval_id", eid), name="predictions")  # fmt: skip
            p = np.array([r["p_male"] for r in preds])
            y = np.array([r["gender"] == "M" for r in preds])
            rows = []
            for cal, t in (("shadow", 0.5), ("prior", float(np.median(p))), ("oracle", 0.0)):
                pred = p >= t
                u = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
                if cal == "oracle":
                    u = 1.0  # an upper bound that must never win
                rows.append({"eval_id": eid, "status": "ok", "attack": name, "adaptive": adaptive,
                             "target_run": rid, "layer": "fc1", "protocol": "per_client",
                             "n_avg": 1, "calibration": cal, "threshold": t, "uar": u,
                             "auc": 0.9, "degenerate": bool(pred.all() or not pred.any()),
                             "feature_set": "f", "algorithm": "fedsgd", "defense": "none",
                             "posthoc": "none", "n_clients": 12,
                             "eps_lb": 0.1 * (fold + 1) if cal == "shadow" else None})  # fmt: skip
            store.write_table("attacks", schema.table_from_rows(rows, schema.ATTACKS),
                              partition=("target_corpus", "c"), name=eid)  # fmt: skip
    return store


def test_verdict_is_the_strongest_legitimate_attacker(tmp_path):
    _store(tmp_path)
    v = V.verdicts(tmp_path, n_boot=200, n_perm=200)
    assert v.height == 1
    row = v.row(0, named=True)
    # shifted + prior beats adaptive and weak; oracle (uar 1.0) never competes
    assert (row["attack"], row["calibration"]) == ("shifted", "prior")
    assert row["n_candidates"] == 6 and row["uar"] < 1.0
    assert row["n_runs"] == 3 and row["n_clients"] == 36
    assert 0.5 < row["uar_ci_low"] <= row["uar"] <= row["uar_ci_high"] <= 1.0
    assert row["p_value"] < 0.05 and row["significant"]
    assert row["p_value_adjusted"] == pytest.approx(min(1.0, 6 * row["p_value"]))
    assert "cluster bootstrap" in row["interval"]
    # split by calibration: the shadow-calibrated best is the adaptive attack, and the
    # degenerate shifted/shadow rows are flagged, not "chance"
    split = V.verdicts(tmp_path, extra_keys=["calibration"], n_boot=50, n_perm=50)
    shadow = split.filter(pl.col("calibration") == "shadow").row(0, named=True)
    assert shadow["attack"] == "adapt"
    cands = V.candidates(tmp_path)
    shifted = cands.filter((pl.col("attack") == "shifted") & (pl.col("calibration") == "shadow"))
    assert shifted["degenerate"].item() and shifted["uar_mean"].item() == pytest.approx(0.5)
    text = V.verdict_text(row)
    assert "chance" not in text and "(AUC 0.90, p=" in text and "12 speakers, 3 runs" in text


def test_not_significant_reads_no_leak_detected(tmp_path):
    row = {"uar": 0.53, "uar_ci_low": 0.45, "uar_ci_high": 0.6, "p_value": 0.3,
           "significant": False, "attack": "cnn", "adaptive": False, "calibration": "prior",
           "n_clients": 12, "n_runs": 2}  # fmt: skip
    assert V.verdict_text(row).startswith("no leak detected at this sample size")


def test_attack_tables_split_by_calibration(tmp_path):
    _store(tmp_path)
    t = tables.layer_table(tmp_path, protocol="per_client", n_avg=1)
    assert set(t["calibration"]) == {"shadow", "prior", "oracle"}
    assert {"auc_mean", "tpr_at_10fpr_mean", "n_degenerate"} <= set(t.columns)
    shifted = t.filter((pl.col("attack") == "shifted") & (pl.col("calibration") == "shadow"))
    assert shifted["n_degenerate"].item() == 3


def test_findings_section_from_the_store(tmp_path):
    from sergrad.analysis.findings import findings_frame, findings_html

    _store(tmp_path)
    f = findings_frame(tmp_path, n_boot=50, n_perm=50)
    assert f.height == 1 and f["layer"].to_list() == ["fc1"]
    v = V.verdicts(tmp_path, n_boot=50, n_perm=50).row(0, named=True)
    assert f["uar_1"].item() == pytest.approx(v["uar"])
    page = findings_html(tmp_path, n_boot=50, n_perm=50)
    assert page.startswith("<h2>Key findings</h2>")
    assert "SER utility without defense: 61.0% [" in page and "(n=3)" in page
    assert f"{v['uar'] * 100:.1f}% [" in page and "chance" not in page
    assert "not evaluated" in page  # no n_avg = all rows in this store


def test_eps_table_plot_and_cli(tmp_path, capsys):
    from sergrad.analysis import plots
    from sergrad.cli import main

    _store(tmp_path)
    t = plots.eps_table(tmp_path)
    assert t.height == 1 and t["eps_lb"].item() == pytest.approx(0.3)  # max over runs, attackers
    assert not t["eps_violation"].item()
    data = plots.plot_eps_lb(tmp_path, tmp_path / "eps.png")
    assert data.height == 1 and (tmp_path / "eps.png").stat().st_size > 1000
    assert main(["table", "verdicts", str(tmp_path), "-o", str(tmp_path / "v.csv")]) == 0
    v = pl.read_csv(tmp_path / "v.csv")
    assert v["attack"].to_list() == ["shifted"] and v["calibration"].to_list() == ["prior"]


def test_degenerate_verdict_is_named_not_called_private():
    row = {"uar": 0.5, "uar_ci_low": 0.5, "uar_ci_high": 0.5, "p_value": 1.0,
           "significant": False, "degenerate": True, "auc": 0.8, "attack": "cnn",
           "adaptive": False, "calibration": "shadow", "n_speakers": 12, "n_runs": 2}  # fmt: skip
    text = V.verdict_text(row)
    assert text.startswith("degenerate threshold") and "AUC 0.80" in text
    assert "chance" not in text


def test_a_cells_interval_and_p_value_do_not_depend_on_the_query(tmp_path):
    """The report and `table verdicts --where` must print the same numbers for one cell."""
    _store(tmp_path)
    split = V.verdicts(tmp_path, extra_keys=["calibration"], n_boot=100, n_perm=100)
    alone = V.verdicts(tmp_path, where="calibration = 'shadow'", n_boot=100, n_perm=100)
    a = split.filter(pl.col("calibration") == "shadow").row(0, named=True)
    b = alone.row(0, named=True)
    assert a["attack"] == b["attack"]
    for col in ("uar", "uar_ci_low", "uar_ci_high", "p_value"):
        assert a[col] == b[col], col


def test_the_report_findings_and_table_verdicts_print_the_same_cell(tmp_path):
    """Same resampling counts everywhere (stats.N_BOOT / N_PERM): the findings' numbers of a
    cell are those of `sergrad table verdicts` (they differed when the report used 500)."""
    _store(tmp_path)
    table = V.verdicts(tmp_path).row(0, named=True)
    page = findings_html(tmp_path)
    assert f"{100 * table['uar']:.1f}% [{100 * table['uar_ci_low']:.1f}, " in page
    assert f"p={table['p_value']:.2g}" in page

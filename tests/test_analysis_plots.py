"""Every plot on the fixture store: files created in the right format, plotted data checked."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from store_fixtures import LAYER, PROTO, build_store

from sergrad.analysis import plots, plots_runs
from sergrad.analysis.roc import auc, roc_curve
from sergrad.cli import main
from sergrad.errors import ConfigError, DataError

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store"))


def _check_file(path):
    data = path.read_bytes()
    assert len(data) > 1000
    assert data.startswith(MAGIC[path.suffix])
    if path.suffix == ".svg":
        assert b"<svg" in data[:2000]


def test_tradeoff(fx, tmp_path):
    out = tmp_path / "t.png"
    data = plots.plot_tradeoff(fx.root, out)
    _check_file(out)
    assert data.height == 8 + 6  # 8 undefended settings + 6 defended (defense, level) points
    assert set(data["layer"]) == {"fc1"}
    # the x axis is the verdict: the per-client UAR at n_avg 1 of the only attacker (cnn)
    none = data.filter((pl.col("defense_name") == "none") & (pl.col("target_corpus") == "alpha"))
    assert none["uar"].to_list() == pytest.approx(
        [LAYER["fc1"] + PROTO[("per_client", 1)] + 0.005] * 4
    )
    ceil = data.filter(pl.col("ceiling_applies"))
    assert set(ceil["defense_name"]) == {"user_dp"}


def test_updates_layers_pdf_svg(fx, tmp_path):
    data = plots.plot_updates(fx.root, tmp_path / "u.svg", where="target_corpus = 'alpha'")
    _check_file(tmp_path / "u.svg")
    assert set(data["target_corpus"]) == {"alpha"} and set(data["n_avg"]) == {1, 5, 0}
    data = plots.plot_layers(fx.root, tmp_path / "l.pdf")
    _check_file(tmp_path / "l.pdf")
    assert data.height == 8 * 3 and set(data["defense_name"]) == {"none"}


def test_epsilon(fx, tmp_path):
    data = plots_runs.plot_epsilon(fx.root, tmp_path / "e.png")
    _check_file(tmp_path / "e.png")
    assert data.height == 3 * 5  # user_dp x2 levels + dp_sgd, 5 rounds each
    last = data.filter((pl.col("defense") == "user_dp") & (pl.col("defense_level") == 4.0)
                       & (pl.col("round") == 5))  # fmt: skip
    assert last["epsilon_mean"].item() == pytest.approx(4.0)


def test_roc_curve_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # ties on purpose
    fpr, tpr = roc_curve(y, s)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(y, s))


def test_roc(fx, tmp_path):
    default = plots_runs.plot_roc(fx.root, tmp_path / "d.png")  # undefended targets only
    assert set(default["defense_name"]) == {"none"}
    where = "defense_name IN ('none', 'user_dp')"
    data = plots_runs.plot_roc(fx.root, tmp_path / "r.png", where=where)
    _check_file(tmp_path / "r.png")
    assert set(data["defense_name"]) == {"none", "user_dp"}
    for eid, name in (
        ("ev-alpha-prosody-fedavg-f0-s0", "none"),
        ("ev-alpha-user_dp-1.0-f0", "user_dp"),
    ):
        rows = [r for r in fx.predictions[eid] if r["gender"] is not None]
        y = [r["gender"] == "M" for r in rows]
        expected = roc_auc_score(y, [r["p_male"] for r in rows])
        got = data.filter(pl.col("defense_name") == name)
        assert got["auc"][0] == pytest.approx(expected)
        assert got["n_pos"][0] + got["n_neg"][0] == 40  # the unlabelled row is skipped


def test_roc_keeps_the_strongest_curves_when_capped(fx, tmp_path, monkeypatch):
    """Undefended rows have a null level: the cap must still keep their curves."""
    where = "defense_name IN ('none', 'user_dp')"
    full = plots_runs.plot_roc(fx.root, tmp_path / "a.png", where=where)
    groups = full.group_by(plots_runs.ROC_GROUPS).agg(pl.col("auc").first())
    assert groups.height >= 2 and groups["level"].null_count() >= 1
    monkeypatch.setattr(plots_runs, "MAX_ROC_CURVES", groups.height - 1)
    capped = plots_runs.plot_roc(fx.root, tmp_path / "b.png", where=where)
    kept = capped.group_by(plots_runs.ROC_GROUPS).agg(pl.col("auc").first())
    assert kept.height == groups.height - 1
    assert sorted(kept["auc"]) == sorted(groups["auc"])[1:]  # the weakest curve dropped


def test_cli_plot_commands(fx, tmp_path, capsys):
    w = "fold = 0 AND feature_set = 'prosody' AND target_corpus = 'alpha'"
    where = {"epsilon": "fold = 0 AND corpus = 'alpha'"}  # rounds view: corpus, not target_corpus
    for kind in ("tradeoff", "layers", "updates", "epsilon", "roc"):
        out = tmp_path / f"{kind}.png"
        assert (
            main(["plot", kind, str(fx.root), "-o", str(out), "--where", where.get(kind, w)]) == 0
        )
        _check_file(out)
    assert main(["plot", "roc", str(fx.root), "-o", str(tmp_path / "x.png"),
                 "--by", "target_corpus,defense_name"]) == 0  # fmt: skip
    assert main(["plot", "tradeoff", str(fx.root), "-o", str(tmp_path / "m.png"),
                 "--n-avg", "0", "--layer", "fc2", "--where", "target_corpus = 'beta'"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["plot", "tradeoff", str(fx.root), "-o", str(tmp_path / "a.png"),
                 "--metric", "auc"]) == 2  # fmt: skip
    assert "the verdict" in capsys.readouterr().err
    assert main(["plot", "tradeoff", str(fx.root), "-o", str(tmp_path / "bad.png"),
                 "--where", "no_such_column = 1"]) == 2  # fmt: skip
    assert "no_such_column" in capsys.readouterr().err


def test_errors(fx, tmp_path):
    with pytest.raises(ConfigError, match="valid: .png, .svg, .pdf"):
        plots.plot_tradeoff(fx.root, tmp_path / "t.jpg")
    empty = tmp_path / "empty"
    empty.mkdir()
    for fn in (plots.plot_tradeoff, plots.plot_updates, plots.plot_layers,
               plots_runs.plot_epsilon, plots_runs.plot_roc):  # fmt: skip
        with pytest.raises(DataError, match="no data"):
            fn(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()

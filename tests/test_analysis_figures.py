"""Figure layout on the fixture store: distinct styles, no overlapping labels, every series
visible, panels that keep their size, the DP ceiling inside the frame."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_hex
from store_fixtures import build_store

from sergrad.analysis import figure as F
from sergrad.analysis import plots, plots_runs
from sergrad.analysis import tables as T


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store"))


def _texts(fig, ax):
    r = F.renderer(fig)
    return [t for t in ax.texts if t.get_visible()], r


def test_place_labels_never_overlap_and_stay_inside():
    fig, (ax,) = F.panels(1)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    # 12 labels on 4 nearly coincident points and 3 isolated ones
    pts = [(5, 5)] * 4 + [(5.1, 5.05)] * 5 + [(1, 1), (9, 9), (1, 9)]
    labels = [(x, y, f"ε={i}.5", "#000000", i % 3) for i, (x, y) in enumerate(pts)]
    dropped = F.place_labels(fig, ax, labels)
    texts, r = _texts(fig, ax)
    assert len(texts) + dropped == len(labels) and len(texts) >= 6
    boxes = [t.get_window_extent(r) for t in texts]
    frame = ax.get_window_extent(r)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    for b in boxes:
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
    assert "hidden to avoid overlap" in ax.get_title()
    # the isolated points always keep their label (nothing else competes for their space)
    assert {"ε=9.5", "ε=10.5", "ε=11.5"} <= {t.get_text() for t in texts}


def test_colour_and_marker_maps_are_distinct():
    names = ["none", "user_dp", "dp_sgd", "layer_perturbation", "layer_perturbation (post-hoc)",
             "udp_paper", "mine_a", "mine_b", "mine_c"]  # fmt: skip
    colours = F.colour_map(names)
    assert colours["none"] == F.NO_DEFENSE_COLOR
    assert len(set(colours.values())) == len(names)
    assert colours["user_dp"] == F.colour_map(["none", "user_dp"])["user_dp"]  # stable
    shades = [F.shade(colours["user_dp"], k, 4) for k in range(4)]
    assert len(set(shades)) == 4
    markers = F.marker_map(["cnn", "logreg_stats", "logreg_colcorr"])
    assert len(set(markers.values())) == 3


def test_tradeoff_styles_labels_ceiling(fx):
    from sergrad.analysis.verdicts import verdict_tradeoff

    data = verdict_tradeoff(fx.root, where="target_corpus = 'alpha' AND feature_set = 'prosody'"
                            " AND algorithm = 'fedavg'", n_boot=50, n_perm=50)  # fmt: skip
    fig = plots.tradeoff_figure(data)
    ax = fig.axes[0]
    # a single panel keeps the normal panel size (the legend widens the figure instead)
    w, h = (ax.get_window_extent(F.renderer(fig)).size / fig.dpi).tolist()
    assert w > 3.0 and h > 2.5
    # one colour per defense in the panel, black for none
    series = [c for c in ax.containers]
    colours = {to_hex(c.lines[0].get_color()) for c in series}
    assert len(colours) == data["defense_name"].n_unique()
    # ceiling markers ('|') inside the x limits
    lo, hi = ax.get_xlim()
    ceil = [ln for ln in ax.lines if ln.get_marker() == "|"]
    assert ceil and all(lo <= x <= hi for ln in ceil for x in ln.get_xdata())
    # a defense with exactly dp_sgd's point is drawn beside it on screen
    twin = data.filter(pl.col("defense_name") == "dp_sgd").with_columns(
        defense_name=pl.lit("dp_twin")
    )
    fig2 = plots.tradeoff_figure(pl.concat([data, twin]))
    ax2 = fig2.axes[0]
    F.renderer(fig2)
    drawn = {}
    for c in ax2.containers:
        line = c.lines[0]
        xy = line.get_transform().transform(np.column_stack(line.get_data()))
        drawn[to_hex(line.get_color())] = xy[0]
    twin_colour = to_hex(F.colour_map(pl.concat([data, twin])["defense_name"])["dp_twin"])
    dp_colour = to_hex(F.colour_map(pl.concat([data, twin])["defense_name"])["dp_sgd"])
    assert abs(drawn[twin_colour][0] - drawn[dp_colour][0]) > 2  # pixels apart
    assert drawn[twin_colour][1] == pytest.approx(drawn[dp_colour][1])
    texts, r = _texts(fig, ax)
    labelled = [t for t in texts if t.get_text().startswith("ε=") or t.get_text()[0].isdigit()]
    assert labelled
    for a, b in itertools.combinations(labelled, 2):
        assert not a.get_window_extent(r).overlaps(b.get_window_extent(r))


def test_updates_series_never_hide_each_other(fx):
    data = T.updates_table(fx.root, where="target_corpus = 'alpha' AND feature_set = 'prosody' "
                           "AND algorithm = 'fedavg'")  # fmt: skip
    # a second attack model with exactly the undefended values: drawn beside, not on top
    twin = data.filter(pl.col("defense_name") == "none").with_columns(attack=pl.lit("twin"))
    data = pl.concat([data, twin])
    fig = plots.updates_figure(data)
    ax = fig.axes[0]
    lines = [c.lines[0] for c in ax.containers]
    assert len(lines) == data.select(T.DEFENSE_KEYS + T.ATTACKER_KEYS).n_unique()
    points = [(round(x, 6), round(y, 6)) for ln in lines for x, y in zip(*ln.get_data())]
    assert len(points) == len(set(points))  # no two series share a drawn point
    styles = {(to_hex(ln.get_color()), ln.get_marker(), str(ln.get_linestyle())) for ln in lines}
    assert len(styles) == len(lines)


def test_equal_epsilon_curves_share_one_labelled_line():
    rounds = [1, 2, 3]
    rows = []
    for algo, eps in (("fedavg", [1.0, 2.0, 3.0]), ("fedsgd", [1.0, 2.0, 3.0]),
                      ("fedprox", [1.5, 2.5, 3.5])):  # fmt: skip
        for r, e in zip(rounds, eps):
            rows.append({"algorithm": algo, "defense_level": 1.0, "round": r, "epsilon_mean": e,
                         "epsilon_min": e, "epsilon_max": e})  # fmt: skip
    merged = plots_runs._merge_equal_curves(pl.DataFrame(rows), ["algorithm", "defense_level"])
    assert [m[0] for m in merged] == [["fedavg", "fedsgd"], ["fedprox"]]


def test_roc_axes_use_the_panel_width(fx):
    data = plots_runs.roc_frame(fx.root, where="defense_name IN ('none', 'user_dp')")
    fig = plots_runs.roc_figure(data, by=plots_runs.ROC_GROUPS, protocol="per_update", n_avg=1)
    ax = fig.axes[0]
    r = F.renderer(fig)
    assert ax.get_window_extent(r).width > 0.75 * fig.bbox.width  # legend below, not beside
    colours = [to_hex(ln.get_color()) for ln in ax.lines if not ln.get_label().startswith("chance")]
    assert len(colours) == len(set(colours)) == data.select(plots_runs.ROC_GROUPS).n_unique()
    assert np.isfinite(ax.get_xlim()).all()


def test_roc_axis_labels_name_the_attribute_classes():
    """Gender keeps 'female predicted male'; another binary attribute names its own classes;
    mixed attributes fall back to the generic rule (never 'male' for a language)."""
    import polars as pl

    from sergrad.analysis.plots_runs import _roc_axis_labels

    gender = pl.DataFrame({"classes": ["F/M", "F/M"]})
    language = pl.DataFrame({"classes": ["L1/L2"]})
    assert _roc_axis_labels(gender) == (
        "false positive rate (female predicted male)",
        "true positive rate (male detected)",
    )
    assert _roc_axis_labels(language) == (
        "false positive rate (L1 predicted L2)",
        "true positive rate (L2 detected)",
    )
    x, y = _roc_axis_labels(pl.concat([gender, language]))
    assert "male" not in x + y and "2nd class" in y

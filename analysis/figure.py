"""Figure helpers shared by the plots: Okabe-Ito palette, panel grids, labels, saving.

Uses matplotlib's object-oriented API (`matplotlib.figure.Figure`, no pyplot state), so no
GUI backend is ever touched; the output format follows the file extension.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import offset_copy

from sergrad.errors import ConfigError

# Okabe & Ito (2008) colour-blind-safe palette; black is reserved for "no defense".
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow (last: weak on white)
)
# More distinct colours once Okabe-Ito runs out (Paul Tol's muted and dark hues).
EXTRA_COLOURS: tuple[str, ...] = (
    "#882255", "#117733", "#332288", "#999933", "#AA4499", "#44AA99", "#661100", "#888888",
)  # fmt: skip
PALETTE: tuple[str, ...] = OKABE_ITO + EXTRA_COLOURS
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
LINESTYLES: tuple = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
NO_DEFENSE_COLOR = "#000000"
FORMATS: tuple[str, ...] = (".png", ".svg", ".pdf")
METRIC_LABELS: dict[str, str] = {
    "uar": "attack UAR",
    "acc": "attack accuracy",
    "auc": "attack AUC",
    "tpr_at_1fpr": "attack TPR at 1% FPR",
    "tpr_at_10fpr": "attack TPR at 10% FPR",
}


def check_output(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(
            f"output {path}: unknown figure format {path.suffix!r}; valid: {', '.join(FORMATS)}"
        )
    return path


def panels(n: int, *, width: float = 4.4, height: float = 3.6, max_cols: int = 3):
    """A figure with n axes in a grid (unused cells hidden); returns (fig, flat list of axes)."""
    ncols = max(1, min(max_cols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


# The shipped defenses keep their colour in every figure; other names take the next free one.
DEFENSE_COLOURS: dict[str, str] = {
    "dp_sgd": OKABE_ITO[0],
    "layer_perturbation": OKABE_ITO[1],
    "layer_perturbation (post-hoc)": OKABE_ITO[2],
    "user_dp": OKABE_ITO[3],
    "udp_paper": OKABE_ITO[4],
}


def colour_map(names, *, none: str = "none") -> dict[str, str]:
    """A distinct colour per name: `none` black, shipped defenses their DEFENSE_COLOURS entry
    (so every figure of a report agrees), other names the unused colours in sorted order."""
    names = sorted({n for n in names if n != none})
    out = {none: NO_DEFENSE_COLOR, **{n: DEFENSE_COLOURS[n] for n in names if n in DEFENSE_COLOURS}}
    free = [c for c in PALETTE if c not in out.values()]
    for i, n in enumerate(n for n in names if n not in out):
        out[n] = free[i % len(free)]
    return out


def plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (20, 200, 0.5), not 2×10^1."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)

    def minor(v: float, _) -> str:  # 2x and 5x of each decade; every tick within one decade
        lo, hi = sorted(axis.get_view_interval())
        if lo > 0 and hi / lo < 10:
            return f"{v:.3g}"
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in (2, 5) else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def marker_map(names) -> dict[str, str]:
    """A distinct marker per name (sorted), e.g. one per attack model."""
    return {n: marker(i) for i, n in enumerate(sorted(set(names)))}


def shade(hex_colour: str, k: int, n: int) -> str:
    """The k-th of n distinct shades of a colour (darker to lighter); itself when n = 1."""
    if n <= 1:
        return hex_colour
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    t = -0.35 + 0.8 * k / (n - 1)  # < 0: towards black, > 0: towards white
    mixed = rgb * (1 + t) if t < 0 else rgb + (255 - rgb) * t
    if hex_colour == NO_DEFENSE_COLOR:  # black: shades of grey
        mixed = np.full(3, 200.0 * k / (n - 1))
    return "#" + "".join(f"{int(round(v)):02X}" for v in np.clip(mixed, 0, 255))


def dodge(j: int, k: int, *, step: float = 0.08) -> float:
    """x offset of series j of k on a categorical axis, so equal values stay visible."""
    step = min(step, 0.6 / max(k, 1))
    return (j - (k - 1) / 2) * step


def coincident_shift(seen: dict[str, list], name: str, x, y, *, step: float = 4.0) -> float:
    """Horizontal shift in points for series `name` when one of its points coincides (to 0.05)
    with a point of a series drawn before it in the panel (`seen` collects them)."""
    here = {(round(a * 20), round(b * 20)) for a, b in zip(x, y) if a == a and b == b}
    clashes = sum(1 for pts in seen.values() if here & pts)
    seen[name] = here
    return step * ((clashes + 1) // 2) * (1 if clashes % 2 else -1) if clashes else 0.0


def shift_artists(fig: Figure, ax, artists, dx_points: float) -> None:
    """Move already drawn artists (e.g. an errorbar container) right by `dx_points` on screen.
    Call after the data limits are set: shifted artists no longer count for autoscaling."""
    if not dx_points:
        return
    moved = offset_copy(ax.transData, fig=fig, x=dx_points, y=0, units="points")
    for artist in artists:
        children = artist.get_children() if hasattr(artist, "get_children") else [artist]
        for child in children or [artist]:
            child.set_transform(moved)


def renderer(fig: Figure):
    """An Agg renderer for measuring text (the figure gets an Agg canvas if it has none)."""
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def legend_outside(fig: Figure, axes, *, title: str | None = None, handles=None) -> None:
    """One legend for the whole figure, right of the panels (never over the data). The figure
    grows by the legend's width, so the panels keep their size (a single panel too)."""
    seen: dict[str, object] = dict(handles or {})
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_"):
                seen.setdefault(label, handle)
    if seen:
        leg = fig.legend(list(seen.values()), list(seen), loc="outside right center",
                         title=title, fontsize=8, title_fontsize=9, frameon=False,
                         handlelength=3.2)  # fmt: skip
        width = leg.get_window_extent(renderer(fig)).width / fig.dpi
        fig.set_figwidth(fig.get_figwidth() + width + 0.15)


def legend_below(fig: Figure, ax, *, title: str | None = None, ncols: int = 1) -> None:
    """The legend under the axes; the figure grows by its height, so the axes keep the width."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    leg = fig.legend(handles, labels, loc="outside lower center", title=title, fontsize=8,
                     title_fontsize=9, frameon=False, ncols=ncols)  # fmt: skip
    height = leg.get_window_extent(renderer(fig)).height / fig.dpi
    fig.set_figheight(fig.get_figheight() + height + 0.1)


OFFSETS: tuple[tuple[int, int, str], ...] = (  # (dx, dy) in points, horizontal alignment
    (5, 5, "left"), (5, -11, "left"), (-5, 5, "right"), (-5, -11, "right"),
    (8, -3, "left"), (-8, -3, "right"), (0, 10, "center"), (0, -17, "center"),
    (14, 12, "left"), (-14, 12, "right"), (14, -18, "left"), (-14, -18, "right"),
)  # fmt: skip


def place_labels(fig: Figure, ax, labels: list[tuple[float, float, str, str, int]],
                 *, box: dict | None = None) -> int:  # fmt: skip
    """Annotate (x, y, text, colour, priority) points without overlaps: higher priority first,
    each at the first offset in OFFSETS whose box meets no placed label, no other point and
    stays inside the axes; a label with no free spot is dropped. Returns how many were dropped
    (and notes it in the panel). Call after the axes limits and the layout are final."""
    r = renderer(fig)
    fig.canvas.draw()  # final layout, so pixel positions hold
    frame = ax.get_window_extent(r)
    points = [ax.transData.transform((x, y)) for x, y, *_ in labels]
    taken: list = []
    dropped = 0
    for i in sorted(range(len(labels)), key=lambda i: -labels[i][4]):
        x, y, text, colour, _ = labels[i]
        for dx, dy, ha in OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=8, color=colour, ha=ha, bbox=box, zorder=7)  # fmt: skip
            bb = ann.get_window_extent(r).expanded(1.05, 1.1)
            inside = frame.contains(bb.x0, bb.y0) and frame.contains(bb.x1, bb.y1)
            hits_point = any(bb.contains(px, py) for j, (px, py) in enumerate(points) if j != i)
            if inside and not hits_point and not any(bb.overlaps(t) for t in taken):
                taken.append(bb)
                break
            ann.remove()
        else:
            dropped += 1
    if dropped:
        title = ax.get_title()
        ax.set_title(f"{title}\n({dropped} label(s) hidden to avoid overlap; see the table)",
                     fontsize=ax.title.get_fontsize())  # fmt: skip
    return dropped


def suptitle(fig: Figure, text: str, *, fontsize: float = 10) -> None:
    """A figure title wrapped to the figure's width (call once the width is final); the
    figure grows by the title's height, so the panels keep theirs."""
    chars = max(40, int(fig.get_figwidth() * 72 / (fontsize * 0.56)))
    lines = [w for line in text.split("\n") for w in textwrap.wrap(line, chars) or [""]]
    fig.suptitle("\n".join(lines), fontsize=fontsize)
    fig.set_figheight(fig.get_figheight() + len(lines) * fontsize * 1.4 / 72)


def fmt_level(level: float | None) -> str:
    return "" if level is None or level != level else f"{level:g}"


def save(fig: Figure, path: str | os.PathLike) -> Path:
    """Save by extension (.png at 150 dpi, .svg, .pdf); creates the parent folder."""
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path

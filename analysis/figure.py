"""Figure helpers shared by the plots: Okabe-Ito palette, panel grids, labels, saving.

Uses matplotlib's object-oriented API (`matplotlib.figure.Figure`, no pyplot state), so no
GUI backend is ever touched; the output format follows the file extension.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from matplotlib.figure import Figure

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
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
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
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def marker(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


def legend_outside(fig: Figure, axes, *, title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels (never over the data)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_"):
                seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside right center", title=title,
                   fontsize=8, title_fontsize=9, frameon=False)  # fmt: skip


def fmt_level(level: float | None) -> str:
    return "" if level is None or level != level else f"{level:g}"


def save(fig: Figure, path: str | os.PathLike) -> Path:
    """Save by extension (.png at 150 dpi, .svg, .pdf); creates the parent folder."""
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path

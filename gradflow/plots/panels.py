"""Small multiples: one panel per group where one Axes would hold more than six curves.

A catalogue of cells is grouped by its family (``FAMILIES`` of the catalogue: Elman RNNs, the
LSTM family, the GRU family, diagonal and oscillator cells) and each family gets a panel; a
cell keeps its style (:func:`~gradflow.plots.style.series_style` by its position in the
result) in every panel and every figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..cells.catalogue import FAMILIES

#: Most curves one Axes holds; more are split into panels by cell family.
MAX_CURVES = 6


def grid(panels: int) -> tuple[int, int]:
    """Rows and columns of a small-multiples figure: at most three panels a row."""
    ncols = max(1, min(panels, 3))
    return -(-panels // ncols), ncols


def panel_size(width: float, panels: int) -> tuple[float, float]:
    """Figure size for ``panels`` panels within ``width`` inches (never wider): rows of panels
    about 0.85 times as tall as they are wide, at most 2.2 in."""
    nrows, ncols = grid(panels)
    return width, nrows * min(2.2, 0.85 * width / ncols) + 0.3


#: Panel titles of the catalogue's families (:data:`gradflow.cells.catalogue.FAMILIES`).
FAMILY_TITLES = {
    "Elman": "Elman RNNs",
    "LSTM": "LSTM family",
    "GRU": "GRU family",
    "diagonal": "diagonal cells",
    "oscillator": "oscillator cells",
}


def family(name: str) -> str:
    """The family a cell belongs to, for grouping curves into panels: its catalogue family
    (:data:`gradflow.cells.catalogue.FAMILIES`), else a guess from its name's prefix."""
    for fam, names in FAMILIES.items():
        if name in names:
            return FAMILY_TITLES.get(fam, f"{fam} cells")
    if name.startswith("lstm"):
        return "LSTM family"
    if name.startswith("gru") or name in ("mgu", "minimalrnn"):
        return "GRU family"
    if name.startswith("rnn"):
        return "Elman RNNs"
    return "other cells"


def by_family(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``names`` grouped by :func:`family`, families in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(family(n), []).append(n)
    return list(groups.items())


def needs_panels(names: Sequence[str]) -> bool:
    """More than :data:`MAX_CURVES` cells of more than one family."""
    return len(names) > MAX_CURVES and len(by_family(names)) > 1


def small_multiples(
    fig: Figure, keys: Sequence[str], draw: Callable[[Any, str, bool], Any]
) -> None:
    """One panel per key on ``fig``, drawn by ``draw(ax, key, is_first)``: shared axes, tick
    and axis labels on the outer panels only, the union of the panels' y-limits."""
    nrows, ncols = grid(len(keys))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    limits = []
    for k, ax in enumerate(axes):
        if k >= len(keys):
            ax.set_visible(False)
            continue
        draw(ax, keys[k], k == 0)
        limits.append(ax.get_ylim())  # each panel sets the shared limits to its own
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        left, bottom = k % ncols == 0, k + ncols >= len(keys)
        ax.tick_params(labelleft=left, labelbottom=bottom)
        if not left:
            ax.set_ylabel("")
        if not bottom:
            ax.set_xlabel("")
    axes[0].set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))

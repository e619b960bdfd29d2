"""The figures of a report: which ones the results support, their captions, small multiples.

Every figure is drawn from the typed results (:mod:`gradflow.results`) by :mod:`gradflow.plots`;
nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import plots
from ..results import ExperimentResult, SweepResult


@dataclass(frozen=True)
class ReportFigure:
    """One figure: file stem, title, caption, and a function drawing it on a Figure."""

    stem: str
    title: str
    caption: str
    draw: Callable[[Figure], object]
    panels: int = 1


def grid(panels: int) -> tuple[int, int]:
    """Rows and columns of a small-multiples figure: at most four panels a row."""
    ncols = min(panels, 4)
    return -(-panels // ncols), ncols


def _small_multiples(
    names: list[str], draw: Callable[[Any, str, bool], Any]
) -> Callable[[Figure], None]:
    """A drawer with one panel per name; axis labels on the outer panels only."""

    def drawer(fig: Figure) -> None:
        nrows, ncols = grid(len(names))
        # Shared axes: panels compare at a glance, and inner panels carry no tick labels.
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
        limits = []
        for k, ax in enumerate(axes):
            if k >= len(names):
                ax.set_visible(False)
                continue
            draw(ax, names[k], k == 0)
            limits.append(ax.get_ylim())  # each panel sets the shared limits to its own
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            left, bottom = k % ncols == 0, k + ncols >= len(names)
            ax.tick_params(labelleft=left, labelbottom=bottom)
            if not left:
                ax.set_ylabel("")
            if not bottom:
                ax.set_xlabel("")
        axes[0].set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))

    return drawer


def report_figures(experiment: ExperimentResult, sweep: SweepResult | None) -> list[ReportFigure]:
    """The figures of a report, in order, for the data the results carry."""
    cells = experiment.cells
    first = next(iter(cells.values()))
    band = first.log10_spectral_norm.percent
    runs = first.runs
    overlays = []
    if any(c.pascanu for c in cells.values()):
        overlays.append("dashed: the Pascanu bound (for the cells it applies to)")
    if any(c.meanfield for c in cells.values()):
        overlays.append("dotted: the mean-field slope, drawn from the start of the fitted window")
    figs = [
        ReportFigure(
            "norms",
            "Gradient flow through time",
            f"log10 of the spectral norm of the Jacobian product against the lag k: median over "
            f"{runs} runs per cell (line) and the {band} band"
            + ("; " + "; ".join(overlays) if overlays else "")
            + ". Curves are thinned for "
            "display to about 25 points per inch (the band is the envelope of the lags left "
            "out); the data files hold every lag.",
            lambda f: plots.plot_norms(experiment, f.add_subplot()),
        )
    ]
    if any(c.meanfield for c in cells.values()) and plots.norm_bands(
        experiment, "log10_frobenius_norm"
    ):
        figs.append(
            ReportFigure(
                "norms_frobenius",
                "Frobenius norm",
                f"As Figure 1 for the Frobenius norm, the quantity mean-field theory predicts; "
                f"{band} band.",
                lambda f: plots.plot_norms(
                    experiment, f.add_subplot(), quantity="log10_frobenius_norm"
                ),
            )
        )
    additive = plots.norm_bands(experiment, path="additive")
    # Cells whose additive path carries anything: for the RNN it is zero (log10 = -inf).
    path_cells = [
        c
        for c in plots.cell_order(cells)
        if c in additive and np.isfinite(additive[c].median[1:]).any()
    ]
    if path_cells:
        figs.append(
            ReportFigure(
                "paths",
                "Additive against multiplicative path",
                f"The full product (solid, median and {band} band) against the product of the "
                "additive path alone (dashed, no weight matrix) and of the multiplicative path "
                "alone (dash-dotted), medians; one panel per cell with an additive path.",
                _small_multiples(
                    path_cells,
                    lambda ax, c, first: plots.plot_paths(experiment, ax, cells=[c], legend=first),
                ),
                panels=len(path_cells),
            )
        )
    figs.append(
        ReportFigure(
            "decay_rates",
            "Decay rates",
            f"Fitted slope of the median log10 norm, decades per step, with its {band} interval "
            "over runs.",
            lambda f: plots.plot_decay_rates(experiment, f.add_subplot()),
        )
    )
    sv_cells = [
        c
        for c in plots.cell_order(cells)
        if any(
            np.isfinite(np.asarray(v, dtype=float)).any()
            for v in cells[c].log10_singular_values.values()
        )
    ]
    if sv_cells:
        figs.append(
            ReportFigure(
                "singular_values",
                "Singular values of the product",
                f"log10 singular values of the Jacobian product at several lags (median and {band} "
                "band over runs), one panel per cell.",
                _small_multiples(
                    sv_cells,
                    lambda ax, c, first: plots.plot_singular_values(
                        experiment, ax, cell=c, legend=first
                    ),
                ),
                panels=len(sv_cells),
            )
        )
    if any(c.lyapunov_exponents is not None for c in cells.values()):
        figs.append(
            ReportFigure(
                "lyapunov",
                "Lyapunov spectra",
                f"Leading Lyapunov exponents of the state dynamics, nats per step (median and "
                f"{band} band over runs). Below zero, perturbations and gradients shrink.",
                lambda f: plots.plot_lyapunov(experiment, f.add_subplot()),
            )
        )
    if sweep is not None:
        figs.append(
            ReportFigure(
                "phase_diagram",
                "Phase diagram",
                "Median decay rate over the sweep grid: blue cells vanish, red ones explode, grey "
                "ones overflowed (no finite rate); letters give each cell's regime. On numeric "
                "axes the black line is where the rate crosses zero.",
                lambda f: plots.plot_phase_diagram(sweep, f.add_subplot()),
            )
        )
    return figs

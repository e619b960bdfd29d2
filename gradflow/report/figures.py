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

from .. import plots
from ..plots.panels import by_family, needs_panels, small_multiples
from ..results import ExperimentResult, SweepResult
from .summary import headline_cells, init_text


@dataclass(frozen=True)
class ReportFigure:
    """One figure: file stem, title, caption, and a function drawing it on a Figure."""

    stem: str
    title: str
    caption: str
    draw: Callable[[Figure], object]
    panels: int = 1


def _small_multiples(
    names: list[str], draw: Callable[[Any, str, bool], Any]
) -> Callable[[Figure], None]:
    """A drawer with one panel per name (:func:`gradflow.plots.panels.small_multiples`)."""
    return lambda fig: small_multiples(fig, names, draw)


def _headline(experiment: ExperimentResult, names: list[str], path_cell: str | None) -> Any:
    """Left: the headline cells' norms; right: one gated cell's full product against its
    additive and multiplicative paths."""

    def drawer(fig: Figure) -> None:
        axes = fig.subplots(1, 2 if path_cell else 1, squeeze=False).ravel()
        plots.plot_norms(experiment, axes[0], cells=names, overlays=False)
        axes[0].set_title("full product")
        if path_cell:
            plots.plot_paths(experiment, axes[1], cells=[path_cell])
            axes[1].set_title(f"{path_cell}: paths")
            axes[1].set_ylabel("")

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
    figs = []
    names = headline_cells(experiment)
    additive = plots.norm_bands(experiment, path="additive")
    # Cells whose additive path carries anything: for the RNN it is zero (log10 = -inf).
    path_cells = [
        c
        for c in plots.cell_order(cells)
        if c in additive and np.isfinite(additive[c].median[1:]).any()
    ]
    path_cell = next((c for c in (*names, *path_cells) if c in path_cells), None)
    figs.append(
        ReportFigure(
            "headline",
            "Gradient flow in " + ", ".join(names),
            f"Left: log10 of the spectral norm of the Jacobian product against the lag k for "
            f"{', '.join(names)} (median over {runs} runs, line; {band} band, shaded) under "
            f"{init_text(experiment.config)}."
            + (
                f" Right: {path_cell}'s full product (solid) against the product of its "
                "additive path alone (dashed: no weight matrix) and of its multiplicative path "
                "alone (dash-dotted), medians."
                if path_cell
                else ""
            ),
            _headline(experiment, names, path_cell),
            panels=2 if path_cell else 1,
        )
    )
    families = by_family(plots.cell_order(cells))
    norms_caption = (
        f"log10 of the spectral norm of the Jacobian product against the lag k: median over "
        f"{runs} runs per cell (line) and the {band} band"
        + ("; " + "; ".join(overlays) if overlays else "")
        + ". Curves are thinned for display to about 25 points per inch (the band is the "
        "envelope of the lags left out); the data files hold every lag."
    )
    if needs_panels(list(cells)):
        groups = dict(families)
        figs.append(
            ReportFigure(
                "norms",
                "Gradient flow through time, by cell family",
                norms_caption + " One panel per family; a cell keeps its colour and marker in "
                "every figure.",
                _small_multiples(
                    list(groups),
                    lambda ax, fam, first: _family_panel(ax, experiment, fam, groups[fam]),
                ),
                panels=len(groups),
            )
        )
    else:
        figs.append(
            ReportFigure(
                "norms",
                "Gradient flow through time",
                norms_caption,
                lambda f: plots.plot_norms(experiment, f.add_subplot()),
            )
        )
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
            f"Median over runs of each run's fitted slope of the log10 norm (the median of "
            f"slopes), decades per step, with the {band} interval of the slopes over runs.",
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
    lyap_cells = [c for c in plots.cell_order(cells) if cells[c].lyapunov_exponents is not None]
    if lyap_cells:
        lyap_caption = (
            f"Leading Lyapunov exponents of the state dynamics in decades per step "
            f"(lambda_i / ln 10; the data files keep nats), median and {band} band over "
            "runs. Below zero, perturbations and gradients shrink."
        )
        if needs_panels(lyap_cells):
            lyap_groups = dict(by_family(lyap_cells))
            figs.append(
                ReportFigure(
                    "lyapunov",
                    "Lyapunov spectra, by cell family",
                    lyap_caption + " One panel per family.",
                    _small_multiples(
                        list(lyap_groups),
                        lambda ax, fam, first: _titled(
                            plots.plot_lyapunov(experiment, ax, cells=lyap_groups[fam]), fam
                        ),
                    ),
                    panels=len(lyap_groups),
                )
            )
        else:
            figs.append(
                ReportFigure(
                    "lyapunov",
                    "Lyapunov spectra",
                    lyap_caption,
                    lambda f: plots.plot_lyapunov(experiment, f.add_subplot()),
                )
            )
    if sweep is not None:
        figs.append(
            ReportFigure(
                "phase_diagram",
                "Phase diagram",
                "Median decay rate over the sweep grid: blue cells vanish, red ones explode, grey "
                "ones overflowed (no finite rate); letters give each cell's regime. The black "
                "line marks where the rate crosses zero: the zero contour on two numeric axes, "
                "or per row, interpolated along the numeric axis, when the other is the cell.",
                lambda f: plots.plot_phase_diagram(sweep, f.add_subplot()),
            )
        )
    return figs


def _family_panel(ax: Any, experiment: ExperimentResult, family: str, names: list[str]) -> None:
    """One family's curves, in the styles the cells have in every other figure."""
    plots.plot_norms(experiment, ax, cells=names)
    ax.set_title(family)


def _titled(ax: Any, title: str) -> Any:
    ax.set_title(title)
    return ax

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
from .science import certified_counts
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


def _headline(
    experiment: ExperimentResult, names: list[str], path_cell: str | None, terms: bool
) -> Any:
    """Left: the headline cells' norms; right: one gated cell's product expanded by the
    number of multiplicative factors (``terms``), or its pure chains (older results)."""

    def drawer(fig: Figure) -> None:
        axes = fig.subplots(1, 2 if path_cell else 1, squeeze=False).ravel()
        plots.plot_norms(experiment, axes[0], cells=names, overlays=False)
        axes[0].set_title("full product")
        if path_cell and terms:
            plots.plot_path_terms(experiment, axes[1], cell=path_cell)
            axes[1].set_title(f"{path_cell}: terms by multiplicative factors")
        elif path_cell:
            plots.plot_paths(experiment, axes[1], cells=[path_cell])
            axes[1].set_title(f"{path_cell}: pure chains")
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
    if any(c.meanfield and c.annealed is None for c in cells.values()):
        overlays.append("dotted: the mean-field slope, drawn from the start of the fitted window")
    if any(c.largest_lyapunov() is not None for c in cells.values()):
        overlays.append(
            "densely dotted: the largest Lyapunov exponent (mean over runs) as a slope line "
            "through the median at the last lag, over the fitted window, with a shaded wedge of "
            "\u00b12 standard errors; the long-lag slope approaches it"
        )
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
    term_cells = [c for c in plots.cell_order(cells) if cells[c].path_terms is not None]
    if term_cells:  # schema 3: the expansion by multiplicative factors explains the product
        path_cell = next((c for c in (*names, *term_cells) if c in term_cells), None)
    terms = bool(term_cells)
    figs.append(
        ReportFigure(
            "headline",
            "Gradient flow in " + ", ".join(names),
            f"Left: log10 of the spectral norm of the Jacobian product against the lag k for "
            f"{', '.join(names)} (median over {runs} runs, line; {band} band, shaded) under "
            f"{init_text(experiment.config)}."
            + (
                f" Right: {path_cell}'s product at two lags k expanded by the number j of "
                "factors through a weight matrix, P_k = \u03a3_j S_j: log10 \u2016S_j\u2016_F "
                "against j (solid, median over the expanded sequences) and log10 "
                "\u2016P_k\u2016_F (dashed); j = 0 is the additive path alone."
                if path_cell and terms
                else f" Right: {path_cell}'s full product (solid) against its pure additive "
                "chain (dashed: the term with no factor through a weight matrix) and its pure "
                "multiplicative chain (dash-dotted), medians; these are two of the 2^k terms "
                "of the product and neither bound nor sum to it."
                if path_cell
                else ""
            ),
            _headline(experiment, names, path_cell, terms),
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
    annealed = [c for c in plots.cell_order(cells) if cells[c].annealed is not None]
    if (annealed or any(c.meanfield for c in cells.values())) and plots.norm_bands(
        experiment, "log10_frobenius_norm"
    ):
        warned = [c for c in annealed if cells[c].annealed.warnings]  # type: ignore[union-attr]
        figs.append(
            ReportFigure(
                "norms_frobenius",
                "Frobenius norm against the annealed mean field" if annealed else "Frobenius norm",
                (
                    "log10 of the Frobenius norm of the Jacobian product against the lag k "
                    f"(median, {band} band) and, dotted from the start of the fitted window, the "
                    "annealed mean-field growth rate of E\u2016P_k\u2016_F^2 (decades per step "
                    "of the norm) for every cell it applies to. Assumptions: weights redrawn at "
                    "every step (untied), independent Gaussian pre-activations, Gaussian inputs "
                    "(docs/theory.md section 8)."
                    + (
                        f" Warned ({', '.join(warned)}): see the notes under the decay-rate "
                        "table; for gated cells the tied network decays markedly slower than "
                        "the annealed prediction."
                        if warned
                        else ""
                    )
                    if annealed
                    else f"As Figure 1 for the Frobenius norm, the quantity mean-field theory "
                    f"predicts; {band} band."
                ),
                lambda f: plots.plot_norms(
                    experiment, f.add_subplot(), quantity="log10_frobenius_norm"
                ),
            )
        )
    if term_cells:
        lags = sorted({k for c in term_cells for k in cells[c].path_terms.lags})  # type: ignore[union-attr]
        figs.append(
            ReportFigure(
                "path_terms",
                "How the product splits by the number of multiplicative factors",
                "The Jacobian product P_k = \u220f_t (A_t + M_t) (A_t: the terms without a "
                "weight matrix, M_t: those through one) expanded as P_k = \u03a3_j S_j, S_j "
                "the sum of the terms with exactly j factors M_t: log10 \u2016S_j\u2016_F "
                f"against j at lags {', '.join(map(str, lags))} (solid, median and band over the "
                "expanded sequences; only terms resolved to 1e-6 relative) and log10 "
                "\u2016P_k\u2016_F (dashed, same colour). The j = 0 point is the additive path "
                "alone; its distance below the dashed line is the additive share "
                "\u2016S_0\u2016/\u2016P_k\u2016. One panel per cell with both parts.",
                _small_multiples(
                    term_cells,
                    lambda ax, c, first: plots.plot_path_terms(
                        experiment, ax, cell=c, legend=first
                    ),
                ),
                panels=len(term_cells),
            )
        )
    if path_cells:
        figs.append(
            ReportFigure(
                "paths",
                "The pure chains",
                f"The full product (solid, median and {band} band) against its pure additive "
                "chain \u220f A_t (dashed: the one term with no factor through a weight "
                "matrix, S_0) and its pure multiplicative chain \u220f M_t (dash-dotted, "
                "S_k), medians; one panel per cell with an additive part. They are two of the "
                "2^k terms of the product: they neither bound nor sum to it (see the "
                "expansion by j).",
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
            f"slopes), decades per step, with the {band} interval of the slopes over runs"
            + (
                " (thin, with caps) and the 95 % bootstrap confidence interval of the median "
                "(thick bar; the weight draws resampled, then any sequences within each)."
                if any(s.decay_rate.interval for s in cells.values())
                else "."
            ),
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
        counts = certified_counts(experiment)
        left = sum(t - c for c, t in counts.values())
        total = sum(t for _, t in counts.values())
        cert_text = (
            f" Only certified values are drawn (computed by {first.singular_values_method}): "
            f"{left} of {total} values were not certified and are left out "
            f"({', '.join(f'{t - c} at lag {k}' for k, (c, t) in counts.items())})."
            if counts
            else " These values come from one SVD of the accumulated product: values more "
            "than about 15 decades below the largest are rounding noise."
        )
        zeros = sum(
            int(np.sum(np.isneginf(np.asarray(v, float))))
            for c in sv_cells
            for v in cells[c].certified_singular_values().values()
        )
        if zeros:
            cert_text += (
                f" {zeros} values are exactly zero (every unit of a ReLU cell inactive at some "
                "step: certified as zero, not drawn on a log axis)."
            )
        figs.append(
            ReportFigure(
                "singular_values",
                "Singular values of the product",
                f"log10 singular values of the Jacobian product at several lags (median and {band} "
                "band over runs), one panel per cell." + cert_text,
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
            "runs; error bars: the mean over runs ± 2 standard errors. Below zero, "
            "perturbations and gradients shrink; every exponent with batch-means error bars, "
            "D_KY and the determinant check are in the Lyapunov diagnostics table."
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

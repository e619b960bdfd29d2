"""Which figures a result supports, and drawing them all (``gradflow plot``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from matplotlib.figure import Figure

from ..errors import UsageError
from .curves import plot_decay_rates, plot_norms, plot_paths
from .data import _spectrum_bands, load_result, norm_bands, result_kind
from .panels import by_family, needs_panels, panel_size, small_multiples
from .phase import plot_phase_diagram
from .save import save_figure
from .spectra import plot_lyapunov, plot_path_terms, plot_singular_values
from .style import FORMATS, style

#: The plot functions :func:`draw` can call by name.
PLOTS: dict[str, Callable[..., Any]] = {
    "plot_norms": plot_norms,
    "plot_paths": plot_paths,
    "plot_decay_rates": plot_decay_rates,
    "plot_singular_values": plot_singular_values,
    "plot_path_terms": plot_path_terms,
    "plot_lyapunov": plot_lyapunov,
    "plot_phase_diagram": plot_phase_diagram,
}


def figure_set(result: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The figures a result supports: ``(stem, plot function name, keyword arguments)``."""
    res = load_result(result)
    kind = result_kind(res)
    if kind == "claims":
        raise UsageError("a claims result has no figure; plot the experiment or sweep instead")
    if kind == "sweep":
        return [("phase_diagram", "plot_phase_diagram", {})]
    out: list[tuple[str, str, dict[str, Any]]] = [("norms", "plot_norms", {})]
    if norm_bands(res, "log10_frobenius_norm"):
        out.append(("norms_frobenius", "plot_norms", {"quantity": "log10_frobenius_norm"}))
    if norm_bands(res, "log10_gradient_norm"):
        out.append(("gradient", "plot_norms", {"quantity": "log10_gradient_norm"}))
    if norm_bands(res, path="additive") or norm_bands(res, path="multiplicative"):
        out.append(("paths", "plot_paths", {}))
    for name, c in getattr(res, "cells", {}).items():
        if c.path_terms is not None:
            out.append((f"path_terms_{name}", "plot_path_terms", {"cell": name}))
    for name in _spectrum_bands(res, "sv"):
        out.append((f"singular_values_{name}", "plot_singular_values", {"cell": name}))
    if _spectrum_bands(res, "lyapunov"):
        out.append(("lyapunov", "plot_lyapunov", {}))
    if kind == "experiment":
        out.append(("decay_rates", "plot_decay_rates", {}))
    return out


def draw(
    result: Any, plot: str, *, venue: str = "neurips", column: str = "full", **kwargs: Any
) -> Figure:
    """A new Figure (not registered with pyplot) drawn by ``plot``: one panel, or, for norms
    and Lyapunov spectra of more than six cells, one panel per cell family
    (:mod:`gradflow.plots.panels`); never wider than the venue's text."""
    fn = PLOTS.get(plot)
    if fn is None:
        raise UsageError(f"unknown plot {plot!r}")
    res = load_result(result)
    names = list(getattr(res, "cells", None) or [])
    rc = style(venue, column)
    if plot in ("plot_norms", "plot_lyapunov") and "cells" not in kwargs and needs_panels(names):
        groups = dict(by_family(names))  # more than six curves: one panel per cell family
        rc["figure.figsize"] = panel_size(rc["figure.figsize"][0], len(groups))
        with mpl.rc_context(cast(Any, rc)):
            fig = Figure()
            small_multiples(fig, list(groups), lambda ax, fam, _: _panel(fn, res, ax, fam, groups))
        return fig
    with mpl.rc_context(cast(Any, rc)):
        fig = Figure()
        fn(res, fig.add_subplot(), **kwargs)
    return fig


def _panel(
    fn: Callable[..., Any], res: Any, ax: Any, fam: str, groups: dict[str, list[str]]
) -> None:
    fn(res, ax, cells=groups[fam])
    ax.set_title(fam)


def plot_result(
    result: Any,
    out_dir: str | os.PathLike[str],
    *,
    venue: str = "neurips",
    column: str = "full",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Draw every figure a saved result supports into ``out_dir``; returns the files."""
    res = load_result(result)
    written: list[Path] = []
    for stem, plot, kwargs in figure_set(res):
        with mpl.rc_context(cast(Any, style(venue, column))):
            fig = draw(res, plot, venue=venue, column=column, **kwargs)
            written += save_figure(fig, Path(out_dir) / stem, formats)
    return written

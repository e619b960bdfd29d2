r"""Figures for papers, drawn only from saved results (DESIGN decision 8).

Every ``plot_*`` function takes a result (an :class:`~gradflow.results.AnalysisResult`, an
experiment or sweep dict as saved by :mod:`gradflow.analysis`, or the path of its JSON), an
optional :class:`~matplotlib.axes.Axes`, and returns the Axes. Nothing is recomputed: an
experiment already carries its quantiles; for an analysis the band is the spread over its batch.

Style lives in data: :func:`style` returns an rcParams dict (a tueplots venue bundle with STIX
fonts, a colour-blind-safe palette and deterministic SVG settings), applied with
``matplotlib.rc_context`` and never globally. :func:`save_figure` writes byte-identical files
run after run.

Examples:
    >>> import matplotlib
    >>> from matplotlib.figure import Figure
    >>> with matplotlib.rc_context(style("icml", column="half")):
    ...     fig = Figure()
    ...     ax = fig.add_subplot()
    >>> float(round(fig.get_figwidth(), 2))
    3.25

References:
    [tueplots] Kraemer et al., tueplots: figure sizes and fonts for ML venues (2022).
    [okabeito2008] Okabe and Ito, Color Universal Design (2008).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .atomic import atomic_open
from .errors import UsageError
from .results import AnalysisResult, ExperimentResult, Result, SweepResult
from .results import load_result as _load_typed

#: Short venue names and the tueplots bundle each one uses.
VENUES = {
    "neurips": "neurips2024",
    "icml": "icml2024",
    "iclr": "iclr2024",
    "aistats": "aistats2025",
    "tmlr": "tmlr2023",
    "jmlr": "jmlr2001",
    "colm": "colm2026",
}
FORMATS = ("pdf", "svg", "png")
SVG_HASHSALT = "gradflow"
DPI = 200
# 11 markers against 8 colours: pairs stay distinct for 88 cells; the cells that share a
# colour (0 and 8, 1 and 9, 2 and 10) get markers of clearly different shapes.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
QUANTITIES = {
    "log10_spectral_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_2$",
    "log10_frobenius_norm": r"$\log_{10}\|\partial s_T/\partial s_{T-k}\|_F$",
    "log10_spectral_norm_hidden": r"$\log_{10}\|\partial h_T/\partial h_{T-k}\|_2$",
    "log10_gradient_norm": r"$\log_{10}\|\partial L/\partial s_{T-k}\|_2$",
}
PATH_STYLES = {"full": "-", "additive": "--", "multiplicative": "-."}
# Okabe-Ito reordered so that black and yellow (weak on white) come last.
_OKABE_ITO_ORDER = (5, 6, 3, 1, 7, 2, 0, 4)


def palette() -> list[tuple[float, ...]]:
    """The colour-blind-safe colour sequence: Okabe-Ito (matplotlib >= 3.11) or petroff10."""
    seqs = mpl.color_sequences
    if "okabe_ito" in seqs:
        colours = seqs["okabe_ito"]
        return [tuple(colours[i]) for i in _OKABE_ITO_ORDER]
    return [tuple(c) for c in seqs["petroff10"]]


def style(
    venue: str = "neurips",
    column: str = "half",
    nrows: int = 1,
    ncols: int = 1,
    usetex: bool = False,
) -> dict[str, Any]:
    """rcParams for one venue: sizes from tueplots, STIX fonts, deterministic vector output.

    Args:
        venue: a short name in :data:`VENUES` (``neurips``, ``icml``, ``iclr`` ...) or a
            tueplots bundle name (``neurips2023``).
        column: ``"half"`` or ``"full"``: a column of a two-column venue, or half or all of the
            text width of a one-column venue.
        nrows: rows of panels, for the figure height.
        ncols: columns of panels.
        usetex: typeset with LaTeX (needs a ``latex`` binary); off by default.

    Returns:
        A dict for ``matplotlib.rc_context``.

    Raises:
        UsageError: unknown venue or column.

    References:
        [tueplots] Kraemer et al., tueplots (2022).
    """
    from tueplots import bundles

    name = VENUES.get(venue, venue)
    bundle = getattr(bundles, name, None) if name.replace("_", "").isalnum() else None
    if bundle is None or name.startswith("_") or not callable(bundle):
        raise UsageError(f"unknown venue {venue!r}; choose one of {', '.join(VENUES)}")
    if column not in ("half", "full"):
        raise UsageError(f"unknown column {column!r}; choose 'half' or 'full'")
    params = inspect.signature(bundle).parameters
    kwargs: dict[str, Any] = {"nrows": nrows, "ncols": ncols}
    if "column" in params:
        kwargs["column"] = column
    elif "rel_width" in params:
        kwargs["rel_width"] = 0.5 if column == "half" else 1.0
    if "usetex" in params:
        kwargs["usetex"] = usetex
    rc: dict[str, Any] = dict(bundle(**kwargs))
    colours = palette()
    rc.update(
        {
            "text.usetex": usetex,
            "axes.prop_cycle": mpl.cycler(color=colours),
            "svg.hashsalt": SVG_HASHSALT,
            "svg.fonttype": "path",
            "pdf.fonttype": 42,
            "savefig.dpi": DPI,
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.4,
            "lines.linewidth": 1.2,
            "lines.markersize": 3.5,
            "legend.frameon": False,
        }
    )
    if not usetex:
        rc.update(
            {
                "font.family": "STIXGeneral",
                "font.serif": ["STIXGeneral"],
                "mathtext.fontset": "stix",
            }
        )
    return rc


# ---- reading results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """Median and a quantile band of one quantity over runs, indexed by ``x``; ``levels`` are
    the quantile levels of ``low``, ``median`` and ``high``."""

    x: np.ndarray
    low: np.ndarray
    median: np.ndarray
    high: np.ndarray
    levels: tuple[float, float, float] = (0.1, 0.5, 0.9)


def load_result(result: Any) -> Result:
    """The typed result of a JSON path, a dict or a result object (:mod:`gradflow.results`)."""
    if not isinstance(result, (Result, dict, str, os.PathLike)) and hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, (Result, dict, str, os.PathLike)):
        raise UsageError(f"cannot plot a {type(result).__name__}; give a result or its JSON")
    return _load_typed(result)


def result_kind(result: Result) -> str:
    """``analysis``, ``experiment``, ``sweep`` or ``claims``."""
    return result.kind


def cell_order(names: Iterable[str]) -> list[str]:
    """Cells in the order the result holds them: the order they were run in."""
    return list(names)


def _arr(values: Any) -> np.ndarray:
    return np.array(values, dtype=float)  # JSON null (non-finite) becomes NaN


def _quantiles(rows: np.ndarray, axis: int = 1) -> tuple[np.ndarray, ...]:
    """10 %, 50 % and 90 % quantiles ignoring NaN; an all-NaN slice gives NaN quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(rows, [0.1, 0.5, 0.9], axis=axis)
    return q[0], q[1], q[2]


def norm_bands(
    result: Any, quantity: str = "log10_spectral_norm", path: str = "full"
) -> dict[str, Band]:
    """Per cell, the band of a lag-indexed quantity (``path`` selects a path's chain)."""
    res = load_result(result)
    if isinstance(res, AnalysisResult):
        data = getattr(res, quantity) if path == "full" else res.paths.get(path, {}).get(quantity)
        if data is None:
            return {}
        return {res.cell: Band(res.lags.astype(float), *_quantiles(np.asarray(data, float)))}
    if not isinstance(res, ExperimentResult):
        raise UsageError(f"a {res.kind} result has no norms to plot")
    out = {}
    for name, cell in res.cells.items():
        b = cell.quantity(quantity, path)
        if b is not None:
            out[name] = Band(cell.lags.astype(float), b.low, b.median, b.high, b.levels)
    return out


def _spectrum_bands(result: Any, key: str) -> dict[str, dict[str, np.ndarray]]:
    """Per cell, ``{label: (runs, r) array}`` of singular values by lag, or of Lyapunov
    exponents (label ``""``)."""
    res = load_result(result)
    if isinstance(res, AnalysisResult):
        cells = {res.cell: res}
        get = (
            (lambda c: c.log10_singular_values)
            if key == "sv"
            else (lambda c: {} if c.lyapunov_exponents is None else {"": c.lyapunov_exponents})
        )
    else:
        if not isinstance(res, ExperimentResult):
            raise UsageError(f"a {res.kind} result has no spectra to plot")
        cells = dict(res.cells)
        get = (
            (lambda c: c.log10_singular_values)
            if key == "sv"
            else (lambda c: {} if c.lyapunov_exponents is None else {"": c.lyapunov_exponents})
        )
    out = {}
    for name in cell_order(cells):
        cell = cells[name]
        spectra = {str(k): np.asarray(v, dtype=float) for k, v in get(cell).items()}
        spectra = {
            k: v for k, v in sorted(spectra.items(), key=lambda kv: _lag_key(kv[0])) if v.size
        }
        if spectra:
            out[name] = spectra
    return out


def _lag_key(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return math.inf


# ---- drawing ---------------------------------------------------------------------------------


def cell_styles(result: Any) -> dict[str, tuple[tuple[float, ...], str]]:
    """``{cell: (colour, marker)}``, by position in :func:`cell_order`, the same in every
    figure of one result."""
    res = load_result(result)
    names = (
        [res.cell]
        if isinstance(res, AnalysisResult)
        else list(res.cells)
        if isinstance(res, ExperimentResult)
        else []
    )
    colours = palette()
    return {c: (colours[i % len(colours)], MARKERS[i % len(MARKERS)]) for i, c in enumerate(names)}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def thin(band: Band, max_points: int) -> Band:
    """A band with at most about ``max_points`` points, for display only.

    The median is kept exactly at every ``j``-th lag (and the last); the band becomes the
    envelope of each group of ``j`` lags (minimum of the lower, maximum of the upper
    quantile), so it never looks narrower than the data. Saved results are untouched.
    """
    n = len(band.x)
    if n <= max_points:
        return band
    step = -(-n // max_points)
    idx = np.arange(0, n, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.fmin.reduceat(band.low, idx), np.fmax.reduceat(band.high, idx)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
        low, high = np.append(low, band.low[-1]), np.append(high, band.high[-1])
    return Band(band.x[idx], low, band.median[idx], high)


def _max_points(ax: Axes) -> int:
    """About 25 points per inch of axes width (one per millimetre), and never fewer than 80."""
    width = ax.figure.get_figwidth() * ax.get_position().width
    return max(80, int(25 * width))


def _line(
    ax: Axes,
    band: Band,
    colour: Any,
    marker: str,
    label: str | None,
    linestyle: str = "-",
    fill: bool = True,
    alpha: float = 0.22,
) -> None:
    band = thin(band, _max_points(ax))
    every = max(1, len(band.x) // 8)
    ax.plot(
        band.x,
        band.median,
        color=colour,
        marker=marker or None,
        markevery=(every // 2, every),
        linestyle=linestyle,
        label=label,
    )
    if fill and np.any(band.high > band.low):
        ax.fill_between(band.x, band.low, band.high, color=colour, alpha=alpha, linewidth=0)


def _legend(ax: Axes, extra: Iterable[tuple[str, str]] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for label, ls in extra:
        handles.append(Line2D([], [], color="0.35", linestyle=ls))
        labels.append(label)
    if len(handles) > 6:  # many cells: beside the axes, where it hides no data
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            handlelength=2.2,
            borderaxespad=0.0,
        )
    elif handles:
        ax.legend(handles, labels, loc="best", handlelength=2.2)


def _finite_limits(values: Iterable[np.ndarray]) -> tuple[float, float] | None:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    lo, hi = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    pad = 0.06 * max(hi - lo, 1e-3)
    return lo - pad, hi + pad


def plot_norms(
    result: Any,
    ax: Axes | None = None,
    *,
    quantity: str = "log10_spectral_norm",
    cells: Sequence[str] | None = None,
    band: bool = True,
    overlays: bool = True,
) -> Axes:
    r"""``log10`` of the Jacobian-product norm against the lag: median line and quantile band.

    One colour and marker per cell. For experiments, the Pascanu bound (dashed) and the
    mean-field slope (dotted, anchored at the start of the decay-rate window) are drawn where
    the result carries them.

    Args:
        result: AnalysisResult (the band spans its batch) or experiment result (its quantiles).
        ax: the Axes to draw on (default: the current Axes).
        quantity: one of :data:`QUANTITIES`.
        cells: which cells to draw (default: all).
        band: shade the 10-90 % band.
        overlays: draw the bound and the mean-field prediction.

    Returns:
        The Axes.

    References:
        [pascanu2013] Pascanu, Mikolov and Bengio, On the difficulty of training recurrent
        neural networks, ICML 2013.
    """
    if quantity not in QUANTITIES:
        raise UsageError(f"unknown quantity {quantity!r}; choose one of {', '.join(QUANTITIES)}")
    ax = _axes(ax)
    res = load_result(result)
    bands = norm_bands(res, quantity)
    if not bands:
        raise UsageError(f"the result has no {quantity}")
    styles = cell_styles(res)
    extra: dict[str, str] = {}
    seen: list[np.ndarray] = []
    for name, b in bands.items():
        if cells is not None and name not in cells:
            continue
        colour, marker = styles[name]
        _line(ax, b, colour, marker, name, fill=band)
        seen += [b.low, b.high, b.median]
        info = res.cells[name] if isinstance(res, ExperimentResult) else None
        if not overlays or info is None:
            continue
        bound = info.pascanu
        if bound and quantity in ("log10_spectral_norm", "log10_spectral_norm_hidden"):
            ax.plot(b.x, bound.log10_bound, color=colour, linestyle="--", linewidth=0.9)
            extra["Pascanu bound"] = "--"
        slope = info.meanfield.predicted_slope if info.meanfield else None
        if slope is not None and math.isfinite(slope) and quantity != "log10_gradient_norm":
            k0 = int(info.decay_rate.window[0])
            k0 = min(max(k0, 0), len(b.x) - 1)
            ax.plot(
                b.x,
                b.median[k0] + slope * (b.x - b.x[k0]),
                color=colour,
                linestyle=":",
                linewidth=1.0,
            )
            extra["mean-field slope"] = ":"
    limits = _finite_limits(seen)
    if limits is not None:
        lo, hi = limits
        ax.set_ylim(lo, hi + 0.12 * (hi - lo) if extra else hi)  # room for a rising bound
    ax.set_xlim(
        float(min(b.x[0] for b in bands.values())), float(max(b.x[-1] for b in bands.values()))
    )
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(QUANTITIES[quantity])
    _legend(ax, extra.items())
    return ax


def plot_paths(
    result: Any,
    ax: Axes | None = None,
    *,
    cells: Sequence[str] | None = None,
    quantity: str = "log10_spectral_norm",
    legend: bool = True,
) -> Axes:
    """The full chain against its additive and multiplicative paths alone (DESIGN decision 3).

    Colour and marker identify the cell, the line style the path: solid full (with its
    quantile band), dashed additive, dash-dotted multiplicative (medians).

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    res = load_result(result)
    full = norm_bands(res, quantity)
    parts = {p: norm_bands(res, quantity, path=p) for p in ("additive", "multiplicative")}
    names = [c for c in full if (cells is None or c in cells) and any(c in parts[p] for p in parts)]
    if not names:
        raise UsageError("the result has no path data: analyse with paths=True")
    styles = cell_styles(res)
    seen: list[np.ndarray] = []
    for name in names:
        colour, marker = styles[name]
        for path, ls in PATH_STYLES.items():
            b = full[name] if path == "full" else parts[path].get(name)
            if b is None:
                continue
            full_path = path == "full"
            _line(
                ax,
                b,
                colour,
                marker if full_path else "",
                name if full_path else None,
                linestyle=ls,
                fill=full_path,
            )
            seen += [b.median]
    limits = _finite_limits(seen)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(QUANTITIES[quantity])
    if len(names) == 1:
        ax.set_title(names[0])
    if legend:
        _legend(ax, PATH_STYLES.items())
    return ax


def plot_singular_values(
    result: Any,
    ax: Axes | None = None,
    *,
    cell: str | None = None,
    lags: Sequence[int] | None = None,
    legend: bool = True,
) -> Axes:
    r"""The singular values of ``ds_T/ds_{T-k}`` (descending), one line per lag ``k``.

    Args:
        result: analysis or experiment result with singular values.
        ax: the Axes (default: the current Axes).
        cell: which cell (default: the first with singular values).
        lags: which lags (default: all stored).

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    spectra = _spectrum_bands(result, "sv")
    if not spectra:
        raise UsageError("the result has no singular values: analyse with singular_lags")
    name = cell if cell is not None else next(iter(spectra))
    if name not in spectra:
        raise UsageError(f"no singular values for cell {name!r}; have {', '.join(spectra)}")
    colours = palette()
    chosen = [
        (k, v) for k, v in spectra[name].items() if lags is None or int(float(k)) in set(lags)
    ]
    for i, (lag, values) in enumerate(chosen):
        values = np.atleast_2d(values)
        idx = np.arange(1, values.shape[1] + 1, dtype=float)
        b = Band(idx, *_quantiles(values, axis=0))
        _line(ax, b, colours[i % len(colours)], MARKERS[i % len(MARKERS)], f"$k={lag}$")
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\log_{10}\sigma_i(\partial s_T/\partial s_{T-k})$")
    ax.set_title(name)
    if legend:
        _legend(ax)
    return ax


def plot_lyapunov(
    result: Any, ax: Axes | None = None, *, cells: Sequence[str] | None = None
) -> Axes:
    r"""Lyapunov spectra (nats per step), median and band over runs, one marker per cell.

    Returns:
        The Axes.

    References:
        [benettin1980] Benettin et al., Lyapunov characteristic exponents for smooth
        dynamical systems, Meccanica 15 (1980).
    """
    ax = _axes(ax)
    spectra = _spectrum_bands(result, "lyapunov")
    if not spectra:
        raise UsageError("the result has no Lyapunov exponents: analyse with lyapunov > 0")
    styles = cell_styles(result)
    for name, by_label in spectra.items():
        if cells is not None and name not in cells:
            continue
        values = np.atleast_2d(by_label[""])
        idx = np.arange(1, values.shape[1] + 1, dtype=float)
        _line(ax, Band(idx, *_quantiles(values, axis=0)), *styles[name], name)
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\lambda_i$ (nats/step)")
    _legend(ax)
    return ax


def plot_decay_rates(result: Any, ax: Axes | None = None) -> Axes:
    """Decay rate per cell of an experiment: median with its 10-90 % interval.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    res = load_result(result)
    if not isinstance(res, ExperimentResult):
        raise UsageError("decay rates are plotted from an experiment result")
    styles = cell_styles(res)
    names = list(styles)
    for i, name in enumerate(names):
        rate = res.cells[name].decay_rate
        med = rate.median
        if med is None:
            continue
        lo = med if rate.low is None else rate.low
        hi = med if rate.high is None else rate.high
        colour, marker = styles[name]
        ax.errorbar(
            [i],
            [med],
            yerr=[[med - lo], [hi - med]],
            color=colour,
            marker=marker,
            capsize=2,
            linestyle="none",
        )
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=45 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
    )
    ax.set_ylabel("decay rate (decades/step)")
    return ax


def _axis_positions(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Centres, cell edges and scale (``linear``, ``log`` or ``category``) of one sweep axis."""
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        v = None
    if v is None or not np.all(np.isfinite(v)):
        pos = np.arange(len(values), dtype=float)
        return pos, np.arange(len(values) + 1) - 0.5, "category"
    if len(v) == 1:
        return v, np.array([v[0] - 0.5, v[0] + 0.5]), "linear"
    scale = "linear"
    if np.all(v > 0) and len(v) > 2:
        dl, dv = np.diff(np.log(v)), np.diff(v)
        if np.allclose(dl, dl[0], rtol=1e-3) and not np.allclose(dv, dv[0], rtol=1e-3):
            scale = "log"
    t = np.log(v) if scale == "log" else v
    mids = (t[1:] + t[:-1]) / 2
    edges = np.concatenate([[t[0] - (mids[0] - t[0])], mids, [t[-1] + (t[-1] - mids[-1])]])
    return v, (np.exp(edges) if scale == "log" else edges), scale


def plot_phase_diagram(
    sweep: Any,
    ax: Axes | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    value: str = "decay_rate",
    cmap: str = "RdBu_r",
    colorbar: bool = True,
) -> Axes:
    """Decay rate over two sweep axes: diverging colours centred at 0, the 0 contour, and
    each regime labelled at the centre of its points. Further axes are reduced by the median.

    Args:
        sweep: a sweep result (dict or JSON path).
        ax: the Axes (default: the current Axes).
        x: the axis along x (default: ``sigma_w`` or ``spectral_radius`` when swept, else the
            first in alphabetical order).
        y: the axis along y (default: the next; a one-axis sweep draws one row).
        value: the point field to colour by.
        cmap: a diverging colormap (ColorBrewer RdBu is colour-blind safe).
        colorbar: add a colour bar.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    res = load_result(sweep)
    if not isinstance(res, SweepResult):
        raise UsageError("a phase diagram is drawn from a sweep result")
    names = sorted(res.axes, key=_axis_rank)
    x = x or names[0]
    y = y or (names[1] if len(names) > 1 and names[1] != x else None)
    for a in (x, y):
        if a is not None and a not in res.axes:
            raise UsageError(f"sweep has no axis {a!r}; axes are {', '.join(names)}")
    xs = list(res.axes[x])
    ys = list(res.axes[y]) if y else [None]
    cells: list[list[list[float]]] = [[[] for _ in xs] for _ in ys]
    where: dict[str, list[tuple[int, int]]] = {}
    for p in res.points:
        i, j = _index(ys, p.params.get(y)) if y else 0, _index(xs, p.params.get(x))
        if i is None or j is None:
            continue
        val = getattr(p, value, None)
        if not isinstance(val, (int, float, type(None))):
            raise UsageError(f"sweep points have no numeric field {value!r}")
        cells[i][j].append(np.nan if val is None else float(val))
        where.setdefault(p.regime, []).append((i, j))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        Z = np.array([[np.nanmedian(c) if c else np.nan for c in row] for row in cells])
    xc, xe, xscale = _axis_positions(xs)
    yc, ye, yscale = _axis_positions(ys) if y else (np.zeros(1), np.array([-0.5, 0.5]), "none")
    finite = Z[np.isfinite(Z)]
    half = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
    mesh = ax.pcolormesh(
        xe,
        ye,
        np.ma.masked_invalid(Z),
        cmap=cmap,
        norm=CenteredNorm(0.0, halfrange=half),
        shading="flat",
    )
    ax.set_facecolor("0.85")  # cells without a finite rate (overflow) show grey
    if (
        y
        and Z.shape[0] > 1
        and Z.shape[1] > 1
        and finite.size
        and finite.min() < 0 < finite.max()
        and "category" not in (xscale, yscale)
    ):
        ax.contour(xc, yc, Z, levels=[0.0], colors="k", linewidths=1.0)
    _label_regimes(ax, where, xc, yc, xscale, yscale, Z, half)
    for scale, axis_values, setter, ticks in (
        (xscale, xs, ax.set_xscale, ax.set_xticks),
        (yscale, ys, ax.set_yscale, ax.set_yticks),
    ):
        if scale == "log":
            setter("log")
        elif scale == "category":
            ticks(range(len(axis_values)), [str(v) for v in axis_values])
        elif scale == "none":
            ticks([])
    ax.set_xlabel(_axis_label(x))
    if y:
        ax.set_ylabel(_axis_label(y))
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(
            mesh,
            ax=ax,
            label=f"{value.replace('_', ' ')} (decades/step)"
            if value == "decay_rate"
            else value.replace("_", " "),
        )
    return ax


def _label_regimes(
    ax: Axes,
    where: dict[str, list[tuple[int, int]]],
    xc: np.ndarray,
    yc: np.ndarray,
    xscale: str,
    yscale: str,
    Z: np.ndarray,
    half: float,
) -> None:
    """A letter per grid cell (v, p, e: the regime most of its points are in) on small grids;
    one word at the centre of each regime's points on large ones."""
    regimes = {r: ij for r, ij in where.items() if r}
    if Z.size > 150:
        for regime, ij in sorted(regimes.items()):
            ax.text(
                _centre([xc[j] for _, j in ij], xscale),
                _centre([yc[i] for i, _ in ij], yscale),
                regime,
                ha="center",
                va="center",
                fontsize="small",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75},
            )
        return
    votes: dict[tuple[int, int], dict[str, int]] = {}
    for regime, ij in regimes.items():
        for key in ij:
            votes.setdefault(key, {}).setdefault(regime, 0)
            votes[key][regime] += 1
    for (i, j), count in sorted(votes.items()):
        regime = max(sorted(count), key=lambda r: count[r])
        dark = np.isfinite(Z[i, j]) and abs(Z[i, j]) > 0.6 * half
        ax.text(
            xc[j],
            yc[i],
            regime[0],
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else "black",
        )
    ax.set_title("  ".join(f"{r[0]}: {r}" for r in sorted(regimes)), fontsize="small")


def _axis_rank(name: str) -> tuple[int, str]:
    short = name.split(".")[-1]
    return (_PRIMARY.index(short) if short in _PRIMARY else len(_PRIMARY), name)


# Sweep axes in the order they go on x, then y (JSON sorts keys, so order is not kept).
_PRIMARY = (
    "sigma_w",
    "spectral_radius",
    "forget_bias",
    "chrono_tmax",
    "update_bias",
    "sigma_u",
    "sigma_b",
    "hidden_size",
    "steps",
    "cell",
)
_AXIS_LABELS = {
    "sigma_w": r"$\sigma_w$",
    "sigma_u": r"$\sigma_u$",
    "sigma_b": r"$\sigma_b$",
    "spectral_radius": r"spectral radius $\rho$",
    "forget_bias": r"forget bias $b_f$",
    "update_bias": r"update bias $b_z$",
    "hidden_size": r"hidden size $n$",
}


def _axis_label(name: str) -> str:
    short = name.split(".")[-1]
    return _AXIS_LABELS.get(short, short.replace("_", " "))


def _index(values: list[Any], v: Any) -> int | None:
    for i, u in enumerate(values):
        if u == v or (
            isinstance(u, (int, float))
            and isinstance(v, (int, float))
            and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12)
        ):
            return i
    return None


def _centre(values: list[float], scale: str) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(arr)))) if scale == "log" else float(np.mean(arr))


# ---- saving ----------------------------------------------------------------------------------


def save_figure(
    fig: Figure, path_stem: str | os.PathLike[str], formats: Sequence[str] = FORMATS, dpi: int = DPI
) -> list[Path]:
    """Write ``fig`` as ``path_stem.<fmt>`` for each format, atomically and reproducibly.

    Dates are dropped from the metadata, the SVG id salt is fixed and text becomes paths, so
    the same figure gives the same bytes on every run and machine with the same matplotlib.

    Returns:
        The paths written.
    """
    stem = Path(path_stem)
    metadata = {
        "pdf": {
            "Creator": "gradflow",
            "Producer": "gradflow",
            "CreationDate": None,
            "ModDate": None,
        },
        "svg": {"Creator": "gradflow", "Date": None},
        "png": {"Software": "gradflow"},
    }
    written = []
    rc = {"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "pdf.fonttype": 42}
    for fmt in formats:
        if fmt not in metadata:
            raise UsageError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
    with _frozen_layout(fig):
        for fmt in formats:
            written.append(_save_one(fig, stem, fmt, dpi, metadata[fmt], rc))
    return written


@contextlib.contextmanager
def _frozen_layout(fig: Figure) -> Iterator[None]:
    """Lay the figure out once, round the axes positions to 1e-6 of the figure, and keep
    them for every format.

    Constrained layout is iterative: it starts from the current positions, so a figure drawn
    before (on screen, or as PNG at another dpi) would otherwise come out a few ulp apart,
    and SVG clip-path ids, hashes of those positions, would differ.
    """
    engine = fig.get_layout_engine()
    if engine is None or not engine.__class__.__name__.startswith(("Constrained", "Tight")):
        yield
        return
    fig.draw_without_rendering()
    for ax in fig.axes:
        ax.set_position([round(v, 6) for v in ax.get_position().bounds], which="both")
    fig.set_layout_engine("none")
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


def _save_one(
    fig: Figure, stem: Path, fmt: str, dpi: int, metadata: dict[str, Any], rc: dict[str, Any]
) -> Path:
    path = stem.with_name(f"{stem.name}.{fmt}")
    with mpl.rc_context(rc), atomic_open(path, "wb", parents=True) as fh:
        if fmt == "svg":
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
            fh.write(compact_svg(buf.getvalue()))
        else:
            fig.savefig(fh, format=fmt, dpi=dpi, metadata=metadata)
    return path


_SVG_ATTR = re.compile(rb'\s(d|x|y)="([^"]*)"')
_SVG_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _round(token: str) -> str:
    if "." not in token or "e" in token.lower():
        return token
    text = f"{float(token):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def compact_svg(svg: bytes) -> bytes:
    """Round path and marker coordinates of matplotlib SVG to 0.01 pt (3.5 micrometres) and
    drop ``L`` commands SVG implies (a line-to after a move-to or line-to).

    matplotlib writes six decimals; two are below what any screen or printer resolves. The
    file gets about a third smaller; transforms (which scale glyphs) are left exact.
    """

    def attribute(m: re.Match[bytes]) -> bytes:
        name, value = m.group(1), m.group(2).decode("ascii")
        if name != b"d":
            return b' %s="%s"' % (name, _round(value).encode("ascii"))
        out: list[str] = []
        last = ""
        for tok in _SVG_TOKEN.findall(value):
            if tok.isalpha():
                if tok == "L" and last in ("M", "L"):
                    last = "L"
                    continue
                last = tok
                out.append(tok)
            else:
                out.append(_round(tok))
        return b' d="%s"' % " ".join(out).encode("ascii")

    return _SVG_ATTR.sub(attribute, svg)


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
    """A new Figure (not registered with pyplot) with one panel drawn by ``plot``."""
    fn = globals().get(plot)
    if not plot.startswith("plot_") or fn is None:
        raise UsageError(f"unknown plot {plot!r}")
    with mpl.rc_context(style(venue, column)):
        fig = Figure()
        fn(result, fig.add_subplot(), **kwargs)
    return fig


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
        with mpl.rc_context(style(venue, column)):
            fig = draw(res, plot, venue=venue, column=column, **kwargs)
            written += save_figure(fig, Path(out_dir) / stem, formats)
    return written

r"""Curves over lags: norms with their quantile bands, path-restricted chains, decay rates."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..errors import UsageError
from ..results import ExperimentResult
from .data import Band, cell_styles, load_result, norm_bands
from .style import PATH_STYLES, QUANTITIES


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
    fig = ax.get_figure(root=True)
    width = (fig.get_figwidth() if fig is not None else 6.0) * ax.get_position().width
    return max(80, int(25 * width))


#: The ``gid`` of every series line gradflow draws: a later call on the same Axes counts them
#: to continue the styles (colour, marker, line style) instead of starting over.
SERIES_GID = "gradflow-series"


def series_count(ax: Axes) -> int:
    """How many gradflow series (lines with a label) the Axes already holds."""
    return sum(1 for ln in ax.get_lines() if ln.get_gid() == SERIES_GID)


def _line(
    ax: Axes,
    band: Band,
    colour: Any,
    marker: str,
    label: str | None,
    linestyle: Any = "-",
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
        gid=SERIES_GID if label else None,
    )
    if fill and np.any(band.high > band.low):
        ax.fill_between(band.x, band.low, band.high, color=colour, alpha=alpha, linewidth=0)


def _legend(ax: Axes, extra: Iterable[tuple[str, str]] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for label, ls in extra:
        handles.append(Line2D([], [], color="0.35", linestyle=cast(Any, ls)))
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


def _merge_limits(
    ax: Axes, new: tuple[float, float], keep: bool, axis: str = "y"
) -> tuple[float, float]:
    """``new``, widened to the Axes' current limits when ``keep`` (it already held series)."""
    if not keep:
        return new
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    return min(lo, new[0]), max(hi, new[1])


def _label(ax: Axes, name: str) -> str:
    """``name``, or ``name (2)`` ... when the Axes already has a series of that name."""
    taken = {ln.get_label() for ln in ax.get_lines() if ln.get_gid() == SERIES_GID}
    label, k = name, 2
    while label in taken:
        label, k = f"{name} ({k})", k + 1
    return label


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

    One style (colour, marker, line style: :func:`~gradflow.plots.style.series_style`) per
    series. ``result`` may be a list of results, drawn in order; a call on an Axes that already
    holds gradflow series continues their styles and widens, never narrows, the limits, so
    ``plot_norms(rnn, ax); plot_norms(lstm, ax)`` draws two distinct curves that both fit. For
    experiments, the Pascanu bound (dashed) and the mean-field slope (dotted, anchored at the
    start of the decay-rate window) and the largest Lyapunov exponent (a slope line) are drawn
    where the result carries them (:func:`_overlays`).

    Args:
        result: AnalysisResult (the band spans its batch) or experiment result (its
            quantiles), or a list of them.
        ax: the Axes to draw on (default: the current Axes).
        quantity: one of :data:`QUANTITIES`.
        cells: which cells to draw (default: all).
        band: shade the quantile band.
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
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    if not results:
        raise UsageError("no result to plot")
    keep = series_count(ax) > 0
    extra: dict[str, str] = {}
    seen: list[np.ndarray] = []
    xs: list[float] = []
    for one in results:
        res = load_result(one)
        bands = norm_bands(res, quantity)
        if not bands:
            raise UsageError(f"the result has no {quantity}")
        styles = cell_styles(res, offset=series_count(ax))
        for name, b in bands.items():
            if cells is not None and name not in cells:
                continue
            st = styles[name]
            _line(ax, b, st.colour, st.marker, _label(ax, name), st.linestyle, fill=band)
            seen += [b.low, b.high, b.median]
            xs += [float(b.x[0]), float(b.x[-1])]
            info = res.cells[name] if isinstance(res, ExperimentResult) else None
            if overlays and info is not None:
                _overlays(ax, b, info, st.colour, quantity, extra)
    limits = _finite_limits(seen)
    if limits is not None:
        lo, hi = limits
        ax.set_ylim(*_merge_limits(ax, (lo, hi + 0.12 * (hi - lo) if extra else hi), keep))
    if xs:
        ax.set_xlim(*_merge_limits(ax, (min(xs), max(xs)), keep, "x"))
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(QUANTITIES[quantity])
    _legend(ax, extra.items())
    return ax


#: Line style of the largest Lyapunov exponent's slope line (dense dots).
LYAPUNOV_DASH: Any = (0, (1, 1))
#: The ``gid`` of that line.
LYAPUNOV_GID = "gradflow-lyapunov-slope"


def _overlays(
    ax: Axes, b: Band, info: Any, colour: Any, quantity: str, extra: dict[str, str]
) -> None:
    """Overlays of one experiment cell: the Pascanu bound (dashed); the annealed mean-field
    growth rate on the Frobenius norm (dotted, anchored at the start of the decay-rate window;
    the tanh RNN's mean-field slope for results older than schema 3); and on the spectral norm
    the largest Lyapunov exponent as a slope line through the median at the last lag, over the
    fitted window, with its ``±2`` standard-error wedge (the long-lag slope approaches it)."""
    bound = info.pascanu
    if bound and quantity in ("log10_spectral_norm", "log10_spectral_norm_hidden"):
        ax.plot(b.x, bound.log10_bound, color=colour, linestyle="--", linewidth=0.9)
        extra["Pascanu bound"] = "--"
    k0 = min(max(int(info.decay_rate.window[0]), 0), len(b.x) - 1)
    annealed = getattr(info, "annealed", None)
    if annealed is not None:  # schema 3: the annealed rate of E||P||_F^2, on the F-norm only
        slope = annealed.growth_rate if quantity == "log10_frobenius_norm" else None
    else:  # older results: the tanh RNN's mean-field slope
        slope = info.meanfield.predicted_slope if info.meanfield else None
        slope = None if quantity == "log10_gradient_norm" else slope
    if slope is not None and math.isfinite(slope):
        ax.plot(
            b.x,
            b.median[k0] + slope * (b.x - b.x[k0]),
            color=colour,
            linestyle=":",
            linewidth=1.0,
        )
        extra["annealed mean field" if annealed is not None else "mean-field slope"] = ":"
    lyap = info.largest_lyapunov() if hasattr(info, "largest_lyapunov") else None
    if lyap is not None and quantity == "log10_spectral_norm" and np.isfinite(b.median[-1]):
        lam, se = lyap  # a slope line through the median at the last lag, over the window
        x = b.x[k0:]
        end = b.x[-1]
        ax.plot(x, b.median[-1] + lam * (x - end), color=colour, linestyle=LYAPUNOV_DASH,
                linewidth=1.0, gid=LYAPUNOV_GID)  # fmt: skip
        if math.isfinite(se) and se > 0:
            ax.fill_between(
                x,
                b.median[-1] + (lam - 2 * se) * (x - end),
                b.median[-1] + (lam + 2 * se) * (x - end),
                color=colour,
                alpha=0.12,
                linewidth=0,
            )
        extra["Lyapunov slope"] = LYAPUNOV_DASH


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
    keep = series_count(ax) > 0
    styles = cell_styles(res, offset=series_count(ax))
    seen: list[np.ndarray] = []
    for name in names:
        colour, marker, _ = styles[name]
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
                _label(ax, name) if full_path else None,
                linestyle=ls,
                fill=full_path,
            )
            seen += [b.median]
    limits = _finite_limits(seen)
    if limits is not None:
        ax.set_ylim(*_merge_limits(ax, limits, keep))
    ax.set_xlabel(r"lag $k$")
    ax.set_ylabel(QUANTITIES[quantity])
    if len(names) == 1 and not keep:
        ax.set_title(names[0])
    if legend:
        _legend(ax, PATH_STYLES.items())
    return ax


def plot_decay_rates(result: Any, ax: Axes | None = None) -> Axes:
    """Decay rate per cell of an experiment: median with the runs' 10-90 % band (thin, with
    caps) and, where the result carries it (schema 4), the 95 % bootstrap confidence interval
    of the median (a thick bar).

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
        colour, marker, _ = styles[name]
        ax.errorbar(
            [i],
            [med],
            yerr=[[med - lo], [hi - med]],
            color=colour,
            marker=marker,
            capsize=2,
            linestyle="none",
        )
        ci = rate.interval
        if ci is not None:
            ax.vlines(i, ci["low"], ci["high"], color=colour, linewidth=3.5, alpha=0.55)
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=45 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
    )
    ax.set_ylabel("decay rate (decades/step)")
    return ax

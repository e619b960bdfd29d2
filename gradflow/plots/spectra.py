"""Spectra: singular values of the Jacobian product at several lags, Lyapunov exponents, and
the product's expansion by the number of multiplicative factors (a spectrum over ``j``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes

from ..errors import UsageError
from .curves import _axes, _legend, _line
from .data import Band, _quantiles, _spectrum_bands, cell_styles, load_result
from .style import series_style


def plot_singular_values(
    result: Any,
    ax: Axes | None = None,
    *,
    cell: str | None = None,
    lags: Sequence[int] | None = None,
    legend: bool = True,
) -> Axes:
    r"""The singular values of ``ds_T/ds_{T-k}`` (descending), one line per lag ``k``.

    For an experiment only certified values are drawn (:mod:`gradflow.prodsvd`): a value that
    is not certified in a run is left out of that index's median and band; an index with no
    certified value leaves a gap. An analysis result (``gradflow analyze --singular-lags``)
    draws its values where its ``singular_certified`` mask is True; an old result without the
    mask (one SVD of the accumulated product) only the values that SVD resolves to 1e-3
    relative by a first-order error bound (:func:`gradflow.plots.data.resolved_by_one_svd`;
    the deep ones are rounding noise).

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
    chosen = [
        (k, v) for k, v in spectra[name].items() if lags is None or int(float(k)) in set(lags)
    ]
    for i, (lag, values) in enumerate(chosen):
        values = np.atleast_2d(values)
        idx = np.arange(1, values.shape[1] + 1, dtype=float)
        b = Band(idx, *_quantiles(values, axis=0))
        st = series_style(i)
        _line(ax, b, st.colour, st.marker, f"$k={lag}$", st.linestyle)
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\log_{10}\sigma_i(\partial s_T/\partial s_{T-k})$")
    ax.set_title(name)
    if legend:
        _legend(ax)
    return ax


#: The gid of the Lyapunov spectrum's error bars (mean over runs +- 2 standard errors).
ERRORBAR_GID = "gradflow-lyapunov-errorbars"


def _mean_stderr(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (rows) of each exponent and its standard error (NaN where a run's
    exponent is not finite, or with one run)."""
    n = values.shape[0]
    with np.errstate(invalid="ignore"):
        mean = values.mean(axis=0)
        se = values.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full_like(mean, np.nan)
    return mean, se


def plot_lyapunov(
    result: Any, ax: Axes | None = None, *, cells: Sequence[str] | None = None
) -> Axes:
    r"""Lyapunov spectra in decades per step (``lambda_i / ln 10``, the unit of every rate in
    gradflow; results store nats), median and band over runs, one style per cell, with error
    bars of ``±2`` standard errors around the mean over runs (the standard error of the mean
    over runs, as for the largest exponent in the report's decay table).

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
        values = np.atleast_2d(by_label[""]) / math.log(10.0)  # nats -> decades
        idx = np.arange(1, values.shape[1] + 1, dtype=float)
        st = styles[name]
        _line(ax, Band(idx, *_quantiles(values, axis=0)), st.colour, st.marker, name, st.linestyle)
        mean, se = _mean_stderr(values)
        ok = np.isfinite(mean) & np.isfinite(se)
        if ok.any() and values.shape[0] > 1:
            bars = ax.errorbar(
                idx[ok], mean[ok], yerr=2.0 * se[ok], fmt="none", ecolor=cast(Any, st.colour),
                elinewidth=0.8, capsize=1.5, capthick=0.8,
            )  # fmt: skip
            for artist in bars.lines[1] + bars.lines[2]:  # caps and bars: one gid to find them
                artist.set_gid(ERRORBAR_GID)
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\lambda_i/\ln 10$ (decades/step)")
    _legend(ax)
    return ax


def plot_path_terms(
    result: Any,
    ax: Axes | None = None,
    *,
    cell: str | None = None,
    legend: bool = True,
) -> Axes:
    r"""The expansion ``P_k = sum_j S_j`` by the number ``j`` of multiplicative factors:
    ``log10 ||S_j||_F`` against ``j``, one line per lag ``k`` (median over runs, resolved terms
    only), with ``log10 ||P_k||_F`` of the full product as a horizontal line in the same style.

    The gap between the ``j = 0`` point and the horizontal line of its lag is the additive
    path's share ``||S_0|| / ||P_k||`` (:class:`gradflow.results.diagnostics.PathTerms`).

    Args:
        result: an experiment result whose cells carry ``path_terms``.
        ax: the Axes (default: the current Axes).
        cell: which cell (default: the first with path terms).

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    res = load_result(result)
    cells = {n: c.path_terms for n, c in getattr(res, "cells", {}).items() if c.path_terms}
    if not cells:
        raise UsageError("the result has no path expansion: run an experiment with paths = true")
    name = cell if cell is not None else next(iter(cells))
    if name not in cells:
        raise UsageError(f"no path expansion for cell {name!r}; have {', '.join(cells)}")
    terms = cells[name]
    for i, k in enumerate(terms.lags):
        vals = np.where(terms.resolved[i], terms.log10_term_norm[i], np.nan)[:, : k + 1]
        j = np.arange(k + 1, dtype=float)
        st = series_style(i)
        _line(ax, Band(j, *_quantiles(vals, axis=0)), st.colour, st.marker, f"$k={k}$", "-")
        full = float(np.median(terms.log10_full_norm[i]))
        ax.axhline(full, color=st.colour, linestyle="--", linewidth=0.9)
    ax.set_xlabel(r"multiplicative factors $j$")
    ax.set_ylabel(r"$\log_{10}\|S_j\|_F$")
    ax.set_title(name)
    if legend:
        _legend(ax, [(r"$\|P_k\|_F$ (full product)", "--")])
    return ax

"""Spectra: singular values of the Jacobian product at several lags, Lyapunov exponents."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..errors import UsageError
from .curves import _axes, _legend, _line
from .data import Band, _quantiles, _spectrum_bands, cell_styles
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


def plot_lyapunov(
    result: Any, ax: Axes | None = None, *, cells: Sequence[str] | None = None
) -> Axes:
    r"""Lyapunov spectra in decades per step (``lambda_i / ln 10``, the unit of every rate in
    gradflow; results store nats), median and band over runs, one style per cell.

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
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\lambda_i/\ln 10$ (decades/step)")
    _legend(ax)
    return ax

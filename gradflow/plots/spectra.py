"""Spectra: singular values of the Jacobian product at several lags, Lyapunov exponents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..errors import UsageError
from .curves import _axes, _legend, _line
from .data import Band, _quantiles, _spectrum_bands, cell_styles
from .style import MARKERS, palette


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

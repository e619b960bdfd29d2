"""Reading results for figures: typed results in, lag-indexed bands out (nothing recomputed).

An experiment already carries its quantile bands (:class:`gradflow.results.Band`, which knows
its levels); for an analysis the band is the spread over its batch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..results import AnalysisResult, ExperimentResult, Result
from ..results import load_result as _load_typed
from .style import SeriesStyle, series_style


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


def _quantiles(rows: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


#: Relative accuracy an analysis result's singular value must be resolved to, by the bound of
#: :func:`resolved_by_one_svd`, to be drawn (1e-3: 4e-4 decades, below a line's width).
ONE_SVD_RELATIVE = 1e-3


def resolved_by_one_svd(log10_sv: np.ndarray, lag: int, state_size: int) -> np.ndarray:
    r"""Which singular values of one SVD of a ``lag``-factor float64 product are resolved.

    ``gradflow analyze --singular-lags`` (:class:`~gradflow.results.AnalysisResult`) took one
    SVD of the accumulated, renormalised product before its results recorded the certified
    mask (schema version 1): such values carry no certificate, and those far below the largest
    are rounding noise (``gradflow.prodsvd``). The rule is the fallback for those files. By
    Weyl's inequality a value is perturbed by at most the norm of the product's error, which
    to first order is ``k m eps sigma_1`` for ``k`` factors of size ``m``; a value is resolved to
    :data:`ONE_SVD_RELATIVE` when ``k m eps sigma_1 <= ONE_SVD_RELATIVE sigma_i``. This is a
    first-order bound, not a certificate (an experiment's values are certified).

    Args:
        log10_sv: ``(..., r)`` log10 singular values, descending along the last axis.
        lag: the number of factors ``k``.
        state_size: ``m``.

    Returns:
        A boolean mask of the same shape (False for non-finite values).
    """
    values = np.asarray(log10_sv, dtype=float)
    eps = float(np.finfo(np.float64).eps)
    depth_limit = math.log10(ONE_SVD_RELATIVE / (max(lag, 1) * max(state_size, 1) * eps))
    with np.errstate(invalid="ignore"):
        depth = values[..., :1] - values
        resolved: np.ndarray = np.isfinite(values) & (depth <= depth_limit)
    return resolved


def _one_svd_resolved(res: AnalysisResult) -> dict[int, np.ndarray]:
    """An analysis result's singular values with those it does not vouch for set to NaN: by its
    ``singular_certified`` mask (certified product SVD), or, for a result that predates the
    mask (one SVD, mask None), by :func:`resolved_by_one_svd`."""
    out = {}
    mask = res.singular_certified
    for lag, values in res.log10_singular_values.items():
        v = np.array(values, dtype=float)
        if mask is not None and lag in mask:
            keep = np.asarray(mask[lag], dtype=bool) & np.isfinite(v)  # exact zeros not drawn
        else:
            keep = resolved_by_one_svd(v, int(lag), max(v.shape[-1], res.hidden_size))
        out[lag] = np.where(keep, v, np.nan)
    return out


def _spectrum_bands(result: Any, key: str) -> dict[str, dict[str, np.ndarray]]:
    """Per cell, ``{label: (runs, r) array}`` of singular values by lag (an experiment's
    values that are not certified, and an analysis result's that are not certified (or, in
    an old result without the mask, that one SVD does not resolve), are NaN, so never drawn),
    or of Lyapunov exponents (label ``""``)."""
    res = load_result(result)
    if isinstance(res, AnalysisResult):
        cells: dict[str, Any] = {res.cell: res}
        get = (
            _one_svd_resolved  # certified values (old files: those one SVD resolves)
            if key == "sv"
            else (lambda c: {} if c.lyapunov_exponents is None else {"": c.lyapunov_exponents})
        )
    else:
        if not isinstance(res, ExperimentResult):
            raise UsageError(f"a {res.kind} result has no spectra to plot")
        cells = dict(res.cells)
        get = (
            (lambda c: c.certified_singular_values())  # uncertified values are NaN: not drawn
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


def cell_styles(result: Any, offset: int = 0) -> dict[str, SeriesStyle]:
    """``{cell: SeriesStyle(colour, marker, linestyle)}`` by position in :func:`cell_order`
    (from ``offset``), the same in every figure of one result."""
    res = load_result(result)
    names = (
        [res.cell]
        if isinstance(res, AnalysisResult)
        else list(res.cells)
        if isinstance(res, ExperimentResult)
        else []
    )
    return {c: series_style(offset + i) for i, c in enumerate(names)}

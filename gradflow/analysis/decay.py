r"""Decay rates of log10 norms against the lag, and quantile bands over runs (typed
:class:`~gradflow.results.Band` and :class:`~gradflow.results.DecayRate`).

A Jacobian product that vanishes or explodes geometrically has ``log10 ||ds_T/ds_{T-k}||``
linear in the lag ``k``; its slope, in **decades per step**, is the decay rate (negative:
vanishing; positive: exploding). :func:`decay_rate` fits it by least squares over a window of
lags. The default window ``[max(1, T // 10), T]`` skips the first tenth of the lags, the
transient where the product's top singular directions have not yet aligned (short lags mix
many directions of comparable gain).

Examples:
    >>> import numpy as np
    >>> norms = -0.25 * np.arange(21.0)[:, None] + np.array([[0.0, 1.0]])
    >>> decay_rate(norms).tolist()
    [-0.25, -0.25]
    >>> default_window(20)
    (2, 20)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import UsageError
from ..results import Band, DecayRate

#: The default band: 10 % and 90 % (with the median).
QUANTILES = (0.1, 0.9)
UNITS = "decades per step"


def default_window(steps: int) -> tuple[int, int]:
    """``(max(1, T // 10), T)``: every lag but the first tenth (the transient)."""
    return max(1, steps // 10), steps


def _window(steps: int, window: Sequence[int] | None) -> tuple[int, int]:
    if window is None:
        k0, k1 = default_window(steps)
    else:
        if len(window) != 2:
            raise UsageError(f"window must be (k0, k1), got {window!r}")
        k0, k1 = int(window[0]), int(window[1])
    if not 0 <= k0 < k1 <= steps:
        raise UsageError(
            f"window ({k0}, {k1}) must satisfy 0 <= k0 < k1 <= T = {steps} (two lags at least)"
        )
    return k0, k1


def decay_rate(log10_norms: ArrayLike, window: Sequence[int] | None = None) -> np.ndarray:
    r"""Least-squares slope of ``log10_norms`` against the lag, per column.

    Args:
        log10_norms: ``(T + 1, B)`` (or ``(T + 1,)``), row ``k`` the log10 norm at lag ``k``.
        window: ``(k0, k1)``, the lags fitted (both included); default
            :func:`default_window`.

    Returns:
        ``(B,)`` slopes in decades per step (a 0-d array for 1-d input).

    Raises:
        UsageError: a bad window, or a non-finite value inside it.
    """
    y = np.asarray(log10_norms, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[0] < 2:
        raise UsageError(f"log10_norms must have shape (T + 1, B) with T >= 1, got {y.shape}")
    k0, k1 = _window(y.shape[0] - 1, window)
    seg = y[k0 : k1 + 1]
    if not np.all(np.isfinite(seg)):
        raise UsageError(f"log10_norms has NaN or inf inside the window ({k0}, {k1})")
    k = np.arange(k0, k1 + 1, dtype=np.float64)
    kc = k - k.mean()
    kc = kc if seg.ndim == 1 else kc[:, None]
    return np.asarray(np.sum(kc * (seg - seg.mean(axis=0)), axis=0) / np.sum(kc * kc))


def quantile_band(values: ArrayLike, quantiles: Sequence[float] = QUANTILES) -> Band:
    """Quantiles over runs for every lag, as a :class:`~gradflow.results.Band`.

    Args:
        values: ``(T + 1, R)``, one column per run.
        quantiles: ``(lo, hi)``, the band's lower and upper level, in ``(0, 0.5]`` and
            ``[0.5, 1)``; the median is always included.

    Returns:
        A band of ``(T + 1,)`` arrays that knows its levels ``(lo, 0.5, hi)``.

    Examples:
        >>> band = quantile_band(np.arange(6.0).reshape(2, 3))
        >>> band.levels, band.median.tolist()
        ((0.1, 0.5, 0.9), [1.0, 4.0])
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 1:
        raise UsageError(f"values must have shape (T + 1, R), got {v.shape}")
    return Band.of(v, _levels(quantiles), axis=1)


def summarise_rates(rates: ArrayLike, quantiles: Sequence[float] = QUANTILES) -> Band:
    """Median and band of per-run decay rates (a :class:`~gradflow.results.Band` of scalars).

    Examples:
        >>> float(summarise_rates([-0.1, -0.2, -0.3]).median)
        -0.2
    """
    r = np.asarray(rates, dtype=np.float64).ravel()
    if r.size == 0 or not np.all(np.isfinite(r)):
        raise UsageError("rates must be a non-empty array of finite numbers")
    return Band.of(r, _levels(quantiles), axis=0)


def summarise(
    log10_norms: ArrayLike,
    window: Sequence[int] | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> DecayRate:
    """Decay rates of every run summarised: the :class:`~gradflow.results.DecayRate` of an
    experiment's cell summary (median, band, window, units)."""
    y = np.asarray(log10_norms, dtype=np.float64)
    k0, k1 = _window(y.shape[0] - 1, window)
    band = summarise_rates(decay_rate(y, (k0, k1)), quantiles)
    return DecayRate(
        median=float(band.median),
        low=float(band.low),
        high=float(band.high),
        levels=band.levels,
        window=(k0, k1),
        units=UNITS,
    )


def _levels(quantiles: Sequence[float]) -> tuple[float, float]:
    qs = [float(q) for q in quantiles if q != 0.5]
    if len(qs) != 2 or not (0.0 < qs[0] <= 0.5 <= qs[1] < 1.0):
        raise UsageError(f"quantiles must be (lo, hi) in (0, 0.5] and [0.5, 1), got {quantiles}")
    return qs[0], qs[1]

"""Arrays with a log10 scale per sequence: the log-domain bookkeeping of the stack analysis.

A value ``a * 10**l`` (``l`` one float per sequence, the first axis of ``a``) never underflows
or overflows however far a chain runs (DESIGN decision 4); sums of such values are taken on a
common scale, where a term ``10**-300`` times smaller than another is genuinely negligible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_numpy


class Scaled:
    """``a * 10**l`` with ``l`` a log10 scale per sequence (first axis of ``a``)."""

    __slots__ = ("a", "l")

    def __init__(self, a: Any, l: np.ndarray) -> None:  # noqa: E741
        self.a = a
        self.l = l


def factor(xp: Any, logs: np.ndarray, top: np.ndarray, ndim: int, dtype: Any) -> Any:
    with np.errstate(invalid="ignore", over="ignore"):
        f = np.where(np.isfinite(logs), np.power(10.0, logs - top), 0.0)
    return xp.asarray(f.reshape((-1,) + (1,) * (ndim - 1)).astype(dtype))


def top_scale(*logs: np.ndarray) -> np.ndarray:
    top = np.max(np.stack(logs), axis=0)
    return np.where(np.isfinite(top), top, 0.0)


def add(xp: Any, x: Scaled | None, y: Scaled | None, sign: float = 1.0) -> Scaled | None:
    """``x + sign * y`` on a common scale (either may be None: zero)."""
    if y is None:
        return x
    if x is None:
        return Scaled(sign * y.a, y.l.copy())
    top = top_scale(x.l, y.l)
    a = x.a * factor(xp, x.l, top, x.a.ndim, x.a.dtype)
    a = a + sign * (y.a * factor(xp, y.l, top, y.a.ndim, y.a.dtype))
    return Scaled(a, top)


def log_norm(xp: Any, a: Any) -> np.ndarray:
    """log10 of the Frobenius norm over every axis but the first."""
    flat = a.reshape(a.shape[0], -1)
    with np.errstate(divide="ignore"):
        return np.log10(to_numpy(xp.sqrt(xp.sum(flat * flat, axis=-1))).astype(np.float64))


def normalise(xp: Any, P: Any, l: np.ndarray) -> Scaled:  # noqa: E741
    """Scale ``P`` (a fresh array) to unit Frobenius norm in place, as the engine does."""
    B = P.shape[0]
    flat = P.reshape(B, 1, -1)
    s = xp.sqrt((flat @ xp.swapaxes(flat, -1, -2))[:, 0, 0])
    P *= (1.0 / xp.where(s > 0, s, 1.0))[(slice(None),) + (None,) * (P.ndim - 1)]
    with np.errstate(divide="ignore"):
        return Scaled(P, l + np.log10(to_numpy(s).astype(np.float64)))

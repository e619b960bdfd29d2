r"""Frobenius norms of batches of matrices that neither overflow nor underflow.

The chain's per-step scale is a Frobenius norm. Its plain form, the square root of a sum of
squares, is one BLAS dot per matrix and exact whenever the sum of squares is a normal,
finite number well above the underflow threshold; but entries above about ``1e154`` (``1e19``
in float32) overflow when squared, and entries below about ``1e-154`` (``1e-19``) underflow,
so a product of norm ``1e160`` would give ``inf`` (and then NaN) and one of norm ``1e-170``
would give 0. :func:`frobenius` keeps the fast form where it is exact and, for the matrices
where it is not, scales by the largest ``|entry|`` first (the idea of LAPACK's ``dnrm2``,
Blue 1978): ``||A||_F = a ||A / a||_F`` with ``a = max |A_ij|``, whose sum of squares lies in
``[1, rows * cols]``.

A matrix that is exactly zero has norm exactly 0 (its log10 is ``-inf``); a matrix with an
``inf`` or NaN entry gets a non-finite norm, which the caller reports.

References:
    J. L. Blue, "A portable Fortran program to find the Euclidean norm of a vector",
    ACM TOMS 4(1), 15-23, 1978.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=64)
def _threshold(dtype: Any, count: int) -> float:
    """Smallest sum of squares trusted as computed: every square that underflowed to a
    subnormal or zero then changes the sum by less than one rounding error."""
    info = np.finfo(dtype)
    return float(info.tiny) / float(info.eps) * max(1, count)


def _sum_squares(xp: Any, A: Any) -> tuple[Any, float]:
    """Plain sums of squares per matrix, and the smallest one trusted as computed (a finite
    sum at or above it is exact to rounding: no square overflowed, none that underflowed
    mattered)."""
    B = A.shape[0]
    count = int(np.prod(A.shape[1:]))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if A.flags.c_contiguous:
            flat = A.reshape(B, 1, count)
            ss = (flat @ xp.swapaxes(flat, -1, -2))[:, 0, 0]  # one BLAS dot per matrix
        else:
            ss = xp.einsum("bij,bij->b", A, A)
    return ss, _threshold(A.dtype, count)


def frobenius(xp: Any, A: Any) -> Any:
    """``||A[b]||_F`` for a batch ``A`` of shape ``(B, r, c)``, without overflow or underflow.

    Args:
        xp: the array namespace of ``A``.
        A: a batch of matrices (a view is fine).

    Returns:
        ``(B,)`` norms in ``A``'s dtype: exact to a few rounding errors for every finite
        ``A`` whose norm is representable; 0 for a zero matrix; ``inf``/NaN where ``A`` holds
        ``inf``/NaN.
    """
    ss, thr = _sum_squares(xp, A)
    if float(ss.min()) >= thr and float(ss.max()) < np.inf:
        return xp.sqrt(ss)
    ok = xp.isfinite(ss) & (ss >= thr)
    return xp.where(ok, xp.sqrt(xp.where(ok, ss, 1.0)), _scaled(xp, A))


def _scaled(xp: Any, A: Any) -> Any:
    """``a ||A / a||_F`` with ``a = max |A_ij|`` per matrix: the slow, safe form."""
    B = A.shape[0]
    a = xp.max(xp.abs(A.reshape(B, -1)), axis=-1)
    with np.errstate(invalid="ignore"):
        safe = xp.where((a > 0) & xp.isfinite(a), a, 1.0)
        S = A / safe[:, None, None]
        root = xp.sqrt(xp.einsum("bij,bij->b", S, S))
    return xp.where(a > 0, a * root, a)  # 0 for zero matrices; inf/NaN propagate through a


def normalise(xp: Any, A: Any) -> tuple[Any, bool]:
    """Scale every matrix of the batch ``A`` in place to unit Frobenius norm.

    Returns the norms (:func:`frobenius`) and whether they are all finite; a zero matrix stays
    zero, and ``A`` is left as it was when a norm is not finite (the caller reports it). The
    scaling multiplies by ``1 / s`` where the fast form was exact (``s`` is then far from
    under- and overflow) and divides by ``s`` otherwise.
    """
    ss, thr = _sum_squares(xp, A)
    if float(ss.min()) >= thr and float(ss.max()) < np.inf:  # NaN fails both: no fast path
        s = xp.sqrt(ss)
        A *= (1.0 / s)[:, None, None]
        return s, True
    ok = xp.isfinite(ss) & (ss >= thr)
    s = xp.where(ok, xp.sqrt(xp.where(ok, ss, 1.0)), _scaled(xp, A))
    if not bool(xp.isfinite(s).all()):
        return s, False
    A /= xp.where(s > 0, s, 1.0)[:, None, None]
    return s, True

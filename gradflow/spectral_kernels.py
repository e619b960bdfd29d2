r"""numba kernel of the certified spectral norms: the block Krylov step of :mod:`gradflow.spectral`.

:meth:`gradflow.spectral.Spectral._krylov` runs block Krylov Rayleigh-Ritz on ``L = P P^T`` for
a batch of products, one NumPy or LAPACK call per operation for the whole batch: at n = 128 a lag
costs about 60 such calls (0.8 ms for B = 8, as much as the chain's own product), and the batch
extends its basis until its slowest sequence is certified. :func:`krylov` runs the same
iteration, sequence by sequence, in one compiled call per lag: the thin products ``Q^T P`` and
``Z^T P^T`` are BLAS calls (numba's ``np.dot``), the Ritz problem LAPACK's symmetric
eigensolver, and everything else loops over small arrays; each sequence stops at its own depth.

The certificates are those of :mod:`gradflow.spectral`, computed from the same quantities with
the same rounding slacks: the *bracket* ``||P||_2^2 <= theta_1 + ||P||_F^2 - tr H``, the
*residual* bound with a proven gap, and the *full basis*; Kato-Temple and Aitken only guide.
The basis is extended by classical Gram-Schmidt twice against the whole basis, one column at
a time, its orthogonality checked (``max |Q^T q| <= ORTHO_TOL``, else further passes, else a
unit vector): the certificates need an orthonormal basis, and a rank-deficient product gives
dependent Krylov vectors. A sequence that no cheap certificate proves within the depth limits
is returned uncertified (kind -1) with its candidate ``theta_1``; the caller proves it with
the Cholesky test, or replaces it by an exact eigenvalue (:meth:`Spectral._certify`).

numba is optional (extra ``fast``): without it this module imports, and :func:`krylov` is the
same code run by the interpreter (far slower; :mod:`gradflow.spectral` then never calls it).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

try:  # through importlib: mypy is then clean with and without numba installed
    _numba_njit: Any = importlib.import_module("numba").njit
except ImportError:  # pragma: no cover - the CI has no numba
    _numba_njit = None

_F = TypeVar("_F", bound=Callable[..., Any])


def njit(**options: Any) -> Callable[[_F], _F]:
    """``numba.njit(**options)`` where numba is installed (typed for mypy), else the function
    itself."""
    if _numba_njit is None:  # pragma: no cover
        return lambda f: f
    return cast(Callable[[_F], _F], _numba_njit(**options))


#: Largest ``|Q^T q|`` accepted for a new basis vector (float64), as ``spectral.ORTHO_TOL``.
ORTHO_TOL = 1e-13
EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)


@njit(cache=True)
def _orthonormal_row(Qt: Any, p: int, v: Any) -> None:
    """Make ``v`` a unit vector orthogonal to the rows ``Qt[:p]`` (orthonormal) and store it
    as ``Qt[p]``: Gram-Schmidt twice, checked; a vector that is (numerically) in their span
    is replaced by a unit vector made orthogonal the same way."""
    rows = v.shape[0]
    w = v.copy()
    for attempt in range(rows + 1):
        n0 = math.sqrt(np.dot(w, w))
        ok = False
        if n0 > 0.0:
            for _ in range(4):
                if p > 0:
                    d = np.dot(Qt[:p], w)
                    w -= np.dot(d, Qt[:p])
                nrm = math.sqrt(np.dot(w, w))
                if not nrm > 1e-8 * n0:
                    break
                w /= nrm
                if p == 0 or np.max(np.abs(np.dot(Qt[:p], w))) <= ORTHO_TOL:
                    ok = True
                    break
        if ok:
            Qt[p] = w
            return
        w[:] = 0.0
        w[(p + attempt) % rows] = 1.0


@njit(cache=True)
def _orthonormal_block(Qt: Any, p: int, Nt: Any) -> None:
    """Rows ``Qt[p : p + len(Nt)]``: orthonormal, orthogonal to ``Qt[:p]``, spanning the rows
    of ``Nt`` (destroyed) with ``Qt[:p]``. Block Gram-Schmidt twice (BLAS), then the block's
    own rows in order; checked, and where a row is (numerically) dependent or the check
    fails, row by row (:func:`_orthonormal_row`)."""
    nb, rows = Nt.shape
    n0 = np.empty(nb)
    for k in range(nb):
        n0[k] = math.sqrt(np.dot(Nt[k], Nt[k]))
    if p > 0:
        for _ in range(2):
            D = np.dot(Qt[:p], Nt.T)
            Nt -= np.dot(D.T, Qt[:p])
    ok = True
    for k in range(nb):
        v = Nt[k]
        for _ in range(2):
            for j in range(k):
                v -= np.dot(Qt[p + j], v) * Qt[p + j]
        nrm = math.sqrt(np.dot(v, v))
        if not nrm > 1e-8 * n0[k]:
            ok = False
            break
        Qt[p + k] = v / nrm
    if ok:
        G = np.dot(Qt[: p + nb], Qt[p : p + nb].T)
        for i in range(p + nb):
            for k in range(nb):
                target = 1.0 if i == p + k else 0.0
                if abs(G[i, k] - target) > ORTHO_TOL:
                    ok = False
    if not ok:
        for k in range(nb):
            _orthonormal_row(Qt, p + k, Nt[k].copy())


#: From this many rows, :func:`_push` forms ``P Z`` as ``A @ Z^T`` (then transposed into
#: place): at 512 rows 30% faster than ``Z^T A^T`` (one thread, numba's BLAS call; below,
#: within noise).
TALL_FROM = 512


@njit(cache=True)
def _push(A: Any, Zt: Any, Yt: Any, lo: int, hi: int) -> None:
    """``Yt[lo:hi] = Zt[lo:hi] A^T`` (the rows ``P z`` of the pushed block)."""
    if A.shape[0] >= TALL_FROM:
        Yt[lo:hi] = np.dot(A, Zt[lo:hi].T).T
    else:
        np.dot(Zt[lo:hi], A.T, Yt[lo:hi])


@njit(cache=True)
def _aitken(s1: float, s2: float, s3: float, rtol: float) -> bool:
    """Guide, as :func:`gradflow.spectral._aitken`: ``s3`` looks converged."""
    i1 = (s2 - s1) / max(s2, TINY)
    i2 = (s3 - s2) / max(s3, TINY)
    rho = min(max(i2 / max(i1, TINY), 0.0), 0.999)
    tail = i2 * rho / (1.0 - rho)
    noise = 16 * EPS
    settled = abs(i1) <= noise and abs(i2) <= noise
    geometric = tail <= rtol and rho < 0.5 and i1 >= -noise and i2 >= -noise
    return settled or geometric


@njit(cache=True)
def krylov(
    P: Any,
    frob: Any,
    Y0: Any,
    R: Any,
    rtol: float,
    max_depth: int,
    extra: int,
    out: Any,
    Ynext: Any,
) -> int:
    """Block Krylov Rayleigh-Ritz for ``||P[i]||_2`` of every product of the batch ``P``
    (``(B, rows, cols)``, C-contiguous, Frobenius norms ``frob``), each sequence to its own
    depth (:meth:`gradflow.spectral.Spectral._krylov`, module docstring).

    The start block of sequence ``i`` is ``Y0[i][:, :b-1]`` and the fresh vector ``R[i]``
    (``b = Y0.shape[2]``). Writes ``out[0, i]`` the value ``sqrt(theta_1)``, ``out[1, i]``
    the certified relative gap, ``out[2, i]`` the kind (0 bracket, 1 residual, 2 full basis,
    -1 none), ``out[3, i]`` ``theta_1``, and ``Ynext[i]`` the start block pushed once
    through ``L`` (the next lag's start). Returns the depths taken (the lag counts its depth
    plus one; the deepest sequence counts, as in the NumPy path's batch)."""
    B, rows, cols = P.shape
    b = Y0.shape[2]
    pmax = min(rows, b * (max_depth + 1))
    Qt = np.empty((pmax, rows))
    Zt = np.empty((pmax, cols))
    Yt = np.empty((pmax, rows))
    hist = np.empty(max_depth + 2)
    slack = 4 * EPS
    total = 0
    for i in range(B):
        A = P[i]
        fro2 = frob[i] * frob[i]
        Nt = np.empty((b, rows))
        for k in range(b - 1):
            Nt[k] = Y0[i, :, k]
        Nt[b - 1] = R[i, :, 0]
        _orthonormal_block(Qt, 0, Nt)
        p = b
        np.dot(Qt[:p], A, Zt[:p])
        _push(A, Zt, Yt, 0, p)
        have_y = p  # rows of Yt computed
        depth = 0
        guided_at = -1
        kind = -1
        gap = 0.0
        t1 = 0.0
        last = 0  # first row of the newest block
        while True:
            H = np.dot(Zt[:p], Zt[:p].T)
            tr = 0.0
            for k in range(p):
                tr += H[k, k]
            rest = fro2 - tr
            w, C = np.linalg.eigh(H)
            t1 = max(w[p - 1], 0.0)
            safe_t1 = max(t1, TINY)
            c_out = max(rest, 0.0) + slack * fro2
            g_bracket = math.sqrt(1.0 + c_out / safe_t1) - 1.0
            if g_bracket <= rtol:
                kind, gap = 0, g_bracket
                break
            if have_y < p:  # the newest block's pass through P, needed for residuals
                _push(A, Zt, Yt, have_y, p)
                have_y = p
            c = C[:, p - 1].copy()
            r = np.dot(c, Yt[:p]) - t1 * np.dot(c, Qt[:p])
            rr = np.dot(r, r)
            if p >= rows:
                kind, gap = 2, 0.0
                break
            if p >= 2:
                yy = 0.0
                for k in range(p):
                    yy += np.dot(Yt[k], Yt[k])
                hh = 0.0
                for k in range(p):
                    for q in range(p):
                        hh += H[k, q] * H[k, q]
                e2 = max(yy - hh - rr, 0.0) + slack * yy
                t2 = w[p - 2]
                half = 0.5 * (t2 - c_out)
                mu = 0.5 * (t2 + c_out) + math.sqrt(half * half + e2)
                sep = t1 - mu
                if sep > 0.0:
                    g_res = math.sqrt(1.0 + rr / max(sep * safe_t1, TINY)) - 1.0
                    if g_res <= rtol:
                        kind, gap = 1, g_res
                        break
            if depth >= max_depth:
                break
            ritz_gap = t1 - w[p - 2] if p > 1 else t1
            guide = rr <= rtol * t1 * max(ritz_gap, TINY) and depth >= 1
            hist[depth] = math.sqrt(t1)
            if depth >= 2:
                guide = guide or _aitken(hist[depth - 2], hist[depth - 1], hist[depth], rtol)
            if guided_at < 0 and guide:
                guided_at = depth
            if guided_at >= 0 and depth >= guided_at + extra:
                break
            # Extend by L applied to the newest block.
            nb = min(b, rows - p, pmax - p)
            if nb <= 0:
                break
            _orthonormal_block(Qt, p, Yt[last : last + nb].copy())
            np.dot(Qt[p : p + nb], A, Zt[p : p + nb])
            last = p
            p += nb
            depth += 1
        out[0, i] = math.sqrt(t1)
        out[1, i] = gap
        out[2, i] = kind
        out[3, i] = t1
        for k in range(b):
            for r_ in range(rows):
                Ynext[i, r_, k] = Yt[k, r_]
        total = max(total, depth + 1)
    return total

r"""numba kernels of the compiled backend: one lag's certified spectral norm.

Called by :func:`gradflow.compiled_kernels.chain_chunk` once per lag and sequence (and for the
h block), on the product in cache; imported only when numba is installed (extra ``fast``).

The spectral norm of one lag's product with a certificate (the kinds of
:mod:`gradflow.spectral`): with an orthonormal block ``U`` (warm from the previous lag) and
``W = P^T U``, the Ritz value
``theta_1 = lambda_max(W^T W) <= ||P||_2^2`` and the *bracket*
``||P||_2^2 <= theta_1 + ||P||_F^2 - ||W||_F^2``. Where the block holds all but ``2 rtol``
of the Frobenius mass, the small eigenproblem is not solved (:func:`_bracket_fast`: a
Rayleigh quotient ``r`` of ``W^T W`` from a few power steps on a warm vector, and a
``b x b`` Cholesky test proving ``lambda_max(W^T W) <= r (1 + rtol)^2`` minus the mass
outside). When the bracket does not close to ``rtol``, ``U`` takes up to ``maxit`` steps
of subspace iteration on ``L = P P^T`` (two thin products each, Rayleigh-Ritz ordered),
each tried with the *residual* bound of :mod:`gradflow.spectral` (its gap proven from the
mass outside the block, :func:`_residual_gap`); then a *Cholesky* test of
``theta_1 (1 + rtol)^2 I - P^T P`` after a refinement on ``P^T P`` proves the candidate,
and where that fails the largest eigenvalue of ``P^T P`` by LAPACK's symmetric eigensolver
is the value (*exact*; its top eigenvectors also restart ``U``).

Kinds are reported as indices into :data:`gradflow.spectral.CERTIFICATES` (0 bracket,
1 residual, 3 cholesky, 4 exact). Every certificate holds up to rounding errors of order
``m eps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit as _numba_njit

_F = TypeVar("_F", bound=Callable[..., Any])


def njit(**options: Any) -> Callable[[_F], _F]:
    """``numba.njit(**options)``, typed for mypy (numba ships no type information)."""
    return cast(Callable[[_F], _F], _numba_njit(**options))


BRACKET, RESIDUAL, CHOLESKY, EXACT = 0, 1, 3, 4
#: Most subspace iterations on ``A^T A`` before the Cholesky test.
REFINE = 6
EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)


@njit(cache=True)
def _jacobi(H: Any, V: Any, w: Any, vectors: bool) -> None:
    """Eigenvalues ``w`` and, with ``vectors``, eigenvectors ``V`` (columns) of the small
    symmetric ``H`` (destroyed) by cyclic Jacobi rotations: accurate to ``eps ||H||``."""
    p = H.shape[0]
    for i in range(p):
        for j in range(p):
            V[i, j] = 1.0 if i == j else 0.0
    for _ in range(50):
        off = 0.0
        tot = 0.0
        for i in range(p):
            tot += H[i, i] * H[i, i]
            for j in range(i + 1, p):
                off += H[i, j] * H[i, j]
        if off <= 1e-36 * tot or off == 0.0:
            break
        for i in range(p - 1):
            for j in range(i + 1, p):
                hij = H[i, j]
                if hij == 0.0:
                    continue
                theta = (H[j, j] - H[i, i]) / (2.0 * hij)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(p):
                    hki, hkj = H[k, i], H[k, j]
                    H[k, i] = c * hki - s * hkj
                    H[k, j] = s * hki + c * hkj
                for k in range(p):
                    hik, hjk = H[i, k], H[j, k]
                    H[i, k] = c * hik - s * hjk
                    H[j, k] = s * hik + c * hjk
                if vectors:
                    for k in range(p):
                        vki, vkj = V[k, i], V[k, j]
                        V[k, i] = c * vki - s * vkj
                        V[k, j] = s * vki + c * vkj
    for i in range(p):
        w[i] = H[i, i]


@njit(cache=True)
def _orthonormalise(Y: Any, U: Any) -> None:
    """``U``: orthonormal columns spanning ``Y``'s, in column order (Gram-Schmidt twice); a
    column that ``Y`` leaves (nearly) dependent is replaced by a unit vector made orthogonal."""
    rows, b = Y.shape
    v = np.empty(rows)
    for k in range(b):
        for r in range(rows):
            v[r] = Y[r, k]
        for attempt in range(rows + 1):
            n0 = 0.0
            for r in range(rows):
                n0 += v[r] * v[r]
            for _ in range(2):
                for j in range(k):
                    d = 0.0
                    for r in range(rows):
                        d += U[r, j] * v[r]
                    for r in range(rows):
                        v[r] -= d * U[r, j]
            n1 = 0.0
            for r in range(rows):
                n1 += v[r] * v[r]
            if n0 > 0.0 and n1 > 1e-16 * n0:
                inv = 1.0 / math.sqrt(n1)
                for r in range(rows):
                    U[r, k] = v[r] * inv
                break
            for r in range(rows):
                v[r] = 0.0
            v[(k + attempt) % rows] = 1.0


@njit(cache=True, fastmath={"reassoc", "contract"})  # any summation order is backward stable
def _cholesky_ok(M: Any) -> bool:
    """Whether the symmetric ``M`` (overwritten) has a Cholesky factorisation: positive
    definite, up to the factorisation's backward error of order ``m eps ||M||``."""
    p = M.shape[0]
    for j in range(p):
        s = M[j, j]
        for k in range(j):
            s -= M[j, k] * M[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        M[j, j] = d
        for i in range(j + 1, p):
            t = M[i, j]
            for k in range(j):
                t -= M[i, k] * M[j, k]
            M[i, j] = t / d
    return True


@njit(cache=True)
def _certified(
    A: Any, fro2: float, U: Any, ws: Any, rtol: float, eps: float, tiny: float, maxit: int
) -> tuple[float, float, int, int]:  # noqa: E501
    """Certified ``||A||_2`` for ``A`` of Frobenius norm ``sqrt(fro2)`` (module docstring):
    ``(value, certified relative gap u / value - 1, kind, subspace iterations)``."""
    W, Y, WV, H, Hc, V, w, G, M, v, Ms = ws
    rows, cols = A.shape
    b = U.shape[1]
    if fro2 == 0.0:
        return 0.0, 0.0, BRACKET, 0
    it = 0
    t1 = 0.0
    while True:
        np.dot(A.T, U, W)
        trace = _gram_sym(W, H, Hc)
        if it == 0 and _bracket_fast(H, trace, fro2, v, Ms, rtol, eps):
            return math.sqrt(_rayleigh(H, v)), rtol, BRACKET, 0
        _jacobi(Hc, V, w, it < maxit)  # the vectors only for a subspace iteration
        top = _argmax(w)
        t1 = max(w[top], 0.0)
        c = max(fro2 - trace, 0.0) + 4.0 * eps * fro2
        gap = math.sqrt(1.0 + c / max(t1, tiny)) - 1.0
        if gap <= rtol:
            return math.sqrt(t1), gap, BRACKET, it
        if it >= maxit:
            break
        # Y = L U V, the Ritz vectors through L = A A^T (top first): the residual bound
        # from it, else one step of subspace iteration, U <- orth(Y).
        _ritz_first(W, V, w, WV)
        np.dot(A, WV, Y)
        g_res = _residual_gap(Y, U, V, w, top, H, c, rtol, eps, tiny)
        _orthonormalise(Y, U)
        it += 1
        if g_res <= rtol:
            v[:] = 0.0  # U's first column is the top Ritz direction
            v[0] = 1.0
            return math.sqrt(t1), g_res, RESIDUAL, it
    # Refine on G = A^T A, whose products are cheaper than A's pair, until the Ritz value
    # settles (a guide only: the Cholesky test below is what proves it).
    np.dot(A.T, A, G)
    _orthonormalise(W, WV)  # Q: orthonormal, spanning A^T U
    for _ in range(REFINE):
        np.dot(G, WV, W)  # G Q
        _gram(WV, W, H, Hc)  # Q^T G Q
        _jacobi(Hc, V, w, True)
        top = _argmax(w)
        t_new = w[top]
        it += 1
        settled = abs(t_new - t1) <= 0.25 * rtol * max(t_new, tiny)
        t1 = max(t1, t_new)
        if settled:
            break
        _ritz_first(W, V, w, Y)  # A is square: Y has G Q's shape
        _orthonormalise(Y, WV)
    u2 = t1 * (1.0 + rtol) ** 2
    for i in range(cols):
        for j in range(cols):
            M[i, j] = -G[i, j]
        M[i, i] += u2
    value, gap, kind = math.sqrt(t1), rtol, CHOLESKY
    if not _cholesky_ok(M):
        lam, vec = np.linalg.eigh(G)
        value, gap, kind = math.sqrt(max(lam[cols - 1], 0.0)), 0.0, EXACT
        for k in range(b):  # restart from the exact top right singular vectors
            for r in range(cols):
                WV[r, k] = vec[r, cols - 1 - k]
    np.dot(A, WV, Y)  # the next lag's block: U = orth(A Q)
    _orthonormalise(Y, U)
    v[:] = 0.0  # its first column is the top Ritz direction
    v[0] = 1.0
    return value, gap, kind, it


@njit(cache=True)
def _rayleigh(H: Any, v: Any) -> float:
    """``v^T H v`` for the unit vector ``v``."""
    b = v.shape[0]
    r = 0.0
    for i in range(b):
        acc = 0.0
        for j in range(b):
            acc += H[i, j] * v[j]
        r += v[i] * acc
    return r


@njit(cache=True)
def _bracket_fast(
    H: Any, trace: float, fro2: float, v: Any, Ms: Any, rtol: float, eps: float
) -> bool:  # fmt: skip
    """The bracket without the small eigenproblem: ``H = W^T W`` (``b x b``) of trace
    ``trace``, the warm unit vector ``v`` (updated) of its top eigenvector. A few power steps
    give the Rayleigh quotient ``r <= lambda_max(H)``; the bracket then proves
    ``||P||_2^2 <= lambda_max(H) + c <= r (1 + rtol)^2`` (``c`` the Frobenius mass outside the
    block, with the slack of :func:`_certified`) where a Cholesky factorisation of
    ``lam I - H``, ``lam = r (1 + rtol)^2 - c``, exists (``lambda_max(H) < lam``). False where
    it does not close (the caller then solves the small eigenproblem)."""
    c = max(fro2 - trace, 0.0) + 4.0 * eps * fro2
    if not c <= 2.0 * rtol * trace:  # lambda_max(H) <= trace: cannot close
        return False
    b = v.shape[0]
    r = 0.0
    for step in range(8):  # power steps: H v, normalised, until the quotient settles
        nrm = 0.0
        for i in range(b):
            acc = 0.0
            for j in range(b):
                acc += H[i, j] * v[j]
            Ms[0, i] = acc
            nrm += acc * acc
        if not nrm > 0.0:
            v[:] = 0.0
            v[0] = 1.0
            return False
        inv = 1.0 / math.sqrt(nrm)
        for i in range(b):
            v[i] = Ms[0, i] * inv
        r_new = _rayleigh(H, v)
        if step > 0 and abs(r_new - r) <= 4.0 * eps * r_new:
            r = r_new
            break
        r = r_new
    lam = r * (1.0 + rtol) ** 2 - c
    if not lam > r:
        return False
    for i in range(b):
        for j in range(b):
            Ms[i, j] = -H[i, j]
        Ms[i, i] += lam
    return _cholesky_ok(Ms)


@njit(cache=True)
def _gram_sym(X: Any, H: Any, Hc: Any) -> float:
    """``H = X^T X`` (its upper half, mirrored) and a copy in ``Hc``; returns its trace."""
    b = X.shape[1]
    np.dot(X.T, X, H)  # one BLAS call: a fifth of the loops' time at b = 4
    trace = 0.0
    for i in range(b):
        for j in range(i + 1, b):
            H[j, i] = H[i, j]
        for j in range(b):
            Hc[i, j] = H[i, j]
        trace += H[i, i]
    return trace


@njit(cache=True)
def _gram(X: Any, Z: Any, H: Any, Hc: Any) -> float:
    """``H = X^T Z`` (small: loops, no BLAS call) and a copy in ``Hc``; returns its trace."""
    rows, b = X.shape
    trace = 0.0
    for i in range(b):
        for j in range(b):
            acc = 0.0
            for r in range(rows):
                acc += X[r, i] * Z[r, j]
            H[i, j] = acc
            Hc[i, j] = acc
        trace += H[i, i]
    return trace


@njit(cache=True)
def _argmax(w: Any) -> int:
    k = 0
    for i in range(1, w.shape[0]):
        if w[i] > w[k]:
            k = i
    return k


@njit(cache=True)
def _ritz_first(W: Any, V: Any, w: Any, out: Any) -> None:
    """``out = W V`` with the eigenvectors ``V`` ordered by descending eigenvalue ``w``."""
    rows, b = W.shape
    for i in range(b):
        k = 0  # the rank of w[i] (ties in index order)
        for j in range(b):
            if w[j] > w[i] or (w[j] == w[i] and j < i):
                k += 1
        for r in range(rows):
            acc = 0.0
            for q in range(b):
                acc += W[r, q] * V[q, i]
            out[r, k] = acc


@njit(cache=True)
def _residual_gap(
    Y: Any, U: Any, V: Any, w: Any, top: int, H: Any, c: float, rtol: float, eps: float,
    tiny: float,
) -> float:  # fmt: skip
    """The *residual* certificate of :mod:`gradflow.spectral` for the block ``U`` on
    ``L = A A^T``: ``H = U^T L U`` with eigenvalues ``w`` and vectors ``V``, ``Y = L U V``
    (Ritz vectors, top first), ``c >= ||U_perp^T L U_perp||_2`` the Frobenius mass outside
    the block (with its slack). With the top Ritz vector's residual ``r = Y_0 - theta_1 U
    V_top`` and ``e^2 = ||Y||_F^2 - ||H||_F^2 - ||r||^2``, every eigenvalue of ``L`` on the
    complement of the top Ritz vector is at most ``mu = (theta_2 + c)/2 +
    sqrt(((theta_2 - c)/2)^2 + e^2)``, so ``||A||_2^2 <= theta_1 + ||r||^2 / (theta_1 -
    mu)``. Returns the certified relative gap (inf where ``mu >= theta_1``)."""
    rows, b = Y.shape
    if b < 2:
        return np.inf
    t1 = max(w[top], 0.0)
    t2 = -np.inf
    for i in range(b):
        if i != top and w[i] > t2:
            t2 = w[i]
    rr = 0.0
    yy = 0.0
    for r in range(rows):
        y1 = 0.0
        for q in range(b):
            y1 += U[r, q] * V[q, top]
        d = Y[r, 0] - t1 * y1
        rr += d * d
        for k in range(b):
            yy += Y[r, k] * Y[r, k]
    hh = 0.0
    for i in range(b):
        for j in range(b):
            hh += H[i, j] * H[i, j]
    slack = 4.0 * eps
    e2 = max(yy - hh - rr, 0.0) + slack * yy
    half = 0.5 * (t2 - c)
    mu = 0.5 * (t2 + c) + math.sqrt(half * half + e2)
    sep = t1 - mu
    if not sep > 0.0:
        return np.inf
    return math.sqrt(1.0 + rr / max(sep * max(t1, tiny), tiny)) - 1.0


def _workspace(rows: int, cols: int, b: int) -> tuple[Any, ...]:
    return (
        np.empty((cols, b)),
        np.empty((rows, b)),
        np.empty((cols, b)),
        np.empty((b, b)),
        np.empty((b, b)),
        np.empty((b, b)),
        np.empty(b),
        np.empty((cols, cols)),
        np.empty((cols, cols)),
        np.eye(b)[0].copy(),
        np.empty((b, b)),
    )


_workspace_jit = njit(cache=True)(_workspace)

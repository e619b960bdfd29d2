r"""numba kernels of the compiled backend: the per-sequence chain with certified spectral norms.

Imported only by :mod:`gradflow.compiled`, and only when numba is installed (extra ``fast``).
Nothing here knows a cell: the Jacobian factors arrive evaluated for a chunk of steps (by the
rollout that :mod:`gradflow.compiled_codegen` prints from the SymPy derivation, or by the NumPy
kernels of :mod:`gradflow.codegen`), with the derivation's terms ``diag(d) W diag(d')`` as a
small integer table and which column blocks hold a weight matrix. One call runs a whole chunk
of lags for every sequence of the batch, the sequences spread over numba's threads
(``prange``), with no allocation per lag:

1. ``P <- P J_t`` without forming ``J_t`` (:func:`_apply`): a column block with a weight matrix
   is assembled from its terms (``m x n``; up to four terms ``diag(d) W`` of a block in one
   pass) and multiplied by BLAS; a column block of diagonal blocks is a sum of column scalings
   (the LSTM's ``dh/dc`` and ``dc/dc``: half the dense floor's multiplies).
2. Renormalise to unit Frobenius norm, carrying log10 of the scale: the scale is folded into
   the next lag's product (a scalar on the assembled block, no pass over ``P``) and the
   certificates run on the unscaled product, whose norm is one lag's growth; a sum of
   squares outside ``[SAFE_LOW, SAFE_HIGH]`` (zero, tiny, huge, not finite) is scaled in
   place instead, exactly as :func:`gradflow.norms.normalise` (the plain sum of squares
   where it is exact, else scaled by the largest entry); a zero product stays zero.
3. The spectral norm with a certificate (the kinds of :mod:`gradflow.spectral`): with an
   orthonormal block ``U`` (warm from the previous lag) and ``W = P^T U``, the Ritz value
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
from numba import prange

_F = TypeVar("_F", bound=Callable[..., Any])


def njit(**options: Any) -> Callable[[_F], _F]:
    """``numba.njit(**options)``, typed for mypy (numba ships no type information)."""
    return cast(Callable[[_F], _F], _numba_njit(**options))


BRACKET, RESIDUAL, CHOLESKY, EXACT = 0, 1, 3, 4
#: Most subspace iterations on ``A^T A`` before the Cholesky test.
REFINE = 6
EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
#: Squared Frobenius norms of a product left unscaled, its renormalisation folded into the
#: next lag's product: far from underflow and overflow also for the certificates' fourth
#: powers (a lag's own growth factor is the product's norm here, not the whole chain's).
SAFE_LOW, SAFE_HIGH = 1e-100, 1e100


@njit(cache=True, inline="always")
def _axpy2(row: Any, a1: Any, x1: Any, a2: Any, x2: Any, f: float, fresh: bool) -> None:
    """``row (+)= (a1 * x1 + a2 * x2) * f`` elementwise (``=`` where ``fresh``)."""
    if fresh:
        for r in range(row.shape[0]):
            row[r] = (a1[r] * x1[r] + a2[r] * x2[r]) * f
    else:
        for r in range(row.shape[0]):
            row[r] += (a1[r] * x1[r] + a2[r] * x2[r]) * f


@njit(cache=True, inline="always")
def _axpy3(
    row: Any, a1: Any, x1: Any, a2: Any, x2: Any, a3: Any, x3: Any, f: float, fresh: bool
) -> None:  # fmt: skip
    """``row (+)= (a1 * x1 + a2 * x2 + a3 * x3) * f`` elementwise (``=`` where ``fresh``)."""
    if fresh:
        for r in range(row.shape[0]):
            row[r] = (a1[r] * x1[r] + a2[r] * x2[r] + a3[r] * x3[r]) * f
    else:
        for r in range(row.shape[0]):
            row[r] += (a1[r] * x1[r] + a2[r] * x2[r] + a3[r] * x3[r]) * f


@njit(cache=True, inline="always")
def _axpy4(
    row: Any, a1: Any, x1: Any, a2: Any, x2: Any, a3: Any, x3: Any, a4: Any, x4: Any, f: float,
    fresh: bool,
) -> None:  # fmt: skip
    """``row (+)= (a1 * x1 + ... + a4 * x4) * f`` elementwise (``=`` where ``fresh``)."""
    if fresh:
        for r in range(row.shape[0]):
            row[r] = (a1[r] * x1[r] + a2[r] * x2[r] + a3[r] * x3[r] + a4[r] * x4[r]) * f
    else:
        for r in range(row.shape[0]):
            row[r] += (a1[r] * x1[r] + a2[r] * x2[r] + a3[r] * x3[r] + a4[r] * x4[r]) * f


@njit(cache=True, inline="always")
def _axpy1(row: Any, a1: Any, x1: Any, f: float, fresh: bool) -> None:
    """``row (+)= a1 * x1 * f`` elementwise (``=`` where ``fresh``)."""
    if fresh:
        for r in range(row.shape[0]):
            row[r] = a1[r] * x1[r] * f
    else:
        for r in range(row.shape[0]):
            row[r] += a1[r] * x1[r] * f


@njit(cache=True, inline="always")
def _axpy0(row: Any, x1: Any, f: float, fresh: bool) -> None:
    """``row (+)= x1 * f`` elementwise (``=`` where ``fresh``)."""
    if fresh:
        for r in range(row.shape[0]):
            row[r] = x1[r] * f
    else:
        for r in range(row.shape[0]):
            row[r] += x1[r] * f


@njit(cache=True)
def _assemble(
    Gt: Any, i0: int, n: int, Fs: Any, k: int, b: int, WsT: Any, terms: Any, t: int, run: int,
    f: float, fresh: bool,
) -> None:  # fmt: skip
    """``Gt[:, i0 : i0 + n] (+)= f sum_q W_q^T diag(F[d_q])`` for the ``run`` (2 to 4) terms
    from row ``t`` of ``terms`` (:func:`_leading_run`), in one pass. A function of its own:
    inlined into :func:`_apply`, its loops were left scalar."""
    a1, a2 = Fs[terms[t, 3], k, b], Fs[terms[t + 1, 3], k, b]
    w1, w2 = terms[t, 2], terms[t + 1, 2]
    if run == 2:
        for c in range(n):
            _axpy2(Gt[c, i0 : i0 + n], a1, WsT[w1, c], a2, WsT[w2, c], f, fresh)
        return
    a3, w3 = Fs[terms[t + 2, 3], k, b], terms[t + 2, 2]
    if run == 3:
        for c in range(n):
            _axpy3(Gt[c, i0 : i0 + n], a1, WsT[w1, c], a2, WsT[w2, c], a3, WsT[w3, c], f, fresh)
        return
    a4, w4 = Fs[terms[t + 3, 3], k, b], terms[t + 3, 2]
    for c in range(n):
        _axpy4(Gt[c, i0 : i0 + n], a1, WsT[w1, c], a2, WsT[w2, c], a3, WsT[w3, c], a4,
               WsT[w4, c], f, fresh)  # fmt: skip


@njit(cache=True)
def _assemble_one(
    Gt: Any, i0: int, n: int, Fs: Any, k: int, b: int, WT: Any, d0: int, d1: int, f: float,
    fresh: bool,
) -> None:  # fmt: skip
    """``Gt[:, i0 : i0 + n] (+)= f (diag(F[d0]) W diag(F[d1]))^T`` (a factor index -1: 1)."""
    for c in range(n):
        f1 = (Fs[d1, k, b, c] if d1 >= 0 else 1.0) * f
        if d0 >= 0:
            _axpy1(Gt[c, i0 : i0 + n], Fs[d0, k, b], WT[c], f1, fresh)
        else:
            _axpy0(Gt[c, i0 : i0 + n], WT[c], f1, fresh)


@njit(cache=True)
def _leading_run(terms: Any, t: int) -> int:
    """How many terms from row ``t`` on (at most 4) share its block and are each
    ``diag(F[d0]) W`` (a weight, a leading factor, no trailing one): one pass assembles them."""
    nt = terms.shape[0]
    k = 0
    while (
        t + k < nt and k < 4 and terms[t + k, 0] == terms[t, 0] and terms[t + k, 1] == terms[t, 1]
        and terms[t + k, 2] >= 0 and terms[t + k, 3] >= 0 and terms[t + k, 4] < 0
    ):  # fmt: skip
        k += 1
    return k


@njit(cache=True)
def _apply(
    At: Any, Fs: Any, k: int, b: int, WsT: Any, terms: Any, out: Any, n: int, dense: Any,
    Gt: Any, f: float,
) -> None:  # fmt: skip
    """``out = (P J_t)^T f = J_t^T P^T f`` for ``At = P^T`` (the chain carries the transpose:
    a column block of ``P J_t`` is then a contiguous row block) at step ``k``, sequence ``b``,
    without forming ``J_t``; the scalar ``f`` is the previous lag's renormalisation, folded in
    here instead of a pass over ``P``. Rows of ``terms``: block row, block column, weight index
    or -1, leading and trailing factor index or -1 for a factor 1, i.e.
    ``diag(F[d0]) W diag(F[d1])`` or ``diag(F[d0])``; ``WsT`` holds the transposed weights. A
    column block ``j`` holding a weight matrix: its ``n x m`` block ``J[:, j]^T f`` is
    assembled in ``Gt`` (up to four weight terms of a block in one pass, the first pass over
    a block assigning; then the diagonal terms; blocks without a term are zeroed) and
    multiplied by BLAS, ``out[j] = Gt @ At``; a column block of diagonal blocks is a sum of
    row scalings of ``At`` (the LSTM's ``dh/dc`` and ``dc/dc``: half the dense floor's
    multiplies). The factors ``Fs`` are the chunk's."""
    m = At.shape[0]
    ns = dense.shape[0]
    nt = terms.shape[0]
    for j in range(ns):
        c0 = j * n
        if dense[j]:
            done = 0  # bit i: row block i of Gt written
            t = 0
            while t < nt:  # the weight terms
                if terms[t, 1] != j or terms[t, 2] < 0:
                    t += 1
                    continue
                i0, w, d0, d1 = terms[t, 0] * n, terms[t, 2], terms[t, 3], terms[t, 4]
                bit = 1 << terms[t, 0]
                fresh = (done & bit) == 0
                done |= bit
                run = _leading_run(terms, t)
                if run >= 2:
                    _assemble(Gt, i0, n, Fs, k, b, WsT, terms, t, run, f, fresh)
                    t += run
                    continue
                _assemble_one(Gt, i0, n, Fs, k, b, WsT[w], d0, d1, f, fresh)
                t += 1
            for t in range(nt):  # the diagonal terms of the block column
                if terms[t, 1] != j or terms[t, 2] >= 0:
                    continue
                i0, d0 = terms[t, 0] * n, terms[t, 3]
                bit = 1 << terms[t, 0]
                if (done & bit) == 0:
                    Gt[:, i0 : i0 + n] = 0.0
                done |= bit
                for c in range(n):
                    Gt[c, i0 + c] += (Fs[d0, k, b, c] if d0 >= 0 else 1.0) * f
            for i in range(ns):
                if (done >> i) & 1 == 0:
                    Gt[:, i * n : (i + 1) * n] = 0.0
            np.dot(Gt, At, out.reshape((ns, n, m))[j])  # a C-contiguous row block
        else:
            first = True
            for t in range(nt):
                if terms[t, 1] != j:
                    continue
                i0, d0 = terms[t, 0] * n, terms[t, 3]
                for c in range(n):
                    fc = (Fs[d0, k, b, c] if d0 >= 0 else 1.0) * f
                    _axpy0(out[c0 + c], At[i0 + c], fc, first)
                first = False
            if first:
                out[c0 : c0 + n] = 0.0


@njit(cache=True)
def _renormalise(A: Any, thr: float) -> tuple[float, float, float]:
    """The Frobenius norm ``s`` of ``A``, the scale ``inv`` still to apply to ``A``, and the
    squared Frobenius norm of ``A`` as it is left. Where the sum of squares is in
    ``[SAFE_LOW, SAFE_HIGH]``, ``A`` is left as it is (``inv = 1 / s``, folded into the next
    lag's product); else (zero, tiny, huge or not finite) it is scaled here as
    :func:`_normalise` does (``inv = 1``)."""
    rows, cols = A.shape
    flat = A.reshape(rows * cols)
    ss = np.dot(flat, flat)  # one BLAS dot
    if ss >= SAFE_LOW and ss <= SAFE_HIGH:
        s = math.sqrt(ss)
        return s, 1.0 / s, ss
    s = _normalise(A, thr)
    return s, 1.0, 1.0 if s > 0.0 else 0.0


@njit(cache=True)
def _normalise(A: Any, thr: float) -> float:
    """Scale ``A`` in place to unit Frobenius norm; return the norm (0: a zero matrix, left
    as it is; inf or NaN: not finite, ``A`` left as it is). :func:`gradflow.norms.normalise`."""
    rows, cols = A.shape
    flat = A.reshape(rows * cols)
    ss = np.dot(flat, flat)  # one BLAS dot
    if ss >= thr and ss < np.inf:
        s = math.sqrt(ss)
        inv = 1.0 / s
        for r in range(rows * cols):
            flat[r] *= inv
        return s
    a = 0.0
    for r in range(rows):
        for c in range(cols):
            x = A[r, c]
            if x != x:
                return np.nan
            a = max(a, abs(x))
    if a == 0.0 or a == np.inf:
        return a
    t = 0.0
    for r in range(rows):
        for c in range(cols):
            x = A[r, c] / a
            t += x * x
    s = a * math.sqrt(t)
    for r in range(rows):
        for c in range(cols):
            A[r, c] /= s
    return s


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


@njit(cache=True, parallel=True)
def chain_chunk(
    Fs: Any,
    WsT: Any,
    terms: Any,
    P: Any,
    U: Any,
    Uh: Any,
    n: int,
    dense: Any,
    hidden: bool,
    rtol: float,
    maxit: int,
    logs: Any,
    out: Any,
    err: Any,
) -> None:
    """Lags ``k0 + 1 .. k0 + K`` of every sequence: ``Fs`` ``(factors, K, B, n)`` are the
    chunk's Jacobian factors in time order (the latest step last), ``WsT`` the transposed
    weights and ``terms`` the derivation's terms (:func:`_apply`), ``P`` ``(B, m, m)`` the
    transposed product so far ``P^T`` (updated; its norms are ``P``'s, and its leading
    ``n x n`` block is the h block's transpose), ``U``/``Uh`` the warm blocks (updated).
    Writes ``logs[j, b]`` (log10 of lag ``j``'s scale) and ``out[q, j, b]`` for q = value,
    gap, kind, h value, h gap, h kind, iterations;
    ``err[b]`` is the first lag ``j`` whose product is not finite (else -1)."""
    K, B, m = Fs.shape[1], Fs.shape[2], P.shape[1]
    eps, tiny = EPS, TINY
    thr = tiny / eps * m * m
    thr_h = tiny / eps * n * n
    for bi in prange(B):
        A = P[bi].copy()
        Bf = np.empty((m, m))
        Gt = np.empty((n, m))
        Ub = U[bi].copy()
        ws = _workspace_jit(m, m, Ub.shape[1])
        Hb = np.empty((n, n))
        Uhb = Uh[bi].copy()
        wsh = _workspace_jit(n, n, Uhb.shape[1])
        err[bi] = -1
        inv = 1.0  # the renormalisation still to apply to A (folded into the next product)
        for j in range(K):
            _apply(A, Fs, K - 1 - j, bi, WsT, terms, Bf, n, dense, Gt, inv)
            A, Bf = Bf, A
            s, inv, fro2 = _renormalise(A, thr)
            if not (s < np.inf):
                err[bi] = j
                break
            logs[j, bi] = np.log10(s) if s > 0.0 else -np.inf
            # certified on P = A^T: its left singular space (U's) settles as lags grow
            v, g, k, it = _certified(A.T, fro2, Ub, ws, rtol, eps, tiny, maxit)
            out[0, j, bi] = v * inv
            out[1, j, bi] = g
            out[2, j, bi] = k
            out[6, j, bi] = it
            if hidden:
                for r in range(n):
                    for c in range(n):
                        Hb[r, c] = A[c, r]
                fh = _normalise(Hb, thr_h)
                f2 = 1.0 if fh > 0.0 else 0.0
                v, g, k, it = _certified(Hb, f2, Uhb, wsh, rtol, eps, tiny, maxit)
                out[3, j, bi] = v * fh * inv
                out[4, j, bi] = g
                out[5, j, bi] = k
                out[6, j, bi] += it
        for r in range(m):
            for c in range(m):
                P[bi, r, c] = A[r, c] * inv
        U[bi] = Ub
        Uh[bi] = Uhb

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
3. The spectral norm with a certificate of one of the kinds of :mod:`gradflow.spectral`
   (:func:`gradflow.compiled_certify._certified`: a Frobenius bracket, the residual bound,
   a Cholesky test, an exact eigenvalue).

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from .compiled_certify import EPS, TINY, _certified, _workspace_jit, njit
from .compiled_certify import REFINE as REFINE  # for gradflow.compiled's metadata

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

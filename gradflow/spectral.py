r"""Spectral norms of every lag's product, taken from the backward chain itself.

The engine hands :class:`Spectral` each normalised product ``P_k = ds_T/ds_{T-k}`` (scaled to
unit Frobenius norm) while it is in cache; nothing is stored. No SVD is taken per lag: block
Krylov Rayleigh-Ritz on ``P P^T``, started from the previous lag's block and a fresh random
vector, with a certified bracket, a Kato-Temple residual estimate and an Aitken tail test
deciding each lag; a settled block is certified with one product per lag; a lag that none of
them accepts is iterated further and, failing that, gets an exact SVD (DESIGN decision 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_numpy

#: Width of the Krylov block behind the spectral norms.
BLOCK = 4
#: From this size on, the block is twice as wide.
WIDE_FROM = 256
#: Lags before the first test of whether the left singular subspace has settled.
EARLY_LAGS = 32
#: Every SETTLE_CHECK lags the Krylov start block is tested: once certified, U is fixed.
SETTLE_CHECK = 16
#: Most Krylov depths per lag (a lag not accepted by then goes to :func:`_power_norms`).
MAX_DEPTH = 40
SPECTRAL_RTOL = 1e-11
MAX_ITER = 60


def _aitken(s1: Any, s2: Any, s3: Any, xp: Any) -> tuple[Any, Any]:
    """Accept ``s3`` as ``||A||_2`` where three successive power-iteration estimates
    ``s1 <= s2 <= s3`` show geometric convergence whose remaining tail is below
    ``SPECTRAL_RTOL``: the increments shrink by ``rho = (sigma_2/sigma_1)^2 < 0.5`` per
    half-step and the tail is ``i2 rho / (1 - rho)``. Returns ``(accepted, tail estimate)``."""
    info = np.finfo(s3.dtype)
    tiny, rtol = float(info.tiny), max(SPECTRAL_RTOL, 100 * float(info.eps))
    i1 = (s2 - s1) / xp.maximum(s2, tiny)
    i2 = (s3 - s2) / xp.maximum(s3, tiny)
    rho = xp.clip(i2 / xp.maximum(i1, tiny), 0.0, 0.999)
    tail = i2 * rho / (1.0 - rho)
    noise = 16 * float(info.eps)
    settled = (xp.abs(i1) <= noise) & (xp.abs(i2) <= noise)  # both increments at rounding level
    geometric = (tail <= rtol) & (rho < 0.5) & (i1 >= -noise) & (i2 >= -noise)
    return settled | geometric, tail


class Spectral:
    """Largest singular value of ``ds_T/ds_{T-k}`` for every lag, from the chain itself.

    Two modes, per lag, while the chain's product ``P`` is in cache:

    * *Krylov* (:meth:`_krylov`): block Krylov Rayleigh-Ritz on ``P P^T`` from the previous
      lag's block, pushed once more, and one fresh random vector. The fresh vector matters: a
      product whose leading direction switches (near-diagonal products, e.g. an LSTM cell
      path, where units overtake each other) would otherwise keep a warm start that has lost
      the new leading direction.
    * *fixed*: once the left singular subspace has settled (the certified bracket of
      :meth:`_bracketed` holds at the first depth for a whole stretch of lags), only
      ``W = P^T U`` with the settled ``U`` is formed, one product per lag, and the bracket
      certifies the lag on the spot. A lag that fails goes to Krylov mode, and so do the
      lags after it until the block has settled again.
    """

    def __init__(self, xp: Any, batch: int, rows: int, cols: int, dtype: Any, steps: int) -> None:
        self.xp = xp
        self.rows = rows
        # Large products: a wider block costs about the same memory traffic per pass over P.
        width = 2 * BLOCK if min(rows, cols) >= WIDE_FROM else BLOCK
        self.block = b = min(width, rows, cols)
        self.rng = np.random.default_rng(20130101)
        u0, _ = np.linalg.qr(self.rng.standard_normal((rows, b)))
        self.U = xp.asarray(np.broadcast_to(u0, (batch, rows, b)).astype(dtype))
        self.Y = self.U  # the next Krylov start: the last block pushed through P P^T
        self.value = xp.zeros((max(1, steps), batch), dtype=dtype)
        self.fixed = False
        self.rtol = max(SPECTRAL_RTOL, 100 * float(np.finfo(dtype).eps))
        self.R: Any = None
        self.depth = 0
        self.iterated = 0
        self.fallbacks = 0

    def _top(self, M: Any) -> Any:
        xp = self.xp
        g = xp.linalg.eigvalsh(xp.swapaxes(M, -1, -2) @ M)[..., -1]
        return xp.sqrt(xp.maximum(g, 0.0))

    def _bracketed(self, W: Any, s1: Any, frob: Any) -> Any:
        """Where ``||P||_2`` is pinned to ``SPECTRAL_RTOL`` by the block ``W = P^T U``.

        For orthonormal ``U``, ``s1 = ||U^T P||_2 <= ||P||_2`` and, splitting any ``P v`` into
        its parts in and outside ``span(U)``,
        ``||P||_2^2 <= s1^2 + ||(I - U U^T) P||_F^2 = s1^2 + ||P||_F^2 - ||W||_F^2``.
        When the block captures all but ``2 rtol s1^2`` of the Frobenius mass, the Ritz values
        (all between ``s1`` and ``||P||_2``) are within ``rtol`` of the norm.
        """
        xp = self.xp
        rest = frob * frob - xp.einsum("...ij,...ij->...", W, W)
        return rest <= 2.0 * self.rtol * s1 * s1

    def start_chunk(self, K: int, batch: int, dtype: Any) -> None:
        """Draw this chunk's fresh vectors (one stream per chain: results are reproducible)."""
        r = self.rng.standard_normal((K, batch, self.rows, 1))
        self.R = self.xp.asarray(r.astype(dtype))

    def step(self, j: int, P: Any, lag: int, frob: Any = None) -> None:
        """Norm of ``P`` (``(B, rows, cols)``, Frobenius norm ``frob``, 1 by default), the
        ``j``-th lag of the chunk: a settled block's certified bracket, else block Krylov."""
        xp = self.xp
        frob = xp.ones(P.shape[0], dtype=P.dtype) if frob is None else frob
        Pt = xp.swapaxes(P, -1, -2)
        if self.fixed:
            W = Pt @ self.U
            s1 = self._top(W)
            if bool(self._bracketed(W, s1, frob).all()):
                self.value[j] = s1
                return
            self.fixed = False  # the subspace moved: back to Krylov mode, from the block
            self.Y = self.U
        self._krylov(j, P, Pt, frob)
        if lag % SETTLE_CHECK == 0 and lag > EARLY_LAGS:
            # Has the left singular subspace settled? Then fix U from the next lag on.
            self.U, _ = xp.linalg.qr(self.Y)
            W = Pt @ self.U
            self.fixed = bool(self._bracketed(W, self._top(W), frob).all())

    def _krylov(self, j: int, P: Any, Pt: Any, frob: Any) -> None:
        """Block Krylov Rayleigh-Ritz for ``||P||_2`` on ``L = P P^T``, in the chain's cache.

        The start block is the previous lag's block pushed once through ``L`` (its first
        ``BLOCK - 1`` columns) and one fresh random vector; each depth adds ``L`` applied to
        the newest block, orthogonalised against the basis (:func:`_extend`). A lag is
        accepted, for every sequence of the batch, by the first of: the certified bracket
        (:meth:`_bracketed` on the whole Krylov basis); the Kato-Temple estimate
        ``||r||^2 / (theta_1 - theta_2) <= rtol theta_1`` for the top Ritz pair with residual
        ``r = L y - theta_1 y``, from the second depth on; an Aitken tail test on the Ritz
        values (:func:`_aitken`); or a basis that spans the whole space (the Ritz value is then
        exact). Krylov convergence depends on the square root of the gap, where plain subspace
        iteration depends on the gap itself: crowded short lags need a few depths, not dozens
        of iterations. At the first depth only the bracket can accept, so the Ritz problem is
        solved there only when the bracket's sufficient form (largest diagonal of ``H``
        standing in for ``theta_1``) holds for the whole batch.
        """
        xp = self.xp
        b, rows = self.block, self.rows
        tiny = float(np.finfo(P.dtype).tiny)
        Q, _ = xp.linalg.qr(xp.concatenate((self.Y[..., : b - 1], self.R[j]), axis=-1))
        Z = Pt @ Q  # P^T Q
        Y = P @ Z  # L Q: also gives the residuals, and the next block before orthogonalising
        hist: list[Any] = []
        depth = 0
        while True:
            H = xp.swapaxes(Z, -1, -2) @ Z
            rest = frob * frob - xp.einsum("...ii->...", H)
            p = Q.shape[-1]
            if depth == 0 and p < rows:
                lower = xp.max(xp.einsum("...ii->...i", H), axis=-1)  # theta_1 >= max diag H
                solve = bool((rest <= 2.0 * self.rtol * lower).all())
            else:
                solve = True
            if solve:
                theta, C = xp.linalg.eigh(H)
                t1 = xp.maximum(theta[..., -1], 0.0)
                s = xp.sqrt(t1)
                c = C[..., -1:]
                r = Y @ c - t1[:, None, None] * (Q @ c)  # L y - theta y for y = Q c
                gap = t1 - theta[..., -2] if theta.shape[-1] > 1 else t1
                ok = xp.einsum("bij,bij->b", r, r) <= self.rtol * t1 * xp.maximum(gap, tiny)
                # The residual test is blind to a leading direction missing from the start
                # block (a warm vector can be an exact, but overtaken, eigenvector): it counts
                # only once the fresh vector has been through L.
                ok &= depth >= 1
                ok |= rest <= 2.0 * self.rtol * t1
                hist.append(s)
                if len(hist) >= 3:
                    ok |= _aitken(hist[-3], hist[-2], hist[-1], xp)[0]
                if p >= rows or bool(ok.all()) or depth >= MAX_DEPTH:
                    break
            # Extend by L applied to the newest block.
            N = _extend(xp, Q, Y[..., -b:][..., : rows - p])
            Zn = Pt @ N
            Q = xp.concatenate((Q, N), axis=-1)
            Z = xp.concatenate((Z, Zn), axis=-1)
            Y = xp.concatenate((Y, P @ Zn), axis=-1)
            depth += 1
        z = Z @ c  # P^T y: the start of a retry by _power_norms
        # The next start: the start block pushed once through L (its image is Y's first
        # block), orthonormalised in column order. Column order matters: the first column then
        # runs a plain power iteration along the chain, so a direction that is overtaking the
        # leader (switching units in a near-diagonal product such as an LSTM cell path) keeps
        # its share, growing lag after lag, even where a lag is accepted at the first depth on
        # a warm vector that is an exact but no longer leading eigenvector. Ritz vectors would
        # rotate that share into the column that the next fresh vector replaces. The next
        # start's QR orthonormalises it (in column order, so the span of each leading set of
        # columns is kept).
        self.Y = Y[..., :b]
        self.value[j] = s
        self.depth += depth + 1
        bad = ~ok
        if bool(bad.any()):  # not accepted within MAX_DEPTH: batched iteration, then SVD
            self.iterated += int(bad.sum())
            norms, failed = _power_norms(xp, P[bad], z[bad][..., 0], s[bad])
            self.fallbacks += failed
            self.value[j][bad] = norms

    def finish(self, K: int) -> np.ndarray:
        """Norms of the ``K`` lags of the chunk just stepped through."""
        return to_numpy(self.value[:K]).astype(np.float64)


#: Largest ``|Q^T N|`` entry accepted from Gram-Schmidt in float64 (64 ulps in float32): a
#: Ritz value's relative error is of the order of the basis' loss of orthogonality.
ORTHO_TOL = 1e-13


def _extend(xp: Any, Q: Any, N: Any) -> Any:
    """Orthonormal columns extending the orthonormal basis ``Q`` by the span of ``N``.

    Classical Gram-Schmidt twice and a QR of the block, checked: where ``N`` is rank
    deficient (low-rank products, e.g. dead ReLU units) that QR returns arbitrary columns for
    the null directions, not orthogonal to ``Q``, and a basis that is not orthonormal gives
    Ritz values above the norm. The batch then takes a Householder QR of ``[Q, N]``, whose
    last columns are orthonormal and orthogonal to ``Q`` whatever ``N``'s rank (it costs more
    as the basis grows, so it is the fallback, not the rule)."""
    Qt = xp.swapaxes(Q, -1, -2)
    for _ in range(2):
        N = N - Q @ (Qt @ N)
    N, _ = xp.linalg.qr(N)
    if float(xp.abs(Qt @ N).max()) <= max(ORTHO_TOL, 64 * float(np.finfo(N.dtype).eps)):
        return N
    return xp.linalg.qr(xp.concatenate((Q, N), axis=-1))[0][..., Q.shape[-1] :]


def _power_norms(xp: Any, A: Any, v: Any, s: Any) -> tuple[Any, int]:
    """``||A[i]||_2`` by block subspace iteration batched over ``i``, from right vectors ``v``
    (the in-chain estimate, with value ``s``) and ``BLOCK - 1`` random vectors, so that a start
    with no component on the leading direction (exact zeros survive products of diagonal
    matrices) cannot stall. Ritz values are accepted by :func:`_aitken`; a matrix not accepted
    within ``MAX_ITER`` iterations gets an exact SVD. Returns the norms and the SVD count."""
    N, r, c = A.shape
    b = min(3 * BLOCK, r, c)  # a wider block: these are the lags whose top values crowd
    rng = np.random.default_rng(19940301)
    extra = xp.asarray(rng.standard_normal((N, c, b - 1)).astype(A.dtype))
    U, _ = xp.linalg.qr(xp.concatenate((v[..., None], extra), axis=-1))
    out = xp.zeros(N, dtype=A.dtype)
    active = np.arange(N)
    hist = [s, s]  # no history yet: the first iteration can never be accepted
    At = xp.swapaxes(A, -1, -2)
    for _ in range(MAX_ITER):
        Q, _ = xp.linalg.qr(A @ U)
        Z = At @ Q
        g = xp.linalg.eigvalsh(xp.swapaxes(Z, -1, -2) @ Z)[..., -1]
        s3 = xp.sqrt(xp.maximum(g, 0.0))
        ok, _ = _aitken(hist[0], hist[1], s3, xp)
        ok_h = to_numpy(ok)
        out[active[ok_h]] = s3[ok]
        keep = ~ok_h
        active, A, At = active[keep], A[keep], At[keep]
        hist = [hist[1][keep], s3[keep]]
        U, _ = xp.linalg.qr(Z[keep])
        if not len(active):
            return out, 0
    out[active] = xp.linalg.svd(A, compute_uv=False)[..., 0]
    return out, len(active)

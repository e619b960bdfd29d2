r"""Certified spectral norms of every lag's product, taken from the backward chain itself.

The engine hands :class:`Spectral` each normalised product ``P_k = ds_T/ds_{T-k}`` (scaled to
unit Frobenius norm) while it is in cache; nothing is stored. No SVD is taken per lag: block
Krylov Rayleigh-Ritz on ``L = P P^T``, started from the previous lag's block and a fresh random
vector, finds a candidate ``s`` (a Ritz value: a lower bound of ``||P||_2``), and a lag is
accepted only with a *certificate*, an upper bound ``u`` proven from quantities in hand with
``u / s - 1 <= rtol`` (``SPECTRAL_RTOL``; ``100 eps`` in float32). The kinds, cheapest first:

``bracket``
    ``||P||_2^2 <= s_1^2 + (||P||_F^2 - ||U^T P||_F^2)`` for an orthonormal ``U`` (the Krylov
    basis, or a settled block): closes when the basis holds all but ``2 rtol`` of the
    Frobenius mass.
``residual``
    a rigorous form of the Kato-Temple bound for the projected problem: with ``H = Q^T L Q``,
    Ritz values ``theta_1 >= theta_2``, the top Ritz vector's residual ``r`` and the block
    residual ``E = (I - Q Q^T) L Q``, every eigenvalue of ``L`` on the complement of the top
    Ritz vector is at most ``mu = (theta_2 + c)/2 + sqrt(((theta_2 - c)/2)^2 + e^2)`` with
    ``c = ||P||_F^2 - tr H >= ||Q_perp^T L Q_perp||_2`` and ``e^2 = ||E||_F^2 - ||r||^2``, so
    ``||P||_2^2 <= theta_1 + ||r||^2 / (theta_1 - mu)`` where ``mu < theta_1`` (the bound of
    a symmetric 2 x 2 block matrix by the matrix of its blocks' norms, applied twice). The
    gap is proven, not estimated from the next Ritz value.
``full_basis``
    the Krylov basis spans the whole space: the Ritz value is the norm.
``cholesky``
    ``u^2 I - P^T P`` with ``u^2 = theta_1 (1 + rtol)^2`` has a Cholesky factorisation, so
    every eigenvalue of ``P^T P`` is below ``u^2``.
``exact``
    where that fails (the candidate was not yet within ``rtol``), the largest eigenvalue of
    the Gram matrix just formed, by a symmetric eigensolver.

The Kato-Temple estimate (with the next Ritz value as the gap) and an Aitken tail test only
*guide* the iteration (when to stop extending the basis and try a Cholesky certificate); they
never accept. Every certificate holds up to rounding errors of order ``m eps`` relative. The
counts per kind and the worst certified relative gap ``max(u / s - 1)`` are in
:attr:`Spectral.counts` and :attr:`Spectral.worst_gap` (the engine puts them in the result's
metadata). This module holds one concept, the certified spectral norm, hence its length.

With the ``fast`` extra (numba), :func:`compiled_wanted` decides whether the Krylov step runs
in the compiled kernel :func:`gradflow.spectral_kernels.krylov` instead: the same iteration and
certificates, one call per lag, each sequence to its own depth (the NumPy path extends the
batch until its slowest sequence is certified). Uncertified candidates come back to
:meth:`Spectral._certify` either way.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from .backend import to_numpy

#: Width of the Krylov block behind the spectral norms.
BLOCK = 4
#: From this size on, the block is twice as wide (NumPy path: a batch-wide depth).
WIDE_FROM = 256
#: The same with the compiled kernel (each sequence to its own depth): at 256 rows the
#: narrow block took 0.92 ms per lag (lstm n = 128, B = 8; more lags leave the settled
#: block, but each costs far less) against 2.9 ms, its thin passes and Ritz problems half
#: the size; at 512 rows the two were within noise.
WIDE_FROM_KERNEL = 512
#: From this many rows the NumPy path solves the Ritz problem at the first depth and tries
#: the residual certificate there (it has ``L Q`` in hand): a pass over a large product costs
#: far more than the small LAPACK calls (the compiled kernel always does).
RITZ_FIRST_FROM = 256
#: Lags before the first test of whether the left singular subspace has settled.
EARLY_LAGS = 32
#: Every SETTLE_CHECK lags the Krylov start block is tested: once certified, U is fixed.
SETTLE_CHECK = 16
#: Most Krylov depths per lag (a lag not certified by then gets a Cholesky test).
MAX_DEPTH = 40
#: Krylov depths past the guide's convergence spent on a cheap (residual) certificate before
#: paying for a Cholesky factorisation.
EXTRA_DEPTHS = 2
#: Relative accuracy every certificate proves (float64; float32 uses ``100 eps``).
SPECTRAL_RTOL = 1e-11
#: The certificate kinds, as counted in :attr:`Spectral.counts`.
CERTIFICATES = ("bracket", "residual", "full_basis", "cholesky", "exact")
#: Smallest product (rows) for which the compiled Krylov kernel is used by default.
COMPILED_FROM = 96
#: Fewest ``lags x sequences x rows`` for which it is used by default: loading numba and the
#: cached kernel costs about 0.5-0.8 s of CPU once per process; the kernel saves about 0.35 us
#: per (lag, sequence) and row of the product (45 us at 128 rows, one thread).
COMPILED_WORK = 2_000_000


def compiled_wanted(xp: Any, dtype: Any, rows: int, pairs: int, compiled: bool | None) -> bool:
    """Whether the spectral norms take the compiled Krylov kernel
    (:mod:`gradflow.spectral_kernels`, extra ``fast``): numba installed, the numpy backend in
    float64, ``compiled`` not False and ``GRADFLOW_COMPILED`` not 0, and (``compiled`` None)
    products of at least ``COMPILED_FROM`` rows with at least ``COMPILED_WORK`` lags x
    sequences x rows (``pairs`` is lags x sequences). Reads the inputs only, never whether
    numba is loaded already, so a result does not depend on what ran before it."""
    if compiled is False or os.environ.get("GRADFLOW_COMPILED", "").strip() == "0":
        return False
    if xp is not np or np.dtype(dtype) != np.float64:
        return False
    if compiled is None and (rows < COMPILED_FROM or pairs * rows < COMPILED_WORK):
        return False
    return importlib.util.find_spec("numba") is not None


def _aitken(s1: Any, s2: Any, s3: Any, xp: Any) -> tuple[Any, Any]:
    """Guide: ``s3`` looks converged to ``||A||_2`` where three successive estimates
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
    """Certified largest singular value of ``ds_T/ds_{T-k}`` for every lag, from the chain.

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

    Attributes:
        counts: accepted (lag, sequence) pairs per certificate kind (:data:`CERTIFICATES`).
        worst_gap: the largest certified relative gap ``u / s - 1`` so far.
        depth: Krylov depths taken, summed over lags.
    """

    def __init__(
        self,
        xp: Any,
        batch: int,
        rows: int,
        cols: int,
        dtype: Any,
        steps: int,
        compiled: bool = False,
    ) -> None:
        self.xp = xp
        self.rows = rows
        self.kernel: Any = None
        if compiled and xp is np and np.dtype(dtype) == np.float64:
            from .spectral_kernels import krylov

            self.kernel = krylov
        # Large products: a wider block costs about the same memory traffic per pass over P.
        wide = WIDE_FROM if self.kernel is None else WIDE_FROM_KERNEL
        width = 2 * BLOCK if min(rows, cols) >= wide else BLOCK
        self.block = b = min(width, rows, cols)
        self.rng = np.random.default_rng(20130101)
        u0, _ = np.linalg.qr(self.rng.standard_normal((rows, b)))
        self.U = xp.asarray(np.broadcast_to(u0, (batch, rows, b)).astype(dtype))
        self.Y = self.U  # the next Krylov start: the last block pushed through P P^T
        self.value = xp.zeros((max(1, steps), batch), dtype=dtype)
        self.gap = xp.zeros((max(1, steps), batch), dtype=dtype)
        self.fixed = False
        self.rtol = max(SPECTRAL_RTOL, 100 * float(np.finfo(dtype).eps))
        self.eps = float(np.finfo(dtype).eps)
        self.tiny = float(np.finfo(dtype).tiny)
        self.ones = xp.ones(batch, dtype=dtype)
        self.R: Any = None
        self.depth = 0
        self.counts = dict.fromkeys(CERTIFICATES, 0)
        self.worst_gap = 0.0

    def _top(self, M: Any) -> Any:
        xp = self.xp
        g = xp.linalg.eigvalsh(xp.swapaxes(M, -1, -2) @ M)[..., -1]
        return xp.sqrt(xp.maximum(g, 0.0))

    def _bracket_gap(self, W: Any, s1: Any, frob: Any) -> Any:
        """The bracket's certified relative gap ``u / s1 - 1`` for the block ``W = P^T U``.

        For orthonormal ``U``, ``s1 = ||U^T P||_2 <= ||P||_2`` and, splitting any ``P v`` into
        its parts in and outside ``span(U)``,
        ``||P||_2^2 <= s1^2 + ||(I - U U^T) P||_F^2 = s1^2 + ||P||_F^2 - ||W||_F^2 = u^2``.
        A zero product (``frob = 0``) has gap 0: its norm is exactly 0.
        """
        xp = self.xp
        rest = xp.maximum(frob * frob - xp.einsum("...ij,...ij->...", W, W), 0.0)
        # No overflow: rest <= frob^2 <= 1 (a normalised product or a block of one).
        return xp.sqrt(1.0 + rest / xp.maximum(s1 * s1, self.tiny)) - 1.0

    def start_chunk(self, K: int, batch: int, dtype: Any) -> None:
        """Draw this chunk's fresh vectors (one stream per chain: results are reproducible)."""
        r = self.rng.standard_normal((K, batch, self.rows, 1))
        self.R = self.xp.asarray(r.astype(dtype))

    def step(self, j: int, P: Any, lag: int, frob: Any = None) -> None:
        """Norm of ``P`` (``(B, rows, cols)``, Frobenius norm ``frob``, 1 by default), the
        ``j``-th lag of the chunk: a settled block's certified bracket, else block Krylov."""
        xp = self.xp
        frob = self.ones if frob is None else frob
        Pt = xp.swapaxes(P, -1, -2)
        if self.fixed:
            W = Pt @ self.U
            s1 = self._top(W)
            gap = self._bracket_gap(W, s1, frob)
            if bool((gap <= self.rtol).all()):
                self.value[j] = s1
                self.gap[j] = gap
                self.counts["bracket"] += P.shape[0]
                return
            self.fixed = False  # the subspace moved: back to Krylov mode, from the block
            self.Y = self.U
        self._krylov(j, P, Pt, frob)
        if lag % SETTLE_CHECK == 0 and lag > EARLY_LAGS:
            # Has the left singular subspace settled? Then fix U from the next lag on.
            self.U, _ = xp.linalg.qr(self.Y)
            W = Pt @ self.U
            self.fixed = bool((self._bracket_gap(W, self._top(W), frob) <= self.rtol).all())

    def _krylov(self, j: int, P: Any, Pt: Any, frob: Any) -> None:
        """Block Krylov Rayleigh-Ritz for ``||P||_2`` on ``L = P P^T``, in the chain's cache.

        The start block is the previous lag's block pushed once through ``L`` (its first
        ``BLOCK - 1`` columns) and one fresh random vector; each depth adds ``L`` applied to
        the newest block, orthogonalised against the basis (:func:`_extend`). A sequence is
        certified by the bracket, the residual bound or a full basis (module docstring);
        the basis grows until every sequence is certified, or the guides (Kato-Temple with
        the next Ritz value as the gap, from the second depth on; Aitken on the Ritz values)
        say the top Ritz value has converged and ``EXTRA_DEPTHS`` more depths did not certify
        it, or ``MAX_DEPTH``. Sequences still uncertified go to :meth:`_certify` (Cholesky,
        else an exact eigenvalue). Krylov convergence depends on the square root of the gap,
        where plain subspace iteration depends on the gap itself: crowded short lags need a
        few depths, not dozens of iterations. At the first depth the Ritz problem is solved
        only when the bracket's sufficient form holds for the whole batch (the largest
        diagonal of ``H``, a lower bound of ``theta_1``, standing in for it): solving it
        there for the residual bound as well cost more small LAPACK calls than it saved at
        64 to 128 rows. From ``RITZ_FIRST_FROM`` rows a pass over ``P`` costs far more than
        those calls, and it is solved: a lag whose warm block already holds the leading
        direction (late lags, as the chain settles it) is then certified with two passes
        over ``P`` instead of four.
        """
        if self.kernel is not None:
            self._krylov_compiled(j, P, frob)
            return
        xp = self.xp
        b, rows = self.block, self.rows
        tiny = self.tiny
        rtol = self.rtol
        Q, _ = xp.linalg.qr(xp.concatenate((self.Y[..., : b - 1], self.R[j]), axis=-1))
        Z = Pt @ Q  # P^T Q
        Y = P @ Z  # L Q: also gives the residuals, and the next block before orthogonalising
        hist: list[Any] = []
        depth = 0
        guided_at = -1
        pending: Any = None  # P^T N of the newest block, not yet pushed through P
        while True:
            H = xp.swapaxes(Z, -1, -2) @ Z
            fro2 = frob * frob
            rest = fro2 - xp.einsum("...ii->...", H)
            p = Q.shape[-1]
            if depth == 0 and p < rows and rows < RITZ_FIRST_FROM:
                lower = xp.max(xp.einsum("...ii->...i", H), axis=-1)  # theta_1 >= max diag H
                solve = bool((rest <= 2.0 * rtol * lower).all())
            else:
                solve = True
            if solve:
                theta, C = xp.linalg.eigh(H)
                t1 = xp.maximum(theta[..., -1], 0.0)
                s = xp.sqrt(t1)
                if pending is not None:
                    # The bracket needs only H: where it certifies the whole batch, the
                    # newest block's pass through P (for residuals) is never taken.
                    g_bracket = self._bracket_only(t1, rest, fro2)
                    if bool((g_bracket <= rtol).all()):
                        kind, gap = xp.zeros(t1.shape, dtype=np.int8), g_bracket
                        break
                    Y = xp.concatenate((Y, P @ pending), axis=-1)
                    pending = None
                c = C[..., -1:]
                r = Y @ c - t1[:, None, None] * (Q @ c)  # L y - theta y for y = Q c
                rr = xp.einsum("bij,bij->b", r, r)
                if p >= rows:
                    kind = xp.full(t1.shape, 2, dtype=np.int8)  # full_basis
                    gap = xp.zeros_like(t1)
                else:
                    kind, gap = self._cheap_certificates(theta, rr, rest, fro2, Y, H)
                done = kind >= 0
                if p >= rows or bool(done.all()) or depth >= MAX_DEPTH:
                    break
                # Guides, never certificates: Kato-Temple with the next Ritz value as gap,
                # counted only once the fresh vector has been through L (a warm vector can be
                # an exact, but overtaken, eigenvector), and Aitken on the Ritz values.
                ritz_gap = t1 - theta[..., -2] if theta.shape[-1] > 1 else t1
                guide = (rr <= rtol * t1 * xp.maximum(ritz_gap, tiny)) & (depth >= 1)
                hist.append(s)
                if len(hist) >= 3:
                    guide |= _aitken(hist[-3], hist[-2], hist[-1], xp)[0]
                if guided_at < 0 and bool((done | guide).all()):
                    guided_at = depth
                if guided_at >= 0 and depth >= guided_at + EXTRA_DEPTHS:
                    break
            # Extend by L applied to the newest block.
            N = _extend(xp, Q, Y[..., -b:][..., : rows - p])
            Zn = Pt @ N
            Q = xp.concatenate((Q, N), axis=-1)
            Z = xp.concatenate((Z, Zn), axis=-1)
            if Q.shape[-1] < rows:
                pending = Zn  # pushed through P only if the bracket does not certify
            else:
                Y = xp.concatenate((Y, P @ Zn), axis=-1)
            depth += 1
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
        self.depth += depth + 1
        self._accept(j, P, s, gap, kind, t1)

    def _krylov_compiled(self, j: int, P: Any, frob: Any) -> None:
        """:meth:`_krylov` by the compiled kernel (:func:`gradflow.spectral_kernels.krylov`):
        the same iteration and certificates, each sequence to its own depth."""
        A = np.ascontiguousarray(P)
        out = np.empty((4, A.shape[0]))
        Y = np.empty(self.Y.shape)  # C order: one compiled signature, whatever Y's layout
        self.depth += self.kernel(
            A,
            np.ascontiguousarray(frob),
            np.ascontiguousarray(self.Y),
            np.ascontiguousarray(self.R[j]),
            self.rtol,
            MAX_DEPTH,
            EXTRA_DEPTHS,
            out,
            Y,
        )
        self.Y = Y
        self._accept(j, A, out[0].copy(), out[1].copy(), out[2].astype(np.int8), out[3])

    def _accept(self, j: int, P: Any, s: Any, gap: Any, kind: Any, t1: Any) -> None:
        """Record lag ``j``'s values and certificates; prove the uncertified candidates
        (kind -1) with :meth:`_certify`."""
        xp = self.xp
        kind_h = to_numpy(kind)
        for k, name in enumerate(CERTIFICATES[:3]):
            self.counts[name] += int((kind_h == k).sum())
        bad = kind_h < 0
        if bad.any():
            s, gap = s.copy(), gap.copy()
            idx = xp.asarray(np.flatnonzero(bad))  # a device index for CuPy
            s[idx], gap[idx] = self._certify(P[idx], t1[idx])
        self.value[j] = s
        self.gap[j] = gap

    def _cheap_certificates(
        self, theta: Any, rr: Any, rest: Any, fro2: Any, Y: Any, H: Any
    ) -> tuple[Any, Any]:
        """Per sequence: the certificate kind (0 bracket, 1 residual, -1 none) and its
        certified relative gap ``u / s - 1``, from the projected problem (module docstring).

        The subtractions that give ``c`` and ``e^2`` carry a slack of ``4 eps`` times the
        quantity subtracted from (the rounding of the subtraction itself)."""
        xp = self.xp
        rtol, eps, tiny = self.rtol, self.eps, self.tiny
        p = theta.shape[-1]
        t1 = xp.maximum(theta[..., -1], 0.0)
        slack = 4 * eps
        c = xp.maximum(rest, 0.0) + slack * fro2
        safe_t1 = xp.maximum(t1, tiny)
        g_bracket = self._bracket_only(t1, rest, fro2)
        bracketed = g_bracket <= rtol
        if bool(bracketed.all()) or p < 2:
            kind = xp.where(bracketed, np.int8(0), np.int8(-1))
            return kind, xp.where(bracketed, g_bracket, 0.0)
        # No overflow below: rr <= ||L||^2 <= fro2^2 <= 1, and the divisor is at least tiny.
        t2 = theta[..., -2]
        yy = xp.einsum("bij,bij->b", Y, Y)
        e2 = xp.maximum(yy - xp.einsum("bij,bij->b", H, H) - rr, 0.0) + slack * yy
        half = 0.5 * (t2 - c)
        mu = 0.5 * (t2 + c) + xp.sqrt(half * half + e2)
        sep = t1 - mu
        g_res = xp.sqrt(1.0 + rr / xp.maximum(sep * safe_t1, tiny)) - 1.0
        g_res = xp.where(sep > 0, g_res, xp.inf)
        kind = xp.where(bracketed, np.int8(0), xp.where(g_res <= rtol, np.int8(1), np.int8(-1)))
        gap = xp.where(kind == 0, g_bracket, xp.where(kind == 1, g_res, 0.0))
        return kind, gap

    def _bracket_only(self, t1: Any, rest: Any, fro2: Any) -> Any:
        """The bracket's certified relative gap from ``theta_1`` and the Frobenius mass
        ``rest`` outside the basis (slack ``4 eps ||P||_F^2``); 0 for a zero product."""
        xp = self.xp
        c = xp.maximum(rest, 0.0) + 4 * self.eps * fro2
        return xp.sqrt(1.0 + c / xp.maximum(t1, self.tiny)) - 1.0

    def _certify(self, A: Any, t1: Any) -> tuple[Any, Any]:
        """Certify or replace candidates ``sqrt(t1)`` for the matrices ``A`` (``(k, r, c)``).

        ``u^2 I - A^T A`` with ``u^2 = t1 (1 + rtol)^2`` positive definite (a Cholesky
        factorisation exists; Cholesky is backward stable, so this holds up to ``O(m eps)``)
        proves ``||A||_2 < u``; where it fails, the largest eigenvalue of ``A^T A`` itself.
        Returns the values and their certified relative gaps."""
        xp = self.xp
        G = xp.swapaxes(A, -1, -2) @ A
        m = G.shape[-1]
        u2 = t1 * (1.0 + self.rtol) ** 2
        M = xp.eye(m, dtype=G.dtype) * u2[:, None, None] - G
        ok = np.zeros(len(t1), dtype=bool)
        try:
            ok[:] = to_numpy(xp.isfinite(xp.linalg.cholesky(M)).all(axis=(-2, -1)))
        except np.linalg.LinAlgError:  # numpy refuses the whole batch: one at a time
            for i in range(len(t1)):
                try:
                    ok[i] = bool(xp.isfinite(xp.linalg.cholesky(M[i])).all())
                except np.linalg.LinAlgError:
                    ok[i] = False
        value = xp.sqrt(t1)
        gap = xp.full(t1.shape, self.rtol, dtype=t1.dtype)
        self.counts["cholesky"] += int(ok.sum())
        if not ok.all():
            bad = xp.asarray(np.flatnonzero(~ok))
            top = xp.linalg.eigvalsh(G[bad])[..., -1]
            value[bad] = xp.sqrt(xp.maximum(top, 0.0))
            gap[bad] = 0.0
            self.counts["exact"] += int(bad.shape[0])
        return value, gap

    def finish(self, K: int) -> np.ndarray:
        """Norms of the ``K`` lags of the chunk just stepped through."""
        self.worst_gap = max(self.worst_gap, float(to_numpy(self.gap[:K]).max()))
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

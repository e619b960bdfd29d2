r"""Spectral norms of every lag's product, taken from the backward chain itself.

The engine hands :class:`Spectral` each normalised product ``P_k = ds_T/ds_{T-k}`` (scaled to
unit Frobenius norm) while it is in cache, and the chunk of stored products at the end of each
chunk. No SVD is taken per lag: block subspace iteration with Rayleigh-Ritz, warm-started from
the previous lag, certified brackets and an Aitken tail test decide each lag; the few that
remain are iterated in a batch and, failing that, get an exact SVD (DESIGN decision 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_numpy

#: Block size of the subspace iteration behind the spectral norms.
BLOCK = 4
#: Block iterations per lag for the first EARLY_LAGS lags, before the warm start settles.
EARLY_LAGS = 32
EARLY_ITERS = 6
#: Every SETTLE_CHECK lags the iterating block is tested: once certified, U is fixed.
SETTLE_CHECK = 16
#: From this size on, iterations per lag continue until the lag's Ritz values are accepted.
ADAPTIVE_FROM = 256
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

    At every lag, block subspace iteration with Rayleigh-Ritz runs on the chain's normalised
    product ``P`` with a block ``U`` of ``BLOCK`` vectors warm-started from the previous lag
    (the left singular vectors of a mixing product converge as ``k`` grows). One column is
    replaced at every lag by a fresh random vector pushed through ``P P^T``: a product whose
    leading direction switches (near-diagonal products, e.g. an LSTM cell path, where units
    overtake each other) would otherwise keep a warm start that has lost the new leading
    direction. Three Ritz values ``s1 <= s2 <= s3`` (``P^T U``, ``P Q``, ``P^T U'``) are
    accepted when their increments shrink geometrically with a tail below ``SPECTRAL_RTOL``
    (:func:`_aitken`); other lags continue by batched power iteration and, failing that, an
    exact SVD.
    """

    def __init__(self, xp: Any, batch: int, rows: int, cols: int, dtype: Any, steps: int) -> None:
        self.xp = xp
        self.rows = rows
        self.block = b = min(BLOCK, rows, cols)
        self.iters = 1 if min(rows, cols) < 128 else min(8, min(rows, cols) // 64)
        self.adaptive = min(rows, cols) >= ADAPTIVE_FROM
        self.rng = np.random.default_rng(20130101)
        u0, _ = np.linalg.qr(self.rng.standard_normal((rows, b)))
        self.U = xp.asarray(np.broadcast_to(u0, (batch, rows, b)).astype(dtype))
        k = max(1, steps)
        # Per lag: the three blocks whose Ritz values are compared (P^T U, P Q, P^T U').
        self.blocks = [xp.zeros((k, batch, n, b), dtype=dtype) for n in (cols, rows, cols)]
        self.speculative = xp.zeros(k, dtype=bool)  # lags stepped in fixed mode
        self.frob = xp.ones((k, batch), dtype=dtype)
        self.fixed = False
        self.rtol = max(SPECTRAL_RTOL, 100 * float(np.finfo(dtype).eps))
        self.R: Any = None
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
        """Norm estimate for ``P`` (``(B, rows, cols)``), the ``j``-th lag of the chunk.

        ``frob`` is ``||P||_F`` (1 for the chain's own normalised product). Two modes:

        * *iterate*: block iterations with a fresh random direction, while ``P`` is in cache;
          large matrices get several per lag (``self.iters``, each ``O(m^2 BLOCK)`` against
          the chain's ``O(m^3)``), the first lags more (``EARLY_ITERS``).
        * *fixed*: once the left singular subspace has settled (a whole stretch of lags was
          certified by :meth:`_bracketed`), only ``W = P^T U`` with the settled ``U`` is
          formed: one product per lag. :meth:`finish` certifies each such lag; any that fails
          is iterated there, and the next chunk goes back to iterating.
        """
        xp = self.xp
        if frob is not None:
            self.frob[j] = frob
        Wb, Yb, Zb = self.blocks
        Pt = xp.swapaxes(P, -1, -2)
        self.speculative[j] = self.fixed
        if self.fixed:
            xp.matmul(Pt, self.U, out=Wb[j])
            return
        fresh = P @ (Pt @ self.R[j])
        U = xp.concatenate((self.U[..., : self.block - 1], fresh), axis=-1)
        U, _ = xp.linalg.qr(U)
        # The first lags have no converged warm start yet: iterate more while P is in cache.
        iters = max(self.iters, EARLY_ITERS) if lag <= EARLY_LAGS else self.iters
        if self.adaptive:
            # Large matrices: iterate until the Ritz values pass the acceptance test.
            iters = MAX_ITER
        for it in range(iters):
            W = xp.matmul(Pt, U, out=Wb[j])
            Q, _ = xp.linalg.qr(W)
            U, _ = xp.linalg.qr(xp.matmul(P, Q, out=Yb[j]))
            if self.adaptive or it == iters - 1:
                xp.matmul(Pt, U, out=Zb[j])
            if self.adaptive and it >= self.iters - 1:
                s1 = self._top(Wb[j])
                ok, _ = _aitken(s1, self._top(Yb[j]), self._top(Zb[j]), xp)
                if bool((ok | self._bracketed(Wb[j], s1, self.frob[j])).all()):
                    break
        self.U = U
        if lag % SETTLE_CHECK == 0 and lag > EARLY_LAGS:
            # Has the left singular subspace settled? Then fix U from the next lag on.
            self.fixed = bool(self._bracketed(Wb[j], self._top(Wb[j]), self.frob[j]).all())

    def finish(self, buf: Any, K: int) -> np.ndarray:
        """Norms of the ``K`` lags just stepped through (``buf``: ``(K, B, rows, cols)``)."""
        xp = self.xp
        W = self.blocks[0][:K]
        s1 = self._top(W)
        s2, s3 = xp.zeros_like(s1), xp.zeros_like(s1)
        iterated = ~to_numpy(self.speculative[:K])
        if iterated.any():  # fixed-mode lags have no Y, Z blocks: only W is formed
            s2[iterated] = self._top(self.blocks[1][:K][iterated])
            s3[iterated] = self._top(self.blocks[2][:K][iterated])
        spec = self.speculative[:K][:, None]
        bracket = self._bracketed(W, s1, self.frob[:K])
        aitken, _ = _aitken(s1, s2, s3, xp)
        ok = xp.where(spec, bracket, aitken | bracket)
        value = xp.where(spec, s1, s3)
        # Go back to iterating as soon as one fixed-mode lag fails its certificate.
        if bool(to_numpy((spec & ~bracket).any())):
            self.fixed = False
        sig = to_numpy(value).astype(np.float64)
        idx = np.argwhere(~to_numpy(ok))
        if len(idx):
            self.iterated += len(idx)
            k, b = idx[:, 0], idx[:, 1]
            start = xp.where(spec[..., None], W[..., 0], self.blocks[2][:K][..., 0])
            norms, failed = _power_norms(xp, buf[k, b], start[k, b], value[k, b])
            self.fallbacks += failed
            sig[k, b] = to_numpy(norms)
        return sig


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

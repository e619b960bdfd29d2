r"""Exact chains of diagonal and block-diagonal Jacobians, in the log domain.

For ``J_t = diag(D_t)`` the product over lags is ``ds_T/ds_{T-k} = diag(prod_t D_{t,i})``:
:class:`DiagonalChain` carries ``L_i = sum_t log10 |D_{t,i}|`` for a whole chunk of lags at
once (a cumulative sum), so nothing under- or overflows and every norm is exact:

* spectral norm ``max_i 10^{L_i}`` (the largest entry of a diagonal matrix: certificate kind
  ``diagonal``), Frobenius norm ``sqrt(sum_i 10^{2 L_i})`` (log-sum-exp), singular values the
  sorted ``|entries|``, Lyapunov exponents ``L_i ln 10 / T`` sorted (the exact finite-time
  exponents ``ln sigma_i(ds_T/ds_0) / T``);
* an entry that is exactly 0 (a ReLU unit off) makes its unit's product exactly 0
  (``-inf`` from that lag on), and a norm is ``-inf`` only when every unit's product is.

For ``J_t`` block-diagonal with ``n`` blocks of size ``b`` (after permuting the state unit by
unit), :class:`BlockChain` multiplies every block's product by its own ``b x b`` factor (one
batched small matmul per step, ``O(n b^3) = O(m b^2)``), renormalising each block to unit
Frobenius norm and carrying its own log10 scale, so a block that decays fast never loses
precision to one that does not. The spectral norm is the largest over blocks of the blocks'
spectral norms (certificate kind ``block``): exact, from the closed form of a 2 x 2 matrix's
singular values, or for ``b > 2`` from small SVDs of the only blocks that can hold the maximum
(``sigma_max >= ||A||_F / sqrt(b)`` rules the others out).

:class:`GradientChain` carries ``dL/ds_{T-k}`` block by block (vector times block), each block
with its own scale, for the loss ``L = sum_t sum(h_t)``.

This module holds one concept, the structured chains; :mod:`gradflow.diagonal` drives them.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

from .errors import NumericalError

_LN10 = math.log(10.0)


def log10_norm2_sum(L: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log10 sqrt(sum 10^{2 L})`` along ``axis``, without overflow; all ``-inf`` gives
    ``-inf``."""
    top = np.max(L, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    d = L - safe
    d *= 2.0 * _LN10
    np.exp(d, out=d)
    with np.errstate(divide="ignore"):
        return np.asarray(np.squeeze(safe, axis=axis) + 0.5 * np.log10(d.sum(axis=axis)))


def _log10_abs(a: Any) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.asarray(np.log10(np.abs(a)))


def block_spectral_norms(A: np.ndarray) -> np.ndarray:
    """Spectral norms of a stack of ``b x b`` blocks ``(..., b, b)``.

    ``b = 1``: ``|a|``. ``b = 2``: the closed form ``sigma_1 = (hypot(a + d, c - b) +
    hypot(a - d, b + c)) / 2`` of ``[[a, b], [c, d]]`` (a sum of two non-negative terms, so
    exact to a few ulp). ``b > 2``: LAPACK's SVD of each block."""
    b = A.shape[-1]
    if b == 1:
        return np.asarray(np.abs(A[..., 0, 0]))
    if b == 2:
        a, bb, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]
        return np.asarray(0.5 * (np.hypot(a + d, c - bb) + np.hypot(a - d, bb + c)))
    return np.asarray(np.linalg.svd(A, compute_uv=False)[..., 0])


class DiagonalChain:
    """The product of diagonal Jacobians, lag by lag (see the module docstring).

    Args:
        steps: ``T``. batch: ``B``. m: the state size. n: the hidden size.
        hidden: record the ``h`` block (the first ``n`` entries) apart.
        gradient_last: record ``log10 ||dL/ds_{T-k}||`` for ``L = sum(h_T)``.
    """

    certificate = "diagonal"

    def __init__(
        self, steps: int, batch: int, m: int, n: int, hidden: bool, gradient_last: bool
    ) -> None:
        self.n, self.m = n, m
        self.L = np.zeros((batch, m))
        self.spec = np.zeros((steps + 1, batch))
        self.frob = np.zeros((steps + 1, batch))
        self.frob[0] = 0.5 * math.log10(m)
        self.spec_h = np.zeros((steps + 1, batch)) if hidden else None
        self.grad = np.zeros((steps + 1, batch)) if gradient_last else None
        if self.grad is not None:
            self.grad[0] = 0.5 * math.log10(n)

    def run_chunk(
        self, D: np.ndarray, k0: int, sv_lags: Collection[int], sv_out: dict[int, np.ndarray]
    ) -> None:
        """Lags ``k0 + 1 .. k0 + K`` from the chunk's diagonals ``D`` ``(K, B, m)`` in time
        order (the latest step is the next lag); singular values at ``sv_lags``."""
        K = D.shape[0]
        Lk = _log10_abs(D)[::-1]  # the latest step first
        prev = self.L
        for j in range(K):  # a running sum (np.cumsum along axis 0 is ~5x slower here)
            np.add(prev, Lk[j], out=Lk[j])  # -inf stays -inf: never NaN
            prev = Lk[j]
        out = slice(k0 + 1, k0 + K + 1)
        self.spec[out] = Lk.max(axis=-1)
        self.frob[out] = log10_norm2_sum(Lk)
        if self.spec_h is not None:
            self.spec_h[out] = Lk[..., : self.n].max(axis=-1)
        if self.grad is not None:  # dL/ds = e^T P: the h entries of the diagonal
            self.grad[out] = log10_norm2_sum(Lk[..., : self.n])
        for lag in sv_lags:
            if k0 < lag <= k0 + K:
                sv_out[lag] = -np.sort(-Lk[lag - k0 - 1], axis=-1)
        self.L = Lk[-1].copy()

    def log10_singular_values(self) -> np.ndarray:
        """``(B, m)`` descending, of the current product."""
        return -np.sort(-self.L, axis=-1)


class BlockChain:
    """The product of block-diagonal Jacobians, ``(B, n, b, b)`` blocks, lag by lag.

    Args: as :class:`DiagonalChain`, with ``b`` the block size (``m = n b``; in each block,
    row and column ``r`` are state vector ``r`` of that unit, so the ``h`` block of the product
    is the ``(0, 0)`` entries).
    """

    certificate = "block"

    def __init__(
        self, steps: int, batch: int, n: int, b: int, hidden: bool, gradient_last: bool
    ) -> None:
        self.n, self.b, self.m = n, b, n * b
        # each block at unit Frobenius norm, its log10 scale apart
        self.P = np.broadcast_to(np.eye(b) / math.sqrt(b), (batch, n, b, b)).copy()
        self.L = np.full((batch, n), 0.5 * math.log10(b))
        self.spec = np.zeros((steps + 1, batch))
        self.frob = np.zeros((steps + 1, batch))
        self.frob[0] = 0.5 * math.log10(self.m)
        self.spec_h = np.zeros((steps + 1, batch)) if hidden else None
        self.grad = np.zeros((steps + 1, batch)) if gradient_last else None
        if self.grad is not None:
            self.grad[0] = 0.5 * math.log10(n)
        self.margin = 0.5 * math.log10(b) + 1e-9

    def spectral(self) -> np.ndarray:
        """``(B,)`` log10 spectral norm of the current product: the largest block's."""
        if self.b <= 2:
            return np.asarray((_log10_abs(block_spectral_norms(self.P)) + self.L).max(axis=-1))
        # sigma_j <= 10^L_j and sigma_j >= 10^L_j / sqrt(b): only blocks within the margin
        # of the largest scale can hold the maximum
        top = self.L.max(axis=-1, keepdims=True)
        cand = self.L >= top - self.margin
        out = np.full(self.L.shape, -np.inf)
        out[cand] = _log10_abs(block_spectral_norms(self.P[cand])) + self.L[cand]
        return np.asarray(out.max(axis=-1))

    def run_chunk(
        self, J: np.ndarray, k0: int, sv_lags: Collection[int], sv_out: dict[int, np.ndarray]
    ) -> None:
        """Lags ``k0 + 1 ..`` from the chunk's blocks ``J`` ``(K, B, n, b, b)`` in time
        order."""
        K = J.shape[0]
        for j in range(K):
            P = self.P @ J[K - 1 - j]
            f = np.sqrt(np.einsum("...ij,...ij->...", P, P))
            if not np.isfinite(f).all():
                b = int(np.argwhere(~np.isfinite(f))[0][0])
                raise NumericalError(
                    f"the Jacobian product overflowed or became NaN at lag {k0 + j + 1}, "
                    f"sequence {b}: a Jacobian there is beyond the floating-point range"
                )
            P /= np.where(f > 0, f, 1.0)[..., None, None]
            self.P = P
            self.L += _log10_abs(f)  # a dead block: -inf from here on
            k = k0 + j + 1
            self.spec[k] = self.spectral()
            self.frob[k] = log10_norm2_sum(self.L)
            if self.spec_h is not None:
                self.spec_h[k] = (_log10_abs(P[..., 0, 0]) + self.L).max(axis=-1)
            if self.grad is not None:
                row = 0.5 * _log10_abs(np.einsum("...j,...j->...", P[..., 0, :], P[..., 0, :]))
                self.grad[k] = log10_norm2_sum(row + self.L)
            if k in sv_lags:
                sv_out[k] = self.log10_singular_values()

    def log10_singular_values(self) -> np.ndarray:
        """``(B, m)`` descending: every block's singular values (LAPACK, per block)."""
        s = _log10_abs(np.linalg.svd(self.P, compute_uv=False)) + self.L[..., None]
        return -np.sort(-s.reshape(s.shape[0], -1), axis=-1)


class GradientChain:
    """``G_k = dL/ds_{T-k}`` for ``L = sum_{t=1}^T sum(h_t)``: ``G_0 = e``,
    ``G_k = G_{k-1} J_{T-k+1} + e`` (``e`` is 1 on the ``h`` entries; no ``e`` at ``k = T``,
    ``h_0`` not being in the loss), block by block, each block normalised with its own scale.

    Args:
        steps: ``T``. e: ``(n_blocks, b)`` the loss vector by blocks. batch: ``B``.
    """

    def __init__(self, steps: int, e: np.ndarray, batch: int) -> None:
        self.steps = steps
        self.e = e
        norm = np.linalg.norm(e, axis=-1)
        self.G = np.broadcast_to(e / np.where(norm > 0, norm, 1.0)[:, None], (batch, *e.shape))
        self.G = self.G.copy()
        self.L = np.broadcast_to(_log10_abs(norm), (batch, e.shape[0])).copy()
        self.out = np.zeros((steps + 1, batch))
        self.out[0] = log10_norm2_sum(self.L[0])

    def run_chunk(self, J: np.ndarray, k0: int) -> None:
        """Lags ``k0 + 1 ..`` from the chunk's blocks ``J`` ``(K, B, n_blocks, b, b)``."""
        K = J.shape[0]
        for j in range(K):
            k = k0 + j + 1
            G = np.einsum("...r,...rc->...c", self.G, J[K - 1 - j])
            L = self.L
            if k < self.steps:
                # G 10^L + e with no overflow: scale by the larger of 10^L and 1
                up = L >= 0
                with np.errstate(over="ignore"):
                    G *= np.where(up, 1.0, np.power(10.0, np.minimum(L, 0.0)))[..., None]
                G += self.e * np.power(10.0, -np.maximum(L, 0.0))[..., None]
                L = np.where(up, L, 0.0)
            f = np.sqrt(np.einsum("...c,...c->...", G, G))
            if not np.isfinite(f).all():
                b = int(np.argwhere(~np.isfinite(f))[0][0])
                raise NumericalError(
                    f"the gradient overflowed or became NaN at lag {k}, sequence {b}"
                )
            G /= np.where(f > 0, f, 1.0)[..., None]
            self.G = G
            self.L = L + _log10_abs(f)
            self.out[k] = log10_norm2_sum(self.L)

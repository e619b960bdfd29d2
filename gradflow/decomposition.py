r"""An exact path decomposition of Jacobian products: the expansion by multiplicative factors.

Every state Jacobian splits as ``J_t = A_t + M_t`` (DESIGN decision 3): ``A_t`` holds the
terms without a weight matrix (``diag(f_t)`` in the LSTM cell block, ``diag(z_t)`` in the GRU),
``M_t`` the terms through a weight matrix. The two *pure chains* ``A_T \cdots A_{T-k+1}`` and
``M_T \cdots M_{T-k+1}`` are only two of the ``2^k`` terms of the product; they neither bound
nor sum to it. What does sum to it is the expansion by the number ``j`` of multiplicative
factors:

.. math::
    P_k = \prod_{t=T}^{T-k+1} (A_t + M_t) = \sum_{j=0}^{k} S_j,
    \qquad S_j = \sum_{|\mathcal{J}| = j} \prod_t \begin{cases} M_t & t \in \mathcal{J} \\
    A_t & \text{else} \end{cases},

so ``S_0`` is the pure additive chain, ``S_k`` the pure multiplicative chain, and
``||S_0||_F / ||P_k||_F`` says how much of the full product travels through the weight-free
path alone.

**All j at once.** ``F(w) = \prod_t (A_t + w M_t) = \sum_j w^j S_j`` is a matrix polynomial
of degree ``k`` in ``w``. It is evaluated at ``N = K + 1 + s`` points ``w_p = r e^{2\pi i p/N}``
on a circle of radius ``r`` (complex arithmetic, one renormalised chain per point, its log10
scale carried), and ``r^j S_j = N^{-1} \sum_p F(w_p) e^{-2\pi i p j/N}`` (a DFT along ``p``):
exact for every lag ``k <= K`` at once, since ``N > K`` points leave no aliasing.

**Accuracy and the radius.** The DFT's rounding error is absolute, about
``eps max_p ||F(w_p)||``; the ``s = 4`` spare coefficients ``j > k`` of every lag, exactly
zero in exact arithmetic, measure it (the *noise floor*). The relative error of ``S_j`` is
estimated as ``noise / (r^j ||S_j||)``: a radius favours the ``j`` with the largest
``r^j ||S_j||``. The default radii are ``1``, ``rho^{1/2}`` and ``rho`` with
``rho = 10^{(a - b)}``, ``a`` and ``b`` the growth rates (decades per step) of the pure
additive and multiplicative chains over the longest lag: ``r = rho`` makes the two pure terms
equally large, so the terms of every ``j`` come within reach of one radius or another.
Each ``(k, j)`` keeps the radius with the smallest estimated error; ``resolved`` marks an
estimate below ``1e-6`` relative. ``S_0`` and ``S_k`` (the pure chains) are also computed
directly, exactly, in the log domain.

Cost: ``len(radii) N B`` complex ``m x m`` products per step, i.e. ``O(K^2 B m^3)`` for lags up
to ``K``: meant for lags up to a few hundred.

Examples:
    >>> import numpy as np
    >>> A = np.broadcast_to(np.diag([0.5, 0.5]), (3, 1, 2, 2))
    >>> M = np.broadcast_to(np.array([[0.0, 1.0], [1.0, 0.0]]), (3, 1, 2, 2))
    >>> e = path_expansion(A, M, [3])
    >>> np.round(10 ** e.log10_term_norm[0, 0], 6).tolist()  # binom(3, j) 0.5^(3-j) sqrt(2)
    [0.176777, 1.06066, 2.12132, 1.414214]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UsageError

#: Spare DFT coefficients per lag (exactly zero in exact arithmetic): the noise floor.
SPARE = 4
#: Relative error below which a term norm counts as resolved.
RESOLVED = 1e-6
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class PathExpansion:
    """The expansion ``P_k = sum_j S_j`` at chosen lags, with the product's blocks.

    Attributes:
        lags: the lags ``k``, increasing.
        log10_full_norm: ``(L, B)`` log10 ``||P_k||_F``.
        log10_additive_norm: ``(L, B)`` log10 ``||S_0||_F`` (pure additive chain, direct).
        log10_multiplicative_norm: ``(L, B)`` log10 ``||S_k||_F`` (pure multiplicative chain).
        log10_term_norm: ``(L, B, K + 1)`` log10 ``||S_j||_F`` for ``j = 0..K`` (``nan`` for
            ``j > k``), from the DFT.
        log10_term_error: same shape, log10 of the estimated relative error of each term norm.
        resolved: same shape, estimated relative error below :data:`RESOLVED`.
        log10_additive_share: ``(L, B)`` log10 ``||S_0||_F / ||P_k||_F``.
        blocks: ``{"dh_T/dc_{T-k}": (L, B) log10 Frobenius norm, ...}`` of ``P_k``'s blocks.
        radii: the radii used.
        terms: ``{k: (S, log10 scale)}`` for lags asked in ``keep_terms``: ``S`` of shape
            ``(B, k + 1, m, m)`` with ``S_j = S[:, j] 10^{scale[:, j]}``, each ``j`` from the
            radius that resolves it best.
    """

    lags: tuple[int, ...]
    log10_full_norm: np.ndarray
    log10_additive_norm: np.ndarray
    log10_multiplicative_norm: np.ndarray
    log10_term_norm: np.ndarray
    log10_term_error: np.ndarray
    resolved: np.ndarray
    log10_additive_share: np.ndarray
    blocks: dict[str, np.ndarray]
    radii: tuple[float, ...]
    terms: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def share_by_j(self) -> np.ndarray:
        """``||S_j||_F / sum_i ||S_i||_F``: how the product's norm is spread over ``j``,
        ``(L, B, K + 1)`` (``nan`` for ``j > k``)."""
        with np.errstate(invalid="ignore"):
            top = np.nanmax(self.log10_term_norm, axis=-1, keepdims=True)
            w = 10.0 ** (self.log10_term_norm - top)
            return np.asarray(w / np.nansum(w, axis=-1, keepdims=True))


class _RealChain:
    """A renormalised real chain ``X_T ... X_{T-k+1}`` with its log10 Frobenius scale."""

    def __init__(self, B: int, m: int) -> None:
        self.C = np.broadcast_to(np.eye(m), (B, m, m)).copy()
        self.ell = np.zeros(B)

    def step(self, X: np.ndarray) -> None:
        self.C = self.C @ X
        s = np.sqrt(np.einsum("bij,bij->b", self.C, self.C))
        with np.errstate(divide="ignore"):
            self.ell = self.ell + np.log10(s)
        self.C = self.C / np.where(s > 0, s, 1.0)[:, None, None]


def _block_names(state: Sequence[str]) -> list[tuple[str, int, int]]:
    return [
        (f"d{row}_T/d{col}_{{T-k}}", i, j)
        for i, row in enumerate(state)
        for j, col in enumerate(state)
    ]


def path_expansion(
    additive: Any,
    multiplicative: Any,
    lags: Sequence[int],
    *,
    radii: Sequence[float] | None = None,
    state: Sequence[str] = ("s",),
    keep_terms: Sequence[int] = (),
) -> PathExpansion:
    """Expand ``P_k = prod_t (A_t + M_t)`` by the number of multiplicative factors.

    Args:
        additive: ``(T, B, m, m)`` the additive parts ``A_t``, ``t = 1..T``.
        multiplicative: ``(T, B, m, m)`` the multiplicative parts ``M_t``.
        lags: lags ``k`` in ``1..T``.
        radii: circle radii (default: module docstring).
        state: names of the state vectors (equal sizes ``m / len(state)``), for the blocks.
        keep_terms: lags at which to return the matrices ``S_j`` themselves.

    Returns:
        A :class:`PathExpansion`.

    Raises:
        UsageError: mismatched shapes, lags outside ``1..T``, non-finite input, bad radii.
    """
    A = np.asarray(additive, dtype=np.float64)
    M = np.asarray(multiplicative, dtype=np.float64)
    if A.ndim != 4 or A.shape != M.shape or A.shape[-1] != A.shape[-2]:
        raise UsageError(
            f"additive and multiplicative must share a shape (T, B, m, m); got "
            f"{A.shape} and {M.shape}"
        )
    if not (np.isfinite(A).all() and np.isfinite(M).all()):
        raise UsageError("the Jacobian parts contain NaN or inf")
    T, B, m, _ = A.shape
    ks = sorted({int(k) for k in lags})
    if not ks or ks[0] < 1 or ks[-1] > T:
        raise UsageError(f"lags must be a non-empty subset of 1..{T}; got {list(lags)}")
    if m % len(state):
        raise UsageError(f"state size {m} is not a multiple of {len(state)} state vectors")
    keep = set(int(k) for k in keep_terms)
    if not keep <= set(ks):
        raise UsageError("keep_terms must be a subset of lags")
    K = ks[-1]
    nb = m // len(state)
    names = _block_names(state)
    L = len(ks)
    at = {k: i for i, k in enumerate(ks)}

    # the full product (blocks) and the two pure chains, real and direct
    full, add, mul = _RealChain(B, m), _RealChain(B, m), _RealChain(B, m)
    out_full = np.empty((L, B))
    out_add = np.empty((L, B))
    out_mul = np.empty((L, B))
    blocks = {nm: np.empty((L, B)) for nm, _, _ in names}
    for k in range(1, K + 1):
        full.step(A[T - k] + M[T - k])
        add.step(A[T - k])
        mul.step(M[T - k])
        if k in at:
            i = at[k]
            out_full[i], out_add[i], out_mul[i] = full.ell, add.ell, mul.ell
            for nm, row, col in names:
                blk = full.C[:, row * nb : (row + 1) * nb, col * nb : (col + 1) * nb]
                with np.errstate(divide="ignore"):
                    blocks[nm][i] = full.ell + np.log10(np.linalg.norm(blk, axis=(-2, -1)))

    if radii is None:
        a = np.median(out_add[-1]) / K
        b = np.median(out_mul[-1]) / K
        rs = [1.0]
        if math.isfinite(a) and math.isfinite(b) and abs(a - b) > 1e-12:
            rho = 10.0 ** float(np.clip(a - b, -300 / max(K, 1), 300 / max(K, 1)))
            rs += [math.sqrt(rho), rho]
        radii = rs
    rad = tuple(float(r) for r in radii)
    if not rad or not all(math.isfinite(r) and r > 0 for r in rad):
        raise UsageError(f"radii must be positive finite numbers; got {list(radii)}")

    N = K + 1 + SPARE
    best = np.full((L, B, K + 1), np.nan)
    best_err = np.full((L, B, K + 1), np.inf)
    terms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    jj = np.arange(N)
    for r in rad:
        w = r * np.exp(2j * np.pi * jj / N)
        C = np.broadcast_to(np.eye(m, dtype=complex), (N, B, m, m)).copy()
        ell = np.zeros((N, B))
        for k in range(1, K + 1):
            C = C @ (A[T - k][None] + w[:, None, None, None] * M[T - k][None])
            s = np.sqrt(np.einsum("pbij,pbij->pb", C, C.conj()).real)
            with np.errstate(divide="ignore"):
                ell = ell + np.log10(s)
            C = C / np.where(s > 0, s, 1.0)[..., None, None]
            if k not in at:
                continue
            top = np.max(ell, axis=0)  # (B,)
            safe = np.where(np.isfinite(top), top, 0.0)
            X = C * (10.0 ** np.minimum(ell - safe, 0.0))[..., None, None]
            c = np.fft.fft(X, axis=0) / N  # c[j] = r^j S_j / 10^top
            cn = np.linalg.norm(c, axis=(-2, -1))  # (N, B)
            noise = np.maximum(cn[k + 1 :].max(axis=0), _EPS)
            with np.errstate(divide="ignore"):
                lt = np.log10(cn[: k + 1]) + safe[None, :] - jj[: k + 1, None] * math.log10(r)
                le = np.log10(noise)[None, :] - np.log10(cn[: k + 1])
            i = at[k]
            better = le.T < best_err[i, :, : k + 1]  # (B, k + 1)
            best[i, :, : k + 1] = np.where(better, lt.T, best[i, :, : k + 1])
            best_err[i, :, : k + 1] = np.where(better, le.T, best_err[i, :, : k + 1])
            if k in keep:  # the matrices, each j from the radius that resolves it best
                scale = safe[:, None] - jj[None, : k + 1] * math.log10(r)
                mats = np.swapaxes(c[: k + 1].real, 0, 1)
                if k not in terms:
                    terms[k] = (mats.copy(), scale)
                else:
                    S0, sc0 = terms[k]
                    terms[k] = (
                        np.where(better[..., None, None], mats, S0),
                        np.where(better, scale, sc0),
                    )
    for k, i in at.items():
        best[i, :, k + 1 :] = np.nan
        best_err[i, :, k + 1 :] = np.nan
    with np.errstate(invalid="ignore"):
        resolved = best_err <= math.log10(RESOLVED)
    return PathExpansion(
        lags=tuple(ks),
        log10_full_norm=out_full,
        log10_additive_norm=out_add,
        log10_multiplicative_norm=out_mul,
        log10_term_norm=best,
        log10_term_error=best_err,
        resolved=resolved,
        log10_additive_share=out_add - out_full,
        blocks=blocks,
        radii=rad,
        terms=terms,
    )

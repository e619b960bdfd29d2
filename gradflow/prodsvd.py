r"""Singular values of long Jacobian products, accurate in relative terms however small.

One SVD of the accumulated (renormalised) product resolves only the singular values within
about 15 decades of the largest; the rest are rounding noise. Here every value of

.. math:: P_k = J_T J_{T-1} \cdots J_{T-k+1}

is computed to high *relative* accuracy, in log10, by a product QR with graded triangular
factors followed by a log-domain one-sided Jacobi SVD:

1. **Product QR** ([stewart1997graded], the QR iteration of [benettin1980] run on the
   transposes). With ``A_j = J_{T-j+1}^T``, ``P_k^T = A_k \cdots A_1``. Starting from an
   orthogonal ``Z``, ``A_j Q_{j-1} = Q_j R_j`` (Householder QR), so
   ``P_k^T Z = Q_k R_k \cdots R_1`` and ``P_k`` has the singular values of
   ``R^{(k)} = R_k \cdots R_1``.
2. **Graded accumulation.** The columns of ``A_j Q_{j-1}`` are presorted by the size they
   carry into the product (their norm times their row's scale), a column pivoting that keeps
   the accumulated rows graded, largest first ([stewart1997graded]); the rows of the product
   are permuted alike, so the accumulated factor is ``R_k \Pi_k^T \cdots R_1 \Pi_1^T``.
   It is kept as ``diag(10^{L}) B``: ``B`` has rows of unit
   norm and ``L`` holds each row's log10 scale, so no entry is ever formed at its true
   magnitude. A new factor updates row ``i`` as ``sum_l R_k[i, l] 10^{L_l} B[l]``, with the
   coefficients scaled by their largest (entries ``<= 1``: nothing overflows; a coefficient
   below ``1e-308`` of its row's largest underflows harmlessly to 0).
3. **Log-domain one-sided Jacobi** ([demmel1992jacobi]) on the columns ``10^{L_i} B[i]^T``
   of ``R^{(k)T}``: rotations are computed from the ratio ``10^{L_q - L_p} <= 1`` and the
   cosine of the unit vectors, never from the squared norms, so two columns 600 decades apart
   still rotate exactly (for such a pair the rotation is the Gram-Schmidt projection). The
   converged column norms are the singular values. Jacobi on a column-scaled matrix
   ``B^T D`` is accurate to about ``m eps kappa(B)`` relative, independently of ``D``
   ([demmel1992jacobi]).

**Certification.** The whole computation runs twice: from ``Z = I`` and from a Haar-random
orthogonal ``Z`` (a different sequence of QR factorisations, hence different rounding).
A value is *certified* when it is finite and nonzero, the two runs agree to within ``tol``
(default ``1e-9``) in log10, and the Jacobi bound ``m eps kappa(B) / ln 10`` of both runs is
below ``tol``. ``log10_error`` reports ``max(|difference|, bound)``. Values that fail are
returned but flagged; plots and claims must use only certified values. Singular values that
exact zeros in the factors force to be 0 (beyond a structural rank bound: nonzero rows and
columns of each factor and of the boolean product of their patterns, e.g. dead ReLU units)
are certified as exactly 0 (``-inf``).

Cost: two QR factorisations and two ``(m x m)(m x m)`` products per step and run, plus one
Jacobi SVD per requested lag (round-robin ordering: ``m/2`` disjoint rotations at once).

Examples:
    >>> import numpy as np
    >>> J = np.broadcast_to(np.diag([2.0, 1e-3]), (50, 1, 2, 2))
    >>> r = product_singular_values(J, [50])
    >>> np.round(r.log10_singular_values[0, 0], 9).tolist(), bool(r.certified.all())
    ([15.051499783, -150.0], True)

References:
    [stewart1997graded], [benettin1980], [demmel1992jacobi].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UsageError

#: Default certification tolerance, decades (log10 units).
CERT_TOL = 1e-9
_EPS = float(np.finfo(np.float64).eps)
_MAX_SWEEPS = 60


@dataclass(frozen=True)
class ProductSpectrum:
    """Singular values of ``P_k = J_T ... J_{T-k+1}`` at chosen lags.

    Attributes:
        lags: the lags ``k``, increasing.
        log10_singular_values: ``(len(lags), B, m)`` log10 singular values, descending
            (``-inf`` for an exact zero).
        certified: same shape, True where the value is certified (module docstring).
        log10_error: same shape, the error estimate in decades.
        jacobi_bound: ``(len(lags), B)``, the Jacobi stage's relative bound
            ``m eps kappa(B) / ln 10`` (the larger of the two runs).
        tol: the certification tolerance, decades.
        method: one line naming the algorithm.
    """

    lags: tuple[int, ...]
    log10_singular_values: np.ndarray
    certified: np.ndarray
    log10_error: np.ndarray
    jacobi_bound: np.ndarray
    tol: float
    method: str = (
        "product QR with graded triangular factors (Stewart 1997) and a log-domain one-sided "
        "Jacobi SVD (Demmel & Veselic 1992); certified by two runs from different orthogonal "
        "frames"
    )

    def certified_fraction(self) -> np.ndarray:
        """Fraction of certified values per lag (over the batch and all values)."""
        return np.asarray(self.certified.reshape(len(self.lags), -1).mean(axis=1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``None`` stands for a value that is not certified or is exactly 0
        (``certified`` tells which)."""
        vals = np.where(self.certified, self.log10_singular_values, np.nan)
        return {
            "lags": list(self.lags),
            "log10_singular_values": [
                [[None if not math.isfinite(v) else float(v) for v in row] for row in lag]
                for lag in vals
            ],
            "certified": self.certified.tolist(),
            "certified_fraction": self.certified_fraction().tolist(),
            "tol": self.tol,
            "method": self.method,
        }


def _pairs(m: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Round-robin (circle method) rounds: each round pairs every column with another once."""
    idx = list(range(m)) + ([-1] if m % 2 else [])
    size = len(idx)
    rounds = []
    for _ in range(size - 1):
        p = [idx[i] for i in range(size // 2)]
        q = [idx[size - 1 - i] for i in range(size // 2)]
        keep = [(a, b) for a, b in zip(p, q, strict=True) if a >= 0 and b >= 0]
        if keep:
            rounds.append((np.array([a for a, _ in keep]), np.array([b for _, b in keep])))
        idx = [idx[0], idx[-1], *idx[1:-1]]
    return rounds


def log_jacobi(L: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, int]:
    r"""log10 singular values of ``X = V diag(10^L)``: columns ``V[:, :, j]`` scaled by ``10^L_j``.

    One-sided (Hestenes) Jacobi with every rotation computed from ``r = 10^{L_q - L_p} <= 1``
    and ``g = v_p . v_q`` (unit columns): ``tau = t / r = -sign(g) 2|g| / (|1 - r^2| +
    sqrt((1 - r^2)^2 + 4 g^2 r^2))``, ``c = 1 / sqrt(1 + tau^2 r^2)``, then
    ``v_p <- c (v_p - tau r^2 v_q)`` and ``v_q <- c (tau v_p + v_q)`` (the latter at the
    scale of ``q``), renormalised into ``L``.

    Args:
        L: ``(B, m)`` log10 column scales (``-inf`` allowed for a zero column).
        V: ``(B, m, m)`` columns of unit norm.

    Returns:
        ``(B, m)`` log10 singular values, descending, and the number of sweeps taken.
    """
    L = L.astype(np.float64).copy()
    V = V.astype(np.float64).copy()
    B, m, _ = V.shape
    if m == 1:
        return L, 0
    rounds = _pairs(m)
    tol = _EPS * math.sqrt(m)
    sweeps = 0
    while sweeps < _MAX_SWEEPS:
        sweeps += 1
        worst = 0.0
        for p0, q0 in rounds:
            swap = L[:, p0] < L[:, q0]  # p holds the larger scale
            p = np.where(swap, q0[None, :], p0[None, :])
            q = np.where(swap, p0[None, :], q0[None, :])
            bi = np.arange(B)[:, None]
            vp = V[bi, :, p]  # (B, pairs, m)
            vq = V[bi, :, q]
            Lp, Lq = L[bi, p], L[bi, q]
            g = np.einsum("bkm,bkm->bk", vp, vq)
            live = np.isfinite(Lq) & (np.abs(g) > tol)
            if not live.any():
                continue
            worst = max(worst, float(np.abs(np.where(live, g, 0.0)).max()))
            with np.errstate(invalid="ignore", over="ignore"):
                r = np.where(live, 10.0 ** np.minimum(Lq - Lp, 0.0), 0.0)
            one = 1.0 - r * r
            tau = -np.sign(g) * 2.0 * np.abs(g) / (one + np.sqrt(one * one + 4.0 * g * g * r * r))
            tau = np.where(live, tau, 0.0)
            c = 1.0 / np.sqrt(1.0 + (tau * r) ** 2)
            np_ = c[..., None] * (vp - (tau * r * r)[..., None] * vq)
            nq = c[..., None] * (tau[..., None] * vp + vq)
            sp_ = np.linalg.norm(np_, axis=-1)
            sq = np.linalg.norm(nq, axis=-1)
            with np.errstate(divide="ignore"):
                newLp = np.where(live, Lp + np.log10(sp_), Lp)
                newLq = np.where(live, Lq + np.log10(sq), Lq)
            np_ = np.where(live[..., None], np_ / np.where(sp_ > 0, sp_, 1.0)[..., None], vp)
            nq = np.where(live[..., None], nq / np.where(sq > 0, sq, 1.0)[..., None], vq)
            V[bi, :, p] = np_
            V[bi, :, q] = nq
            L[bi, p] = newLp
            L[bi, q] = newLq
        if worst <= tol:
            break
    return -np.sort(-L, axis=-1), sweeps


def _run(
    J: np.ndarray, lags: Sequence[int], Z: np.ndarray
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """One product-QR pass; log10 singular values and Jacobi bounds at ``lags``."""
    T, B, m, _ = J.shape
    Q = np.broadcast_to(Z, (B, m, m)).copy()
    L = np.zeros((B, m))
    Bm = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    out: dict[int, np.ndarray] = {}
    bound: dict[int, np.ndarray] = {}
    want = set(lags)
    for k in range(1, max(lags) + 1):
        Y = np.swapaxes(J[T - k], -1, -2) @ Q
        # presort the columns by the size they carry into the product (10^L times their norm),
        # so that the accumulated rows stay graded, largest first
        with np.errstate(divide="ignore"):
            size = L + np.log10(np.linalg.norm(Y, axis=-2))
        order = np.argsort(-size, axis=-1, kind="stable")
        Y = np.take_along_axis(Y, order[:, None, :], axis=-1)
        L = np.take_along_axis(L, order, axis=-1)
        Bm = np.take_along_axis(Bm, order[:, :, None], axis=-2)
        Q, R = np.linalg.qr(Y)
        with np.errstate(divide="ignore"):
            logR = np.log10(np.abs(R))
        # coefficient (i, l) of row i: R[i, l] 10^{L_l}, scaled by the row's largest
        logc = logR + L[:, None, :]
        top = np.max(np.where(np.triu(np.ones((m, m), bool)), logc, -np.inf), axis=-1)
        safe_top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            C = np.triu(np.sign(R) * 10.0 ** np.minimum(logc - safe_top[..., None], 0.0))
        C = np.where(np.isfinite(C), C, 0.0)
        Bm = C @ Bm
        nrm = np.linalg.norm(Bm, axis=-1)
        with np.errstate(divide="ignore"):
            L = np.where(np.isfinite(top), safe_top + np.log10(nrm), -np.inf)
        Bm = Bm / np.where(nrm > 0, nrm, 1.0)[..., None]
        if k in want:
            # R^(k) = diag(10^L) Bm; singular values of its transpose Bm^T diag(10^L)
            Vt = np.swapaxes(Bm, -1, -2)
            out[k], _ = log_jacobi(L, Vt)
            finite = np.isfinite(L)
            conds = np.array(
                [
                    np.linalg.cond(Vt[b][:, finite[b]]) if finite[b].any() else np.inf
                    for b in range(B)
                ]
            )
            bound[k] = m * _EPS * conds / math.log(10.0)
    return out, bound


def product_singular_values(
    jacobians: Any, lags: Sequence[int], *, tol: float = CERT_TOL, seed: int = 0
) -> ProductSpectrum:
    """Every singular value of ``P_k = J_T ... J_{T-k+1}`` at ``lags``, certified or flagged.

    Args:
        jacobians: ``(T, B, m, m)`` the per-step ``J_t = ds_t/ds_{t-1}``, ``t = 1..T`` (e.g.
            :func:`gradflow.engine.state_jacobians`).
        lags: lags in ``1..T``.
        tol: certification tolerance in decades.
        seed: seed of the Haar-random frame of the second run.

    Returns:
        A :class:`ProductSpectrum`.

    Raises:
        UsageError: bad shapes, lags outside ``1..T``, non-finite Jacobians.

    References:
        [stewart1997graded], [demmel1992jacobi].
    """
    J = np.asarray(jacobians, dtype=np.float64)
    if J.ndim != 4 or J.shape[-1] != J.shape[-2] or J.shape[0] < 1:
        raise UsageError(f"jacobians must have shape (T, B, m, m); got {J.shape}")
    if not np.isfinite(J).all():
        raise UsageError("jacobians contain NaN or inf")
    T, B, m, _ = J.shape
    ks = sorted({int(k) for k in lags})
    if not ks or ks[0] < 1 or ks[-1] > T:
        raise UsageError(f"lags must be a non-empty subset of 1..{T}; got {list(lags)}")
    if not (math.isfinite(tol) and tol > 0):
        raise UsageError(f"tol must be a positive number, got {tol!r}")
    rng = np.random.default_rng(seed)
    Zr, Rz = np.linalg.qr(rng.standard_normal((m, m)))
    Zr = Zr * np.sign(np.diag(Rz))[None, :]  # Haar distributed
    a, ba = _run(J, ks, np.eye(m))
    b, bb = _run(J, ks, Zr)
    vals = np.stack([a[k] for k in ks])
    other = np.stack([b[k] for k in ks])
    jb = np.maximum(np.stack([ba[k] for k in ks]), np.stack([bb[k] for k in ks]))
    with np.errstate(invalid="ignore"):
        diff = np.abs(vals - other)
    diff = np.where(np.isfinite(vals) & np.isfinite(other), diff, np.inf)
    err = np.maximum(diff, jb[..., None])
    certified = np.isfinite(vals) & (err <= tol)
    # exact zeros: the structural rank bound makes the smallest values exactly 0
    rank = _rank_bound(J, ks)
    zero = np.arange(m)[None, None, :] >= rank[..., None]
    vals = np.where(zero, -np.inf, vals)
    err = np.where(zero, 0.0, err)
    certified = certified | zero
    return ProductSpectrum(tuple(ks), vals, certified, err, jb, float(tol))


def _rank_bound(J: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """``(len(lags), B)`` upper bounds on ``rank(P_k)`` from exact zeros alone.

    ``rank(P_k) <= min_t rank(J_t) <= min_t`` (nonzero rows, nonzero columns of ``J_t``), and
    ``rank(P_k) <=`` the nonzero rows and columns of the boolean product of the factors'
    nonzero patterns (an entry with no path of nonzeros is exactly 0). Singular values beyond
    the bound are exactly zero: certified as ``-inf``.
    """
    T, B, m, _ = J.shape
    out = np.empty((len(lags), B), dtype=int)
    want = {k: i for i, k in enumerate(lags)}
    nz = J != 0
    pat = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    per_step = np.full(B, m)
    for k in range(1, max(lags) + 1):
        f = nz[T - k]
        per_step = np.minimum(per_step, np.minimum(f.any(-1).sum(-1), f.any(-2).sum(-1)))
        pat = np.minimum(pat @ f.astype(float), 1.0)
        if k in want:
            rows = (pat > 0).any(-1).sum(-1)
            cols = (pat > 0).any(-2).sum(-1)
            out[want[k]] = np.minimum(per_step, np.minimum(rows, cols))
    return out

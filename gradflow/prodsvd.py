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
:class:`StreamedProductSVD` takes the factors one at a time (``J_T`` first), so memory is
``O(B m^2)`` whatever ``T``: the engine feeds it each chunk's Jacobians
(``gradflow analyze --singular-lags``); :func:`product_singular_values` loops over it on
materialised Jacobians.

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


class _Pass:
    """One product-QR pass from the orthogonal frame ``Z``, one factor at a time."""

    def __init__(self, Z: np.ndarray, batch: int) -> None:
        m = Z.shape[-1]
        self.Q = np.broadcast_to(Z, (batch, m, m)).copy()
        self.L = np.zeros((batch, m))
        self.Bm = np.broadcast_to(np.eye(m), (batch, m, m)).copy()

    def push(self, Jt: np.ndarray) -> None:
        """Take the next factor ``J_{T-k+1}`` (``(B, m, m)``): ``A_k = J_{T-k+1}^T``."""
        L, Bm = self.L, self.Bm
        m = L.shape[-1]
        Y = np.swapaxes(Jt, -1, -2) @ self.Q
        # presort the columns by the size they carry into the product (10^L times their norm),
        # so that the accumulated rows stay graded, largest first
        with np.errstate(divide="ignore"):
            size = L + np.log10(np.linalg.norm(Y, axis=-2))
        order = np.argsort(-size, axis=-1, kind="stable")
        Y = np.take_along_axis(Y, order[:, None, :], axis=-1)
        L = np.take_along_axis(L, order, axis=-1)
        Bm = np.take_along_axis(Bm, order[:, :, None], axis=-2)
        self.Q, R = np.linalg.qr(Y)
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
            self.L = np.where(np.isfinite(top), safe_top + np.log10(nrm), -np.inf)
        self.Bm = Bm / np.where(nrm > 0, nrm, 1.0)[..., None]

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """log10 singular values of the product so far and the Jacobi bound, ``(B, m), (B,)``."""
        L, Bm = self.L, self.Bm
        B, m = L.shape
        # R^(k) = diag(10^L) Bm; singular values of its transpose Bm^T diag(10^L)
        Vt = np.swapaxes(Bm, -1, -2)
        vals, _ = log_jacobi(L, Vt)
        finite = np.isfinite(L)
        conds = np.array(
            [np.linalg.cond(Vt[b][:, finite[b]]) if finite[b].any() else np.inf for b in range(B)]
        )
        return vals, m * _EPS * conds / math.log(10.0)


class StreamedProductSVD:
    """The product SVD fed one Jacobian at a time, backward from ``T``: memory ``O(B m^2)``.

    Push ``J_T`` first, then ``J_{T-1}``, ...: after ``k`` pushes the product is
    ``P_k = J_T ... J_{T-k+1}``, and :meth:`push` returns its certified spectrum when ``k`` is
    one of ``lags`` (both runs of the module docstring advance together; the structural rank
    bound is kept alongside). :func:`product_singular_values` is a loop over this class, so
    both give the same numbers bit for bit.

    Args:
        m: the state size.
        batch: ``B``.
        lags: lags ``>= 1`` at which to return the spectrum.
        tol: certification tolerance in decades.
        seed: seed of the Haar-random frame of the second run.

    Raises:
        UsageError: no lags, a lag below 1, or a bad ``tol``.

    Examples:
        >>> s = StreamedProductSVD(2, 1, [3])
        >>> [s.push(np.diag([2.0, 0.5])[None]) is None for _ in range(2)]
        [True, True]
        >>> np.round(s.push(np.diag([2.0, 0.5])[None]).log10_singular_values, 6).tolist()
        [[[0.90309, -0.90309]]]
    """

    def __init__(
        self, m: int, batch: int, lags: Sequence[int], *, tol: float = CERT_TOL, seed: int = 0
    ) -> None:
        ks = sorted({int(k) for k in lags})
        if not ks or ks[0] < 1:
            raise UsageError(f"lags must be a non-empty set of integers >= 1; got {list(lags)}")
        if not (math.isfinite(tol) and tol > 0):
            raise UsageError(f"tol must be a positive number, got {tol!r}")
        self.m, self.batch, self.lags, self.tol = int(m), int(batch), tuple(ks), float(tol)
        rng = np.random.default_rng(seed)
        Zr, Rz = np.linalg.qr(rng.standard_normal((m, m)))
        Zr = Zr * np.sign(np.diag(Rz))[None, :]  # Haar distributed
        self._runs = (_Pass(np.eye(m), batch), _Pass(Zr, batch))
        #: the number of factors pushed so far
        self.k = 0
        # structural rank bound: rank(P_k) <= min_t rank(J_t) <= min_t (nonzero rows, nonzero
        # columns of J_t), and <= the nonzero rows and columns of the boolean product of the
        # factors' nonzero patterns (an entry with no path of nonzeros is exactly 0); singular
        # values beyond it are exactly zero, certified as -inf
        self._pat = np.broadcast_to(np.eye(m), (batch, m, m)).copy()
        self._per_step = np.full(batch, m)

    @property
    def done(self) -> bool:
        """True once the largest lag has been reached (further pushes are refused)."""
        return self.k >= self.lags[-1]

    def push(self, jacobian: Any) -> ProductSpectrum | None:
        """Take the next factor ``J_{T-k}`` (``(B, m, m)``); the spectrum of ``P_{k+1}`` if
        ``k + 1`` is a requested lag, else None.

        Raises:
            UsageError: a factor of the wrong shape, NaN or inf, or a push past the last lag.
        """
        Jt = np.asarray(jacobian, dtype=np.float64)
        if Jt.shape != (self.batch, self.m, self.m):
            raise UsageError(
                f"a Jacobian must have shape ({self.batch}, {self.m}, {self.m}); got {Jt.shape}"
            )
        if not np.isfinite(Jt).all():
            raise UsageError("jacobians contain NaN or inf")
        if self.done:
            raise UsageError(f"the last lag {self.lags[-1]} has been reached")
        self.k += 1
        for run in self._runs:
            run.push(Jt)
        f = Jt != 0
        self._per_step = np.minimum(
            self._per_step, np.minimum(f.any(-1).sum(-1), f.any(-2).sum(-1))
        )
        self._pat = np.minimum(self._pat @ f.astype(float), 1.0)
        if self.k not in self.lags:
            return None
        rows = (self._pat > 0).any(-1).sum(-1)
        cols = (self._pat > 0).any(-2).sum(-1)
        rank = np.minimum(self._per_step, np.minimum(rows, cols))
        (vals, ba), (other, bb) = (run.spectrum() for run in self._runs)
        return _certify((self.k,), vals[None], other[None], np.maximum(ba, bb)[None],
                        rank[None], self.tol)  # fmt: skip


def _certify(
    ks: tuple[int, ...],
    vals: np.ndarray,
    other: np.ndarray,
    jb: np.ndarray,
    rank: np.ndarray,
    tol: float,
) -> ProductSpectrum:
    """The two runs' values compared, the Jacobi bound applied, the exact zeros set."""
    m = vals.shape[-1]
    with np.errstate(invalid="ignore"):
        diff = np.abs(vals - other)
    diff = np.where(np.isfinite(vals) & np.isfinite(other), diff, np.inf)
    err = np.maximum(diff, jb[..., None])
    certified = np.isfinite(vals) & (err <= tol)
    # exact zeros: the structural rank bound makes the smallest values exactly 0
    zero = np.arange(m)[None, None, :] >= rank[..., None]
    vals = np.where(zero, -np.inf, vals)
    err = np.where(zero, 0.0, err)
    certified = certified | zero
    return ProductSpectrum(ks, vals, certified, err, jb, float(tol))


def product_singular_values(
    jacobians: Any, lags: Sequence[int], *, tol: float = CERT_TOL, seed: int = 0
) -> ProductSpectrum:
    """Every singular value of ``P_k = J_T ... J_{T-k+1}`` at ``lags``, certified or flagged.

    Materialised form of :class:`StreamedProductSVD` (same numbers, bit for bit).

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
    stream = StreamedProductSVD(m, B, ks, tol=tol, seed=seed)
    parts = [s for k in range(1, ks[-1] + 1) if (s := stream.push(J[T - k])) is not None]
    return stack_spectra(parts)


def stack_spectra(parts: Sequence[ProductSpectrum]) -> ProductSpectrum:
    """One :class:`ProductSpectrum` from several (e.g. :meth:`StreamedProductSVD.push`'s
    returns), lags concatenated in the given order."""
    if not parts:
        raise UsageError("no spectra to stack")
    return ProductSpectrum(
        tuple(k for p in parts for k in p.lags),
        np.concatenate([p.log10_singular_values for p in parts]),
        np.concatenate([p.certified for p in parts]),
        np.concatenate([p.log10_error for p in parts]),
        np.concatenate([p.jacobi_bound for p in parts]),
        parts[0].tol,
    )

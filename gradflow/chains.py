r"""The backward chains of the engine: the renormalised product and its norms per lag, the
gradient vectors (vector-Jacobian products) and the Lyapunov spectrum (QR along the chain).

:class:`Chain` multiplies ``P <- P J_t`` lag after lag, normalising the product in place
without overflow or underflow (:func:`gradflow.norms.normalise`) and carrying its log10 scale;
a product that becomes exactly zero stays zero (log10 ``-inf`` from that lag on, never NaN).
Each lag's product goes to the certified spectral-norm estimators (:mod:`gradflow.spectral`)
while it is in cache. :mod:`gradflow.engine` validates, rolls out and drives these chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import to_numpy
from .cells import Cell
from .codegen import Kernels
from .errors import NumericalError, UsageError
from .fused import fused_apply
from .norms import frobenius, normalise
from .spectral import Spectral


@dataclass
class Setup:
    """Everything validated and compiled for one analysis."""

    cell: Cell
    kernels: Kernels
    xp: Any
    q: dict[str, Any]
    inputs: Any
    s0: Any
    steps: int
    batch: int
    n: int
    d: int
    m: int
    dtype: Any
    #: the second size ``p`` of a cell that declares one (the projected LSTM), else None
    p: int | None = None
    #: grouped weights: ``D`` parameter sets, sequence ``b`` taking set ``b // (batch / D)``
    #: (:meth:`gradflow.codegen.Kernels.pack_draws`); None: one set shared by every sequence
    draws: int | None = None
    #: with ``draws``: one spectral-norm estimator per draw (:class:`GroupSpectral`)
    spectral_per_draw: bool = False

    @property
    def h_size(self) -> int:
        """Length of the first state vector (``h``): ``n``, or ``p`` for a projected LSTM."""
        return self.n if not self.cell.sizes else self.cell.block_sizes(self.n, self.p)[0]


#: Hidden size from which the chain uses the fused apply kernel.
FUSED_FROM = 128


class Chain:
    """One renormalised backward product (full, or one path), with its norms per lag."""

    def __init__(
        self,
        su: Setup,
        kern: Kernels,
        steps: int,
        hidden: bool,
        chunk: int,
        compiled: bool = False,
    ) -> None:
        xp = su.xp
        self.kern = kern
        self.P = xp.broadcast_to(xp.eye(su.m, dtype=su.dtype), (su.batch, su.m, su.m)).copy()
        # At n >= 128 the fused kernel writes into two alternating buffers (no concatenate,
        # no allocation per step, the materialised block built in one batched product): for
        # cells with several state vectors, or whose block has several weights (the GRU). A
        # single row-scaled weight (the RNN) stays on apply: CPU time of a whole analyze at
        # n = 128 (T = 300, B = 8), fused / apply: rnn 1.05; gru 0.91 (one thread, best of 6).
        # With the compiled Krylov kernel (numba loaded), a column block of diagonal terms (the
        # LSTM's c column) is one compiled pass (gradflow.fused_kernels), bitwise the same.
        # Grouped weights (one set per draw) take ``apply``: the fused kernel stacks one set.
        big = su.n >= FUSED_FROM and not su.cell.sizes and su.draws is None
        fa = fused_apply(kern, compiled) if big else None
        use = fa is not None and (len(su.cell.state) > 1 or fa.stacked)
        self.fused = fa.apply_into if use and fa is not None else None
        self.buffers = (xp.empty_like(self.P), xp.empty_like(self.P))
        self.ws: dict[str, Any] = {}
        self.log_scale = np.zeros(su.batch)
        self.frob = np.zeros((steps + 1, su.batch))
        self.spec = np.zeros((steps + 1, su.batch))
        self.frob[0] = 0.5 * np.log10(su.m)
        self.hidden = hidden and len(su.cell.state) > 1
        self.spec_h = np.zeros((steps + 1, su.batch)) if self.hidden else None
        self.n = su.h_size
        self.spectral = _spectral(su, su.m, chunk, compiled)
        self.spectral_h = _spectral(su, self.n, chunk, compiled) if self.hidden else None
        # Below this Frobenius norm the h block is rescaled before its estimator sees it: the
        # estimator's residuals are fourth powers of the block's scale.
        self.h_low = float(np.finfo(su.dtype).tiny) ** 0.125

    def run_chunk(
        self,
        su: Setup,
        F: Any,
        k0: int,
        steps: int,
    ) -> None:
        """Multiply through one chunk of ``steps`` steps (latest first); lags k0+1..k0+K.

        ``F`` may be empty: a chain whose Jacobian is constant (e.g. the additive path ``I`` of
        an AntisymmetricRNN) has no per-step factors, only the chunk's length.

        Each lag's product is normalised in place (:func:`gradflow.norms.normalise`: no
        overflow or underflow, a zero product stays zero and its log10 norms are ``-inf`` from
        that lag on) and handed to the spectral-norm estimators while it is in cache; no
        product is stored."""
        xp = su.xp
        K = steps
        scales = xp.empty((K, su.batch), dtype=su.dtype)
        h_scales = None
        apply, spectral, spectral_h, n = self.kern.apply, self.spectral, self.spectral_h, self.n
        P = self.P
        spectral.start_chunk(K, su.batch, su.dtype)
        if spectral_h is not None:
            spectral_h.start_chunk(K, su.batch, su.dtype)
        for j in range(K):
            Fj = tuple(f[K - 1 - j] for f in F)
            if self.fused is not None:
                out = self.buffers[0] if P is not self.buffers[0] else self.buffers[1]
                P = self.fused(P, Fj, su.q, out, self.ws)
            else:
                P = apply(P, Fj, su.q)  # a fresh array: scaled in place
            s, finite = normalise(xp, P)
            if not finite:
                b = int(np.argwhere(~np.isfinite(to_numpy(s)))[0][0])
                raise NumericalError(
                    f"the Jacobian product of {su.cell.name!r} overflowed or became NaN at "
                    f"step {su.steps - k0 - j}, sequence {b}: a Jacobian there is not finite "
                    "or beyond the floating-point range"
                )
            scales[j] = s
            spectral.step(j, P, k0 + j + 1)
            if spectral_h is not None:
                Ph = P[:, :n, :n]
                fh = frobenius(xp, Ph)
                low = fh < self.h_low
                if bool(low.any()):  # a tiny h block: its own unit scale for the estimator
                    f = xp.where(low & (fh > 0), fh, 1.0)
                    Ph, fh = Ph / f[:, None, None], fh / f
                    if h_scales is None:
                        h_scales = xp.ones((K, su.batch), dtype=su.dtype)
                    h_scales[j] = f
                spectral_h.step(j, Ph, k0 + j + 1, fh)
        self.P = P
        with np.errstate(divide="ignore"):
            log_s = np.log10(to_numpy(scales).astype(np.float64))
        cum = self.log_scale[None, :] + np.cumsum(log_s, axis=0)
        self.frob[k0 + 1 : k0 + K + 1] = cum
        self.log_scale = cum[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.spec[k0 + 1 : k0 + K + 1] = np.log10(spectral.finish(K)) + cum
            if spectral_h is not None:
                assert self.spec_h is not None
                spec_h = np.log10(spectral_h.finish(K)) + cum
                if h_scales is not None:
                    spec_h += np.log10(to_numpy(h_scales).astype(np.float64))
                self.spec_h[k0 + 1 : k0 + K + 1] = spec_h
        # A product that died out (exactly zero) stays zero: -inf, never NaN (-inf + -inf).

    def spectrals(self) -> list[Spectral | GroupSpectral]:
        return [self.spectral] + ([self.spectral_h] if self.spectral_h is not None else [])


def _spectral(su: Setup, rows: int, chunk: int, compiled: bool) -> Spectral | GroupSpectral:
    """The spectral-norm estimator of a chain: one over the batch, or with grouped weights and
    ``spectral_per_draw`` one per draw (:class:`GroupSpectral`)."""
    if su.draws is None or not su.spectral_per_draw:
        return Spectral(su.xp, su.batch, rows, rows, su.dtype, chunk, compiled)
    size = su.batch // su.draws
    parts = [Spectral(su.xp, size, rows, rows, su.dtype, chunk, compiled) for _ in range(su.draws)]
    return GroupSpectral(parts, size)


class GroupSpectral:
    """One :class:`~gradflow.spectral.Spectral` estimator per draw of grouped weights, each
    on its draw's ``size`` consecutive sequences of the batch.

    The estimator's start vectors and its stopping decisions are drawn and taken per
    estimator (over its whole batch), so an estimator per draw gives each draw the values,
    certificates and random streams of that draw's separate call, bit for bit: a grouped
    call equals the separate calls exactly. One estimator over the whole batch (the
    default) certifies every value just as well, equal to the separate calls' within the
    certified tolerance, and costs less: each estimator pays its own per-step cost (CPU
    time of the chain, LSTM, n = 32, T = 300, 10 draws x 2 sequences: 4.7 s per draw,
    2.3 s over the batch, 6.3 s in 10 separate calls; one BLAS thread)."""

    def __init__(self, parts: list[Spectral], size: int) -> None:
        self.parts, self.size = parts, size

    def _cut(self, i: int) -> slice:
        return slice(i * self.size, (i + 1) * self.size)

    def start_chunk(self, K: int, batch: int, dtype: Any) -> None:
        for part in self.parts:
            part.start_chunk(K, self.size, dtype)

    def step(self, j: int, P: Any, lag: int, frob: Any = None) -> None:
        for i, part in enumerate(self.parts):
            cut = self._cut(i)
            part.step(j, P[cut], lag, None if frob is None else frob[cut])

    def finish(self, K: int) -> np.ndarray:
        return np.concatenate([part.finish(K) for part in self.parts], axis=1)

    @property
    def counts(self) -> dict[str, int]:
        """Certificates of every draw, summed."""
        return {k: sum(p.counts[k] for p in self.parts) for k in self.parts[0].counts}

    @property
    def worst_gap(self) -> float:
        return max(p.worst_gap for p in self.parts)

    @property
    def depth(self) -> int:
        """Krylov depths of every draw, summed."""
        return sum(p.depth for p in self.parts)


class VectorChain:
    """Gradient vectors ``dL/ds_{T-k}`` (VJPs, O(n^2) per step), renormalised."""

    def __init__(self, su: Setup, steps: int, loss: str) -> None:
        xp = su.xp
        if loss not in ("last", "sum"):
            raise UsageError(f"unknown gradient loss {loss!r}; choose 'last' or 'sum'")
        self.loss = loss
        self.steps = steps
        # L = sum of h_T ("last") or of every h_t ("sum"): dL/dh is a vector of ones.
        e = np.zeros(su.m)
        e[: su.h_size] = 1.0
        self.e = xp.asarray(np.broadcast_to(e, (su.batch, 1, su.m)).astype(su.dtype))
        self.g = self.e.copy()
        self.log_scale = np.zeros(su.batch)
        self.out = np.zeros((steps + 1, su.batch))
        self.out[0] = 0.5 * np.log10(su.h_size)

    def step(self, su: Setup, F: Any, k: int) -> None:
        xp = su.xp
        g = su.kernels.apply_vec(self.g, F, su.q)
        if self.loss == "sum" and k < self.steps:
            # G_k = G_{k-1} J + e with G carried as g~ 10^L: add e 10^-L. The direct term keeps
            # ||G|| >= O(1) apart from cancellation, so the clip never binds in practice. Where
            # G_{k-1} J is exactly zero (a dead product), G_k = e: restart the scale at 0.
            self.log_scale = np.where(np.isneginf(self.log_scale), 0.0, self.log_scale)
            add = np.power(10.0, np.clip(-self.log_scale, -300.0, 300.0))
            g = g + self.e * xp.asarray(add, dtype=su.dtype)[:, None, None]
        s, finite = normalise(xp, g)
        if not finite:
            b = int(np.argwhere(~np.isfinite(to_numpy(s)))[0][0])
            raise NumericalError(
                f"the gradient of {su.cell.name!r} overflowed or became NaN at step "
                f"{self.steps - k + 1}, sequence {b}"
            )
        self.g = g
        with np.errstate(divide="ignore"):
            self.log_scale = self.log_scale + np.log10(to_numpy(s).astype(np.float64))
        with np.errstate(divide="ignore"):
            norm = to_numpy(frobenius(xp, self.g)).astype(np.float64)
            self.out[k] = self.log_scale + np.log10(norm)


class Lyapunov:
    """QR re-orthonormalisation along the chain: the Lyapunov spectrum.

    The singular values of ``J_T ... J_1`` and of its transpose coincide, so their growth
    rates (the Lyapunov exponents of the forward dynamics, Benettin et al. 1980) are obtained
    by re-orthonormalising ``Q^T J_t`` while the backward chain runs.
    """

    def __init__(self, su: Setup, count: int) -> None:
        xp = su.xp
        p = min(count, su.m)
        rng = np.random.default_rng(0)
        q0, _ = np.linalg.qr(rng.standard_normal((su.m, p)))
        self.Qt = xp.asarray(np.broadcast_to(q0.T, (su.batch, p, su.m)).astype(su.dtype))
        self.total = np.zeros((su.batch, p))

    def step(self, su: Setup, F: Any) -> None:
        xp = su.xp
        Y = su.kernels.apply_vec(self.Qt, F, su.q)
        Q, R = xp.linalg.qr(xp.swapaxes(Y, -1, -2))
        d = xp.diagonal(R, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore"):
            self.total += np.log(np.abs(to_numpy(d).astype(np.float64)))
        self.Qt = xp.swapaxes(Q, -1, -2)

r"""Lyapunov diagnostics with error bars: exponents, Kaplan-Yorke dimension, entropy rate.

The Lyapunov exponents of the forward dynamics ``s_t = F(s_{t-1}, x_t)`` are the growth rates
of the singular values of ``J_t \cdots J_1`` ([benettin1980], [eckmann1985]). They are
obtained by QR re-orthonormalisation, ``J_t Q_{t-1} = Q_t R_t``:

.. math:: \lambda_i = \frac{1}{T - t_0} \sum_{t > t_0} \log_{10} |R_t[i, i]|
   \quad\text{decades per step},

after a transient of ``t_0`` steps (the frame ``Q`` aligns with the Oseledets directions).

**Error bars** by batch means ([flyvbjerg1989]): the steps after the transient are cut into
``blocks`` contiguous blocks per sequence; each block gives an estimate of every exponent, and
the standard error is the standard deviation of the ``B x blocks`` block estimates over the
square root of their number. This is valid when a block is longer than the correlation time
of ``log|R_t[i, i]|``; ``block_steps`` is reported so a reader can judge.

**Kaplan-Yorke dimension** ([kaplan1979]): with ``j`` the largest index whose partial sum
``sum_{i<=j} lambda_i`` is ``>= 0``, ``D_KY = j + sum_{i<=j} lambda_i / |lambda_{j+1}|``
(0 when ``lambda_1 < 0``). When only ``p < m`` exponents are computed and all their partial
sums are ``>= 0``, ``D_KY >= p`` is a lower bound and is flagged.

**Entropy rate**: the sum of the positive exponents (Pesin's formula, an upper bound on the
Kolmogorov-Sinai entropy, [eckmann1985]); in decades per step, and in nats per step where the
formula is usually quoted (``ln 10`` times the former).

**The determinant identity**: with all ``m`` exponents, ``sum_i lambda_i`` equals the time
average of ``log10 |det J_t|`` (per step, ``sum_i log|R_t[i, i]| = log|det J_t|``, since
``Q_{t-1}`` is orthogonal); ``det_residual`` reports the difference, a check of the whole
computation.

Examples:
    >>> import numpy as np
    >>> J = np.broadcast_to(np.diag([10**0.1, 10**-0.05, 10**-0.2]), (200, 1, 3, 3))
    >>> d = lyapunov_diagnostics(J)
    >>> np.round(d.exponents, 12).tolist(), round(d.kaplan_yorke, 12)
    ([0.1, -0.05, -0.2], 2.25)

References:
    [benettin1980], [eckmann1985], [kaplan1979], [flyvbjerg1989].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import rollout, state_jacobians
from ..errors import UsageError
from ..results.lyapunov import LyapunovSummary

_LN10 = math.log(10.0)
_EPS = float(np.finfo(np.float64).eps)
#: Sequences per seed of an experiment's Lyapunov pass (the first of each seed): the full
#: spectrum costs ``O(m^3)`` per step and sequence, so the pass takes a share of the runs, as the
#: certified singular values do (:data:`gradflow.analysis.exact.SV_SEQUENCES`).
LYAPUNOV_SEQUENCES = 1
#: Blocks per sequence of the experiment's batch means.
EXPERIMENT_BLOCKS = 10
#: Largest state size ``m`` given all ``m`` exponents in an experiment; a larger state gets the
#: leading ``FULL_SPECTRUM_MAX`` (no determinant check, ``D_KY`` and the entropy rate flagged
#: where they are only bounds).
FULL_SPECTRUM_MAX = 128
#: Tolerance of the determinant check, decades per step. The identity holds per step in exact
#: arithmetic; in floating point each side carries a relative error of about ``m u kappa(J_t)``
#: in ``|det J_t|`` (backward-stable QR and LU, unit roundoff ``u``), so ``1e-8`` allows
#: condition numbers up to about ``10^6`` at ``m = 64`` and lies five decades below the
#: exponents' standard errors (``>= 1e-4`` in the default report; its residuals are ``<= 1e-12``).
DET_TOL = 1e-8
#: Bytes of Jacobians materialised at once by the experiment's pass.
CHUNK_BYTES = 2**25


@dataclass(frozen=True)
class LyapunovDiagnostics:
    """Lyapunov exponents with error bars and what follows from them.

    Attributes:
        exponents: ``(p,)`` decades per step, descending (mean over sequences and steps).
        stderr: ``(p,)`` batch-means standard error of each exponent.
        per_sequence: ``(B, p)`` the exponents of each sequence.
        kaplan_yorke: Kaplan-Yorke dimension.
        kaplan_yorke_stderr: its standard error over the block estimates.
        kaplan_yorke_lower_bound: True when ``D_KY`` is only a lower bound (``p < m``).
        entropy_rate: sum of the positive exponents, decades per step.
        entropy_rate_nats: the same in nats per step.
        log10_det_mean: time average of ``log10 |det J_t|`` (None when ``p < m``).
        det_residual: ``sum(exponents) - log10_det_mean`` (None when ``p < m``).
        steps: steps used (after the transient).
        transient: steps discarded.
        blocks: blocks per sequence.
        block_steps: steps per block.
        singular_steps: steps (over all sequences) with ``det J_t = 0`` exactly; then
            ``log10_det_mean`` is ``-inf`` and ``det_residual`` None (both sides are ``-inf``).
        resolved: ``(p,)`` False for an exponent whose ``|R_t[i, i]|`` fell to the rounding
            level of its step (``<= m u ||J_t Q_{t-1}||_F``) at some step and sequence: its
            value is then rounding noise below the last resolved one (a direction the
            Jacobian annihilates, e.g. a dead ReLU unit), not a rate.
    """

    exponents: np.ndarray
    stderr: np.ndarray
    per_sequence: np.ndarray
    kaplan_yorke: float
    kaplan_yorke_stderr: float
    kaplan_yorke_lower_bound: bool
    entropy_rate: float
    entropy_rate_nats: float
    log10_det_mean: float | None
    det_residual: float | None
    steps: int
    transient: int
    blocks: int
    block_steps: int
    singular_steps: int = 0
    resolved: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, units in the keys' documentation (decades per step)."""
        return {
            "exponents": self.exponents.tolist(),
            "stderr": self.stderr.tolist(),
            "kaplan_yorke": self.kaplan_yorke,
            "kaplan_yorke_stderr": self.kaplan_yorke_stderr,
            "kaplan_yorke_lower_bound": self.kaplan_yorke_lower_bound,
            "entropy_rate": self.entropy_rate,
            "entropy_rate_nats": self.entropy_rate_nats,
            "log10_det_mean": self.log10_det_mean,
            "det_residual": self.det_residual,
            "steps": self.steps,
            "transient": self.transient,
            "blocks": self.blocks,
            "block_steps": self.block_steps,
            "singular_steps": self.singular_steps,
            "resolved": None if self.resolved is None else self.resolved.tolist(),
            "units": "decades per step",
        }


def kaplan_yorke(exponents: Any, complete: bool = True) -> tuple[float, bool]:
    """``(D_KY, lower_bound)`` from exponents sorted descending ([kaplan1979]).

    Examples:
        >>> kaplan_yorke([0.1, -0.05, -0.2])
        (2.25, False)
        >>> kaplan_yorke([-0.1, -0.2])
        (0.0, False)
    """
    lam = np.sort(np.asarray(exponents, dtype=float))[::-1]
    partial = np.cumsum(lam)
    if lam.size == 0 or partial[0] < 0:
        return 0.0, False
    j = int(np.nonzero(partial >= 0)[0][-1]) + 1  # number of exponents in the sum
    if j == lam.size:
        return float(j), not complete
    return float(j + partial[j - 1] / abs(lam[j])), False


def lyapunov_diagnostics(
    jacobians: Any,
    count: int | None = None,
    *,
    transient: int = 0,
    blocks: int = 10,
    seed: int = 0,
) -> LyapunovDiagnostics:
    """Lyapunov exponents of ``s_t = F(s_{t-1})`` from its Jacobians, with error bars.

    Args:
        jacobians: ``(T, B, m, m)`` the per-step ``J_t = ds_t/ds_{t-1}``, ``t = 1..T``.
        count: number of exponents ``p`` (all ``m`` by default).
        transient: steps discarded at the start.
        blocks: blocks per sequence for the batch-means error bars (at least 2).
        seed: seed of the random orthonormal start when ``p < m``.

    Raises:
        UsageError: bad shapes, too few steps for the blocks, non-finite Jacobians.

    References:
        [benettin1980], [kaplan1979], [flyvbjerg1989].
    """
    J = np.asarray(jacobians, dtype=np.float64)
    if J.ndim != 4 or J.shape[-1] != J.shape[-2]:
        raise UsageError(f"jacobians must have shape (T, B, m, m); got {J.shape}")
    T, B, m, _ = J.shape
    p = _check(T, m, count, transient, blocks)
    return _streamed([J], B, m, p, transient=transient, blocks=blocks, seed=seed)


def _check(T: int, m: int, count: int | None, transient: int, blocks: int) -> int:
    p = m if count is None else int(count)
    if not 1 <= p <= m:
        raise UsageError(f"count must lie in 1..{m}; got {count!r}")
    if blocks < 2 or transient < 0 or T - transient < blocks:
        raise UsageError(
            f"need at least {blocks} steps after a transient of {transient} (T = {T}) and "
            "blocks >= 2"
        )
    return p


def _streamed(
    chunks: Iterable[np.ndarray],
    B: int,
    m: int,
    p: int,
    *,
    transient: int,
    blocks: int,
    seed: int = 0,
) -> LyapunovDiagnostics:
    """:func:`lyapunov_diagnostics` of Jacobians that arrive in chunks of steps, each
    ``(K, B, m, m)``, in time order (memory: one chunk and ``T B p`` logarithms)."""
    if p == m:
        Q = np.broadcast_to(np.eye(m), (B, m, m)).copy()
    else:
        q0, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, p)))
        Q = np.broadcast_to(q0, (B, m, p)).copy()
    logr: list[np.ndarray] = []
    floor: list[np.ndarray] = []
    logdet: list[np.ndarray] = []
    for chunk in chunks:
        J = np.asarray(chunk, dtype=np.float64)
        if not np.isfinite(J).all():
            raise UsageError("jacobians contain NaN or inf")
        for Jt in J:
            A = Jt @ Q
            Q, R = np.linalg.qr(A)
            with np.errstate(divide="ignore"):
                logr.append(np.log10(np.abs(np.diagonal(R, axis1=-2, axis2=-1))))
                # Householder QR resolves R[i, i] only to about m u ||A||_F (absolute)
                floor.append(np.log10(m * _EPS * np.sqrt(np.sum(A * A, axis=(-2, -1)))))
        if p == m:
            logdet.append(np.linalg.slogdet(J)[1] / _LN10)  # -inf where det J_t = 0
    logr_t = np.stack(logr)
    unresolved = logr_t <= np.stack(floor)[..., None]
    return _diagnose(
        logr_t, np.concatenate(logdet) if logdet else None, m, transient, blocks, unresolved
    )


def _diagnose(
    logr: np.ndarray,
    logdet: np.ndarray | None,
    m: int,
    transient: int,
    blocks: int,
    unresolved: np.ndarray | None = None,
) -> LyapunovDiagnostics:
    """The statistics of :class:`LyapunovDiagnostics` from the per-step ``log10 |R_t[i, i]|``
    ``(T, B, p)`` and, with all ``m`` exponents, the per-step ``log10 |det J_t|`` ``(T, B)``."""
    p = logr.shape[-1]
    B = logr.shape[1]
    used = logr[transient:]
    n = used.shape[0]
    bs = n // blocks
    # -inf (a direction annihilated exactly) stays -inf in every mean; its spread is NaN
    with np.errstate(invalid="ignore"):
        means = used.mean(axis=0)
        order = np.argsort(-means, axis=-1, kind="stable")
        per_seq = np.take_along_axis(means, order, axis=-1)
        # batch means: blocks x sequences independent estimates of every exponent
        bm = used[: bs * blocks].reshape(blocks, bs, B, p).mean(axis=1).reshape(blocks * B, p)
        bm = np.sort(bm, axis=-1)[:, ::-1]
        lam = per_seq.mean(axis=0)
        se = bm.std(axis=0, ddof=1) / math.sqrt(bm.shape[0])
        dky, lower = kaplan_yorke(lam, complete=p == m)
        dky_blocks = np.array([kaplan_yorke(b, complete=p == m)[0] for b in bm])
        dky_se = float(dky_blocks.std(ddof=1) / math.sqrt(len(dky_blocks)))
    pos = float(np.sum(np.where(lam > 0, lam, 0.0)))
    resolved: np.ndarray = np.ones(p, dtype=bool)
    if unresolved is not None:  # a column at rounding level at some step, in sorted order
        low = np.take_along_axis(unresolved[transient:].any(axis=0), order, axis=-1)
        resolved = np.logical_not(low.any(axis=0))
    det_mean: float | None = None
    resid: float | None = None
    singular = 0
    if logdet is not None:
        ld = logdet[transient:]
        singular = int(np.isneginf(ld).sum())
        det_mean = float(np.mean(ld))
        if singular == 0:  # with a singular J_t both sides are -inf: no residual
            resid = float(np.sum(lam) - det_mean)
    return LyapunovDiagnostics(
        exponents=lam,
        stderr=se,
        per_sequence=per_seq,
        kaplan_yorke=dky,
        kaplan_yorke_stderr=dky_se,
        kaplan_yorke_lower_bound=lower,
        entropy_rate=pos,
        entropy_rate_nats=pos * _LN10,
        log10_det_mean=det_mean,
        det_residual=resid,
        steps=n,
        transient=int(transient),
        blocks=int(blocks),
        block_steps=bs,
        singular_steps=singular,
        resolved=resolved,
    )


def cell_lyapunov(
    cell: Any,
    params: Mapping[str, Any],
    inputs: Any,
    count: int | None = None,
    *,
    s0: Any = None,
    transient: int = 0,
    blocks: int = 10,
) -> LyapunovDiagnostics:
    """:func:`lyapunov_diagnostics` of a cell's own Jacobians (through the generated kernels,
    :func:`gradflow.engine.state_jacobians`; materialised, ``T B m^2`` floats)."""
    J = state_jacobians(cell, params, inputs, s0=s0)
    return lyapunov_diagnostics(J, count, transient=transient, blocks=blocks)


def experiment_lyapunov(
    cell: Any,
    runs: Sequence[tuple[Mapping[str, Any], Any]],
    *,
    sequences: int = LYAPUNOV_SEQUENCES,
    blocks: int = EXPERIMENT_BLOCKS,
    transient: int | None = None,
    max_state: int = FULL_SPECTRUM_MAX,
) -> LyapunovSummary | None:
    r"""The Lyapunov diagnostics of an experiment cell from its own runs' weights and inputs.

    Every exponent (all ``m``, up to ``max_state``) by forward QR on the materialised Jacobians
    (the generated kernels, chunk by chunk: memory bounded in ``T``) of the first ``sequences``
    sequences of each run, after a transient of ``T // 6`` steps; standard errors by batch
    means over ``blocks`` blocks per sequence; ``D_KY``, the entropy rate and the determinant
    check (:data:`DET_TOL`) as in :func:`lyapunov_diagnostics`.

    Args:
        cell: the :class:`~gradflow.cells.Cell`.
        runs: ``(params, inputs)`` of each seed, inputs ``(T, B, d)``.
        sequences: sequences per run.
        blocks: blocks per sequence (fewer when ``T`` is short).
        transient: steps discarded (default ``T // 6``).
        max_state: largest ``m`` given all its exponents.

    Returns:
        A :class:`~gradflow.results.lyapunov.LyapunovSummary`, or None when there are too few
        steps for two blocks.

    References:
        [benettin1980], [kaplan1979], [eckmann1985], [flyvbjerg1989].
    """
    xs = [np.asarray(x)[:, :sequences] for _, x in runs]
    T = int(xs[0].shape[0])
    t0 = T // 6 if transient is None else int(transient)
    blocks = min(blocks, T - t0)
    if blocks < 2:
        return None
    B = sum(int(x.shape[1]) for x in xs)
    m = int(rollout(cell, runs[0][0], xs[0][:1]).shape[-1])  # one step: the state's length
    count = min(m, max_state)
    chunk = max(1, CHUNK_BYTES // (8 * B * m * m))
    # the states at the chunks' starts (one forward pass), unless one chunk holds every step
    states = [rollout(cell, p, x) for (p, _), x in zip(runs, xs, strict=True)] if chunk < T else []

    def jacobians() -> Iterator[np.ndarray]:
        for a in range(0, T, chunk):
            b = min(T, a + chunk)
            yield np.concatenate(
                [
                    state_jacobians(cell, p, x[a:b], s0=states[i][a] if states else None)
                    for i, ((p, _), x) in enumerate(zip(runs, xs, strict=True))
                ],
                axis=1,
            )

    d = _streamed(jacobians(), B, m, count, transient=t0, blocks=blocks)
    lam = d.exponents
    complete = count == m
    total = float(np.sum(lam)) if complete else None
    passes = None if d.det_residual is None else bool(abs(d.det_residual) <= DET_TOL)
    return LyapunovSummary(
        exponents=lam,
        stderr=d.stderr,
        state_size=m,
        kaplan_yorke=d.kaplan_yorke,
        kaplan_yorke_stderr=d.kaplan_yorke_stderr if math.isfinite(d.kaplan_yorke_stderr) else None,
        kaplan_yorke_lower_bound=d.kaplan_yorke_lower_bound,
        entropy_rate=d.entropy_rate,
        entropy_rate_nats=d.entropy_rate_nats,
        entropy_rate_lower_bound=not complete and bool(lam[-1] > 0),
        exponent_sum=total,
        log10_det_mean=(
            d.log10_det_mean
            if d.log10_det_mean is not None and math.isfinite(d.log10_det_mean)
            else None
        ),
        det_residual=d.det_residual,
        det_tol=DET_TOL,
        det_passes=passes,
        singular_steps=d.singular_steps,
        sequences=B,
        steps=d.steps,
        transient=d.transient,
        blocks=d.blocks,
        block_steps=d.block_steps,
        resolved=d.resolved,
        method=(
            f"forward QR re-orthonormalisation J_t Q_(t-1) = Q_t R_t of the generated "
            f"Jacobians, {'all' if complete else 'the leading'} {count} of m = {m} exponents, "
            f"on the first {sequences} sequence(s) of each of {len(runs)} seed(s); "
            f"transient {d.transient} steps, batch means over {d.blocks} blocks of "
            f"{d.block_steps} steps per sequence; log10|det J_t| by LU (slogdet)"
        ),
    )

r"""The numeric engine: rollout, chunked Jacobian factors, and renormalised log-domain chains.

For a cell, parameters and inputs ``(T, B, d)`` the engine computes, for every lag
``k = 0..T``, norms of the backward product

.. math:: P_k = \frac{\partial s_T}{\partial s_{T-k}} = J_T J_{T-1} \cdots J_{T-k+1},

with ``J_t = ds_t/ds_{t-1}`` evaluated by kernels generated from the SymPy derivation
(:mod:`gradflow.codegen`). The product is renormalised at every step and its log scale is
carried (DESIGN decision 4), so a norm of ``1e-1000`` is reported as ``-1000`` in log10,
never as 0.

Memory is constant in ``T``: when the rollout's unit values fit in ``ROLLOUT_BUDGET`` they are
kept from the forward pass; otherwise the forward pass keeps only the states at chunk
boundaries and the backward pass recomputes one chunk of steps at a time. Each chunk's Jacobian
factors are evaluated in one batched call (a NaN or inf among them is reported with its step
and sequence), and the chain multiplies through them, normalising every lag's product without
overflow or underflow (:mod:`gradflow.norms`). Spectral norms for every lag come from block
Krylov Rayleigh-Ritz on the chain's own product while it is in cache, started from the previous
lag's block, and every accepted value is certified (see :mod:`gradflow.spectral`). No product
is stored. Compute regions run under the BLAS thread policy of :mod:`gradflow.threads`, and the
cost is checked before anything is compiled (:mod:`gradflow.cost`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._version import __version__
from .backend import resolve_dtype, to_numpy
from .cells import Cell
from .codegen import Kernels, compile_cell
from .cost import check_cost, estimate_cost
from .errors import InputsError, NumericalError, UsageError, WeightsError
from .fused import fused_apply
from .norms import frobenius, normalise
from .results import AnalysisResult
from .spectral import CERTIFICATES, SPECTRAL_RTOL, Spectral
from .threads import blas_threads, compute_region

#: Bytes of chunk buffers (Jacobian factors) the backward pass may hold.
MEMORY_BUDGET = 96 * 2**20
#: Bytes of the rollout's unit values kept in memory instead of recomputed chunk by chunk.
ROLLOUT_BUDGET = 64 * 2**20


@dataclass
class _Setup:
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


def _setup(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any,
    backend: str,
    dtype: str,
    before_compile: Callable[[int, int, int, int], None] | None = None,
) -> _Setup:
    """Validate everything, call ``before_compile(T, B, n, m)`` (the cost check), then compile
    the kernels and pack the parameters. Inputs already in the working dtype and C order are
    used as they are, not copied."""
    if not isinstance(cell, Cell):
        raise UsageError(
            f"the engine takes a Cell, not {type(cell).__name__}; resolve a catalogue name "
            "with gradflow.get_cell(name)"
        )
    c = cell
    dt = resolve_dtype(dtype)
    missing = [p.name for p in c.parameters if p.name not in params]
    if missing:
        raise WeightsError(f"cell {c.name!r}: missing parameters {', '.join(missing)}")
    x = np.asarray(inputs)
    if x.ndim != 3:
        raise InputsError(f"inputs must have shape (T, B, d); got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputsError(f"inputs must be floating point; got dtype {x.dtype}")
    T, B, d = x.shape
    if T < 1 or B < 1:
        raise InputsError(f"inputs need T >= 1 steps and B >= 1 sequences; got shape {x.shape}")
    if not np.isfinite(x).all():
        t, b = np.argwhere(~np.isfinite(x))[0][:2]
        raise InputsError(f"inputs contain NaN or inf (first at step {t + 1}, sequence {b})")
    n = None
    for p in c.parameters:
        a = np.asarray(params[p.name])
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise WeightsError(f"parameter {p.name!r} has dtype {a.dtype}; expected float")
        if n is None:
            n = a.shape[0] if a.ndim >= 1 else 0
        expected = p.numeric_shape(n, d)
        if a.shape != expected:
            raise WeightsError(
                f"parameter {p.name!r} has shape {a.shape}; expected {expected} "
                f"(hidden size {n}, input size {d})"
            )
        if not np.isfinite(a).all():
            raise WeightsError(f"parameter {p.name!r} contains NaN or inf")
    if n is None or n < 1:
        raise WeightsError("hidden size must be at least 1")
    m = c.state_size(n)
    if before_compile is not None:
        before_compile(T, B, n, m)
    kern = compile_cell(c, backend)
    xp = kern.xp
    q = kern.pack(params, dt)
    if s0 is None:
        s = xp.zeros((B, m), dtype=dt)
    else:
        s0a: np.ndarray = np.asarray(s0, dtype=dt)
        if s0a.shape != (B, m):
            raise InputsError(f"initial state must have shape (B, m) = {(B, m)}; got {s0a.shape}")
        s = xp.asarray(s0a)
    xs = xp.asarray(np.ascontiguousarray(x, dtype=dt))  # no copy when already in shape
    return _Setup(c, kern, xp, q, xs, s, T, B, n, d, m, dt)


def _chunk_steps(su: _Setup, extra_per_lag: int) -> int:
    per_step = su.batch * su.n * (len(su.kernels.layout.needed) + len(su.kernels.layout.diags))
    per_step += su.batch * len(su.kernels.layout.affine) * su.n + extra_per_lag
    k = MEMORY_BUDGET // max(1, 8 * per_step)
    return int(max(1, min(256, k)))


def _check_finite(su: _Setup, s: Any, t: int) -> None:
    xp = su.xp
    if not bool(xp.isfinite(s).all()):
        b = int(np.argwhere(~np.isfinite(to_numpy(s)))[0][0])
        raise NumericalError(
            f"the rollout of {su.cell.name!r} produced NaN or inf at step {t}, sequence {b}: "
            "reduce the weight scale or the inputs"
        )


def _check_factors(su: _Setup, F: Sequence[Any], t0: int) -> None:
    """One line naming the step and sequence where a Jacobian factor is NaN or inf (a
    derivative undefined at the state reached, e.g. ``sqrt(abs(a))`` at ``a = 0``)."""
    xp = su.xp
    for f in F:
        if not bool(xp.isfinite(f).all()):
            k, b = (int(i) for i in np.argwhere(~np.isfinite(to_numpy(f)))[0][:2])
            raise NumericalError(
                f"the Jacobian of {su.cell.name!r} is NaN or inf at step {t0 + k + 1}, "
                f"sequence {b}: a derivative is undefined at the state reached there "
                "(e.g. sqrt or log at 0)"
            )


def _forward(
    su: _Setup, chunk: int, keep: bool = False
) -> tuple[list[Any], Any, list[list[Any]] | None]:
    """Run the rollout, keeping the state at every chunk boundary; returns them, s_T and,
    with ``keep``, every chunk's unit values (as :func:`_chunk_values` would recompute them)."""
    step, q = su.kernels.step, su.q
    s = su.s0
    checkpoints = []
    kept: list[list[Any]] | None = [] if keep else None
    for t0 in range(0, su.steps, chunk):
        checkpoints.append(s)
        u = su.kernels.input_projection(su.inputs[t0 : t0 + chunk], q)
        cols: list[list[Any]] = [[] for _ in su.kernels.layout.needed]
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(u.shape[0]):
                s, vals = step(s, u[k], q)
                if not bool(su.xp.isfinite(s).all()):
                    _check_finite(su, s, t0 + k + 1)
                if kept is not None:
                    for col, v in zip(cols, vals, strict=True):
                        col.append(v)
        if kept is not None:
            kept.append([su.xp.stack(col) for col in cols])
    return checkpoints, s, kept


def _chunk_values(su: _Setup, s: Any, t0: int, t1: int) -> list[Any]:
    """Unit values of steps t0+1..t1 (stacked over steps), recomputed from the state at t0."""
    step, q = su.kernels.step, su.q
    u = su.kernels.input_projection(su.inputs[t0:t1], q)
    cols: list[list[Any]] = [[] for _ in su.kernels.layout.needed]
    for k in range(t1 - t0):
        s, vals = step(s, u[k], q)
        for col, v in zip(cols, vals, strict=True):
            col.append(v)
    return [su.xp.stack(col) for col in cols]


def rollout(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any = None,
    backend: str = "numpy",
    dtype: str = "float64",
    threads: int | None = None,
) -> np.ndarray:
    """All states ``s_0..s_T`` as a ``(T + 1, B, m)`` NumPy array (``s_0`` zero by default)."""
    su = _setup(cell, params, inputs, s0, backend, dtype)
    with compute_region(blas_threads(su.m, threads)):
        states, s_final, _ = _forward(su, 1)  # a checkpoint at every step: all of s_0..s_{T-1}
        return to_numpy(su.xp.stack([*states, s_final]))


def state_jacobians(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any = None,
    backend: str = "numpy",
    path: str = "full",
    threads: int | None = None,
) -> np.ndarray:
    """The materialised ``J_t = ds_t/ds_{t-1}`` for ``t = 1..T``: shape ``(T, B, m, m)``."""
    su = _setup(cell, params, inputs, s0, backend, "float64")
    with compute_region(blas_threads(su.m, threads)):
        return _state_jacobians(su, backend, path)


def _state_jacobians(su: _Setup, backend: str, path: str) -> np.ndarray:
    V = _chunk_values(su, su.s0, 0, su.steps)
    F = su.kernels.factors(V, su.q, (su.steps, su.batch, su.n))
    kern = compile_cell(su.cell, backend, path)
    if path != "full":
        F = _path_factors(su.kernels, kern, V, su.q, (su.steps, su.batch, su.n))
    return to_numpy(kern.jacobian(F, su.q, (su.steps, su.batch)))


def _path_factors(
    full: Kernels, kern: Kernels, V: list[Any], q: Any, shape: tuple[int, ...]
) -> Any:
    by_name = dict(zip(full.layout.needed, V, strict=True))
    return kern.factors([by_name[v] for v in kern.layout.needed], q, shape)


class _Chain:
    """One renormalised backward product (full, or one path), with its norms per lag."""

    def __init__(self, su: _Setup, kern: Kernels, steps: int, hidden: bool, chunk: int) -> None:
        xp = su.xp
        self.kern = kern
        self.P = xp.broadcast_to(xp.eye(su.m, dtype=su.dtype), (su.batch, su.m, su.m)).copy()
        # Cells with several state vectors: the fused kernel writes into two alternating
        # buffers (no concatenate, no allocation per step; measured 2x faster for the LSTM's
        # apply at n = 128, B = 8). One state vector: apply's own form is as fast.
        self.fused = fused_apply(kern).apply_into if len(su.cell.state) > 1 else None
        self.buffers = (xp.empty_like(self.P), xp.empty_like(self.P))
        self.ws: dict[str, Any] = {}
        self.log_scale = np.zeros(su.batch)
        self.frob = np.zeros((steps + 1, su.batch))
        self.spec = np.zeros((steps + 1, su.batch))
        self.frob[0] = 0.5 * np.log10(su.m)
        self.hidden = hidden and len(su.cell.state) > 1
        self.spec_h = np.zeros((steps + 1, su.batch)) if self.hidden else None
        self.n = su.n
        self.spectral = Spectral(xp, su.batch, su.m, su.m, su.dtype, chunk)
        self.spectral_h = (
            Spectral(xp, su.batch, su.n, su.n, su.dtype, chunk) if self.hidden else None
        )
        # Below this Frobenius norm the h block is rescaled before its estimator sees it: the
        # estimator's residuals are fourth powers of the block's scale.
        self.h_low = float(np.finfo(su.dtype).tiny) ** 0.125

    def run_chunk(
        self,
        su: _Setup,
        F: Any,
        k0: int,
        sv_lags: set[int],
        sv_out: dict[int, np.ndarray],
        n_sv: int,
    ) -> None:
        """Multiply through one chunk of steps (latest first); lags k0+1..k0+K.

        Each lag's product is normalised in place (:func:`gradflow.norms.normalise`: no
        overflow or underflow, a zero product stays zero and its log10 norms are ``-inf`` from
        that lag on) and handed to the spectral-norm estimators while it is in cache; no
        product is stored."""
        xp = su.xp
        K = F[0].shape[0] if F else 0
        scales = xp.empty((K, su.batch), dtype=su.dtype)
        h_scales = None
        apply, spectral, spectral_h, n = self.kern.apply, self.spectral, self.spectral_h, self.n
        P = self.P
        spectral.start_chunk(K, su.batch, su.dtype)
        if spectral_h is not None:
            spectral_h.start_chunk(K, su.batch, su.dtype)
        sv: dict[int, Any] = {}
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
            if k0 + j + 1 in sv_lags:
                sv[j] = xp.linalg.svd(P, compute_uv=False)[:, :n_sv]
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
            for j, values in sv.items():
                sv_out[k0 + j + 1] = np.log10(to_numpy(values)) + cum[j][:, None]
        # A product that died out (exactly zero) stays zero: -inf, never NaN (-inf + -inf).

    def spectrals(self) -> list[Spectral]:
        return [self.spectral] + ([self.spectral_h] if self.spectral_h is not None else [])


class _VectorChain:
    """Gradient vectors ``dL/ds_{T-k}`` (VJPs, O(n^2) per step), renormalised."""

    def __init__(self, su: _Setup, steps: int, loss: str) -> None:
        xp = su.xp
        if loss not in ("last", "sum"):
            raise UsageError(f"unknown gradient loss {loss!r}; choose 'last' or 'sum'")
        self.loss = loss
        self.steps = steps
        # L = sum of h_T ("last") or of every h_t ("sum"): dL/dh is a vector of ones.
        e = np.zeros(su.m)
        e[: su.n] = 1.0
        self.e = xp.asarray(np.broadcast_to(e, (su.batch, 1, su.m)).astype(su.dtype))
        self.g = self.e.copy()
        self.log_scale = np.zeros(su.batch)
        self.out = np.zeros((steps + 1, su.batch))
        self.out[0] = 0.5 * np.log10(su.n)

    def step(self, su: _Setup, F: Any, k: int) -> None:
        xp = su.xp
        g = su.kernels.apply_vec(self.g, F, su.q)
        if self.loss == "sum" and k < self.steps:
            # G_k = G_{k-1} J + e with G carried as g~ 10^L: add e 10^-L. The direct term keeps
            # ||G|| >= O(1) apart from cancellation, so the clip never binds in practice.
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


class _Lyapunov:
    """QR re-orthonormalisation along the chain: the Lyapunov spectrum.

    The singular values of ``J_T ... J_1`` and of its transpose coincide, so their growth
    rates (the Lyapunov exponents of the forward dynamics, Benettin et al. 1980) are obtained
    by re-orthonormalising ``Q^T J_t`` while the backward chain runs.
    """

    def __init__(self, su: _Setup, count: int) -> None:
        xp = su.xp
        p = min(count, su.m)
        rng = np.random.default_rng(0)
        q0, _ = np.linalg.qr(rng.standard_normal((su.m, p)))
        self.Qt = xp.asarray(np.broadcast_to(q0.T, (su.batch, p, su.m)).astype(su.dtype))
        self.total = np.zeros((su.batch, p))

    def step(self, su: _Setup, F: Any) -> None:
        xp = su.xp
        Y = su.kernels.apply_vec(self.Qt, F, su.q)
        Q, R = xp.linalg.qr(xp.swapaxes(Y, -1, -2))
        d = xp.diagonal(R, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore"):
            self.total += np.log(np.abs(to_numpy(d).astype(np.float64)))
        self.Qt = xp.swapaxes(Q, -1, -2)


def analyze(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    *,
    s0: Any = None,
    backend: str = "numpy",
    dtype: str = "float64",
    paths: bool = False,
    singular_lags: Sequence[int] = (),
    n_singular: int | None = None,
    lyapunov: int = 0,
    gradient: str | None = None,
    hidden: bool = True,
    threads: int | None = None,
    force: bool = False,
) -> AnalysisResult:
    """Exact log10 norms of ``ds_T/ds_{T-k}`` for every lag ``k = 0..T``.

    Norms are carried in the log domain and computed without overflow or underflow: a
    product of norm ``1e-1000`` is reported as ``-1000``. A product that is exactly zero
    (e.g. every ReLU unit dead at some step) is reported as exactly zero, ``log10 = -inf``
    (``null`` in JSON), from the lag where it becomes zero on; nothing is NaN. Every spectral
    norm carries a certificate (:mod:`gradflow.spectral`); ``meta["spectral"]`` counts them.

    Args:
        cell: a :class:`~gradflow.cells.Cell` (resolve a name with ``gradflow.get_cell``).
        params: parameters by the cell's names (see ``Cell.parameters``).
        inputs: float array of shape ``(T, B, d)``; used without a copy when it is already
            C-contiguous in ``dtype``.
        s0: initial state ``(B, m)``; zeros by default.
        backend: ``numpy`` or ``cupy``.
        dtype: ``float64`` (default) or ``float32``.
        paths: also follow the additive and the multiplicative path alone.
        singular_lags: lags at which to record the singular values of the product.
        n_singular: how many singular values to keep (all by default).
        lyapunov: number of Lyapunov exponents to compute (0: none).
        gradient: ``"last"`` or ``"sum"``: also record ``log10 ||dL/ds_{T-k}||`` for
            ``L = sum(h_T)`` or ``L = sum_t sum(h_t)``.
        hidden: record the ``h`` block's spectral norm (for cells with several state vectors).
        threads: BLAS threads inside the computation (default: the policy of
            :mod:`gradflow.threads`, ``GRADFLOW_THREADS`` or one thread for small states).
        force: run even when the cost estimate (:mod:`gradflow.cost`) is above its limits.

    Returns:
        An :class:`~gradflow.results.AnalysisResult`.

    Raises:
        UsageError: not a Cell, bad options, or a cost above the limits without ``force``.
        WeightsError: missing, misshapen or non-finite parameters.
        InputsError: inputs of the wrong rank or with NaN/inf.
        NumericalError: the rollout, a Jacobian or the product is NaN or inf (with the step
            and sequence).
    """
    started = time.perf_counter()
    n_paths = 3 if paths else 1
    per_lag = 3 + 2 * (n_paths - 1) + (1 if gradient else 0)

    def check(T: int, B: int, n: int, m: int) -> None:
        n_sv = m if n_singular is None else max(1, min(int(n_singular), m))
        cost = estimate_cost(
            T,
            B,
            m,
            n,
            chains=n_paths,
            per_lag_quantities=per_lag,
            singular_values=len(set(singular_lags)) * B * n_sv,
        )
        check_cost(cost, force)

    su = _setup(cell, params, inputs, s0, backend, dtype, check)
    nthreads = blas_threads(su.m, threads)
    with compute_region(nthreads):
        result = _analyze(su, backend, paths, singular_lags, n_singular, lyapunov, gradient, hidden)
    result.meta["threads"] = nthreads
    result.meta["seconds"] = time.perf_counter() - started
    return result


def _analyze(
    su: _Setup,
    backend: str,
    paths: bool,
    singular_lags: Sequence[int],
    n_singular: int | None,
    lyapunov: int,
    gradient: str | None,
    hidden: bool,
) -> AnalysisResult:
    T = su.steps
    lags = sorted({int(k) for k in singular_lags})
    if lags and (lags[0] < 1 or lags[-1] > T):
        raise UsageError(f"singular_lags must lie in 1..{T}; got {lags}")
    n_sv = su.m if n_singular is None else max(1, min(int(n_singular), su.m))
    chunk = _chunk_steps(su, 0)  # products are not stored: only the Jacobian factors count
    chains = {"full": _Chain(su, su.kernels, T, hidden, chunk)}
    zero_paths = []
    if paths:
        from .symbolic.jacobian import state_jacobian

        jac = state_jacobian(su.cell)
        for name, part in (("additive", jac.additive()), ("multiplicative", jac.multiplicative())):
            if part.is_zero():
                zero_paths.append(name)
            else:
                chains[name] = _Chain(su, compile_cell(su.cell, backend, name), T, False, chunk)
    # The rollout's unit values are kept when they fit (no second pass over the steps);
    # otherwise each chunk is recomputed from its checkpoint (memory constant in T).
    item = np.dtype(su.dtype).itemsize
    keep = T * su.batch * su.n * len(su.kernels.layout.needed) * item <= ROLLOUT_BUDGET
    checkpoints, s_final, kept = _forward(su, chunk, keep)
    grad = _VectorChain(su, T, gradient) if gradient else None
    lyap = _Lyapunov(su, lyapunov) if lyapunov else None
    sv: dict[str, dict[int, np.ndarray]] = {name: {} for name in chains}
    k0 = 0
    for c in range(len(checkpoints) - 1, -1, -1):
        t0 = c * chunk
        t1 = min(T, t0 + chunk)
        V = kept[c] if kept is not None else _chunk_values(su, checkpoints[c], t0, t1)
        shape = (t1 - t0, su.batch, su.n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            F = su.kernels.factors(V, su.q, shape)  # NaN/inf are found and reported next
        _check_factors(su, F, t0)
        for name, ch in chains.items():
            Fp = F if name == "full" else _path_factors(su.kernels, ch.kern, V, su.q, shape)
            ch.run_chunk(su, Fp, k0, set(lags) if name == "full" else set(), sv[name], n_sv)
        if grad is not None or lyap is not None:
            for j in range(t1 - t0):
                Ft = tuple(f[t1 - t0 - 1 - j] for f in F)
                if grad is not None:
                    grad.step(su, Ft, k0 + j + 1)
                if lyap is not None:
                    lyap.step(su, Ft)
        k0 += t1 - t0
    full = chains["full"]
    spec_h = full.spec_h if full.spec_h is not None else full.spec
    n = su.n
    spectrals = [sp for ch in chains.values() for sp in ch.spectrals()]
    meta: dict[str, Any] = {
        "backend": backend,
        "dtype": np.dtype(su.dtype).name,
        "gradflow_version": __version__,
        "chunk_steps": chunk,
        "spectral": {
            "method": "block Krylov Rayleigh-Ritz on the chain's own product at every lag, "
            "started from the previous lag's block (pushed once more) and a fresh random "
            "vector; every value certified: a Frobenius bracket, a residual bound with a "
            "proven gap, a basis spanning the space, a Cholesky test of u^2 I - P^T P, or an "
            "exact eigenvalue of P^T P; Kato-Temple and Aitken estimates only guide",
            "rtol": max(SPECTRAL_RTOL, 100 * float(np.finfo(su.dtype).eps)),
            "krylov_depths": full.spectral.depth,
            "certificates": {k: sum(sp.counts[k] for sp in spectrals) for k in CERTIFICATES},
            "worst_relative_gap": max(sp.worst_gap for sp in spectrals),
        },
    }
    if zero_paths:
        meta["zero_paths"] = zero_paths
    result = AnalysisResult(
        cell=su.cell.name,
        hidden_size=n,
        input_size=su.d,
        steps=T,
        batch=su.batch,
        log10_spectral_norm=full.spec,
        log10_frobenius_norm=full.frob,
        log10_spectral_norm_hidden=spec_h,
        final_hidden=to_numpy(s_final[:, :n]).astype(np.float64),
        paths={
            name: {"log10_spectral_norm": ch.spec, "log10_frobenius_norm": ch.frob}
            for name, ch in chains.items()
            if name != "full"
        },
        log10_singular_values=sv["full"],
        lyapunov_exponents=(-np.sort(-lyap.total / T, axis=-1) if lyap is not None else None),
        log10_gradient_norm=grad.out if grad is not None else None,
        gradient_loss=gradient,
        meta=meta,
    )
    return result

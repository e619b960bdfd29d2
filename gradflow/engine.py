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
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from . import compiled as fast
from ._version import __version__
from .backend import resolve_dtype, to_numpy
from .cells import Cell, get_cell
from .chains import Chain, Lyapunov, Setup, VectorChain
from .codegen import Kernels, compile_cell
from .cost import check_cost, estimate_cost
from .diagonal import analyze_structured, structure_meta, structured_plan
from .errors import FactorError, InputsError, NumericalError, UsageError, WeightsError
from .prodsvd import ProductSpectrum, StreamedProductSVD, stack_spectra
from .results import AnalysisResult
from .spectral import CERTIFICATES, SPECTRAL_RTOL, compiled_wanted
from .threads import blas_threads, compute_region

#: Bytes of chunk buffers (Jacobian factors) the backward pass may hold.
MEMORY_BUDGET = 96 * 2**20
#: Bytes of the rollout's unit values kept in memory instead of recomputed chunk by chunk.
ROLLOUT_BUDGET = 64 * 2**20


def resolve(cell: Cell | str) -> Cell:
    """The boundary: a catalogue name becomes its :class:`Cell` here, once; below this point
    the engine works on the Cell only. Anything else is refused with one line."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str):
        return get_cell(cell)
    raise UsageError(
        f"the engine takes a Cell or a catalogue name, not {type(cell).__name__}; "
        "see gradflow.get_cell and gradflow.define_cell"
    )


def _setup(
    cell: Cell | str,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any,
    backend: str,
    dtype: str,
    before_compile: Callable[[int, int, int, int], None] | None = None,
    draws: int | None = None,
    spectral_per_draw: bool = False,
) -> Setup:
    """Validate everything, call ``before_compile(T, B, n, m)`` (the cost check), then compile
    the kernels and pack the parameters. Inputs already in the working dtype and C order are
    used as they are, not copied. ``draws``: grouped weights (see :func:`analyze`)."""
    c = resolve(cell)
    if draws is not None:
        if backend != "numpy":
            raise UsageError(f"grouped weights (draws={draws}) need the numpy backend")
        if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
            raise UsageError(f"draws must be a positive integer, got {draws!r}")
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
    if draws is not None and B % draws:
        raise InputsError(
            f"inputs have {B} sequences, not a multiple of draws = {draws} (sequence b uses "
            f"draw b // (B / draws))"
        )
    if not np.isfinite(x).all():
        t, b = np.argwhere(~np.isfinite(x))[0][:2]
        raise InputsError(f"inputs contain NaN or inf (first at step {t + 1}, sequence {b})")
    lead: tuple[int, ...] = ()
    if draws is not None:
        lead = (int(draws),)
        for p in c.parameters:
            shape = np.shape(params[p.name])
            if shape[:1] != lead:
                raise WeightsError(
                    f"parameter {p.name!r} has shape {shape}; with draws={draws} every "
                    f"parameter needs a leading axis of {draws} (one set per draw)"
                )
    one = {p.name: np.asarray(params[p.name])[0] for p in c.parameters} if lead else params
    n = None
    psize = c.size_values(one)[1] if c.sizes else None  # a second size: the projection
    for p in c.parameters:
        a = np.asarray(params[p.name])
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise WeightsError(f"parameter {p.name!r} has dtype {a.dtype}; expected float")
        if n is None:
            n = a.shape[len(lead)] if a.ndim > len(lead) else 0
        expected = lead + p.numeric_shape(n, d, psize)
        if a.shape != expected:
            raise WeightsError(
                f"parameter {p.name!r} has shape {a.shape}; expected {expected} "
                f"(hidden size {n}, input size {d})"
            )
        if not np.isfinite(a).all():
            raise WeightsError(f"parameter {p.name!r} contains NaN or inf")
    if n is None or n < 1:
        raise WeightsError("hidden size must be at least 1")
    m = c.state_size(n, psize)
    if before_compile is not None:
        before_compile(T, B, n, m)
    kern = compile_cell(c, backend)
    xp = kern.xp
    if draws is None:
        q = kern.pack(params, dt)
    else:
        q, kern = kern.pack_draws(params, B, dt), kern.grouped()
    if s0 is None:
        s = xp.zeros((B, m), dtype=dt)
    else:
        s0a: np.ndarray = np.asarray(s0, dtype=dt)
        if s0a.shape != (B, m):
            raise InputsError(f"initial state must have shape (B, m) = {(B, m)}; got {s0a.shape}")
        s = xp.asarray(s0a)
    xs = xp.asarray(np.ascontiguousarray(x, dtype=dt))  # no copy when already in shape
    return Setup(c, kern, xp, q, xs, s, T, B, n, d, m, dt, psize, draws, spectral_per_draw)


def _chunk_steps(su: Setup, extra_per_lag: int) -> int:
    per_step = su.batch * su.n * (len(su.kernels.layout.needed) + len(su.kernels.layout.diags))
    per_step += su.batch * len(su.kernels.layout.affine) * su.n + extra_per_lag
    k = MEMORY_BUDGET // max(1, 8 * per_step)
    return int(max(1, min(256, k)))


def _check_finite(su: Setup, s: Any, t: int) -> None:
    xp = su.xp
    if not bool(xp.isfinite(s).all()):
        b = int(np.argwhere(~np.isfinite(to_numpy(s)))[0][0])
        raise NumericalError(
            f"the rollout of {su.cell.name!r} produced NaN or inf at step {t}, sequence {b}: "
            "reduce the weight scale or the inputs"
        )


def _check_factors(su: Setup, F: Sequence[Any], t0: int) -> None:
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
    su: Setup, chunk: int, keep: bool = False
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


def _chunk_values(su: Setup, s: Any, t0: int, t1: int) -> list[Any]:
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
    cell: Cell | str,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any = None,
    backend: str = "numpy",
    dtype: str = "float64",
    threads: int | None = None,
    draws: int | None = None,
) -> np.ndarray:
    """All states ``s_0..s_T`` as a ``(T + 1, B, m)`` NumPy array (``s_0`` zero by default);
    ``draws``: grouped weights, as for :func:`analyze`."""
    su = _setup(cell, params, inputs, s0, backend, dtype, draws=draws)
    with compute_region(blas_threads(su.m, threads)):
        states, s_final, _ = _forward(su, 1)  # a checkpoint at every step: all of s_0..s_{T-1}
        return to_numpy(su.xp.stack([*states, s_final]))


def state_jacobians(
    cell: Cell | str,
    params: Mapping[str, Any],
    inputs: Any,
    s0: Any = None,
    backend: str = "numpy",
    path: str = "full",
    threads: int | None = None,
    draws: int | None = None,
) -> np.ndarray:
    """The materialised ``J_t = ds_t/ds_{t-1}`` for ``t = 1..T``: shape ``(T, B, m, m)``;
    ``draws``: grouped weights, as for :func:`analyze`."""
    su = _setup(cell, params, inputs, s0, backend, "float64", draws=draws)
    with compute_region(blas_threads(su.m, threads)):
        return _state_jacobians(su, backend, path)


def _state_jacobians(su: Setup, backend: str, path: str) -> np.ndarray:
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


def analyze(
    cell: Cell | str,
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
    structure: str = "auto",
    compiled: bool | None = None,
    draws: int | None = None,
    spectral_per_draw: bool = False,
) -> AnalysisResult:
    """Exact log10 norms of ``ds_T/ds_{T-k}`` for every lag ``k = 0..T``.

    Norms are carried in the log domain and computed without overflow or underflow: a
    product of norm ``1e-1000`` is reported as ``-1000``. A product that is exactly zero
    (e.g. every ReLU unit dead at some step) is reported as exactly zero, ``log10 = -inf``
    (``null`` in JSON), from the lag where it becomes zero on; nothing is NaN. Every spectral
    norm carries a certificate (:mod:`gradflow.spectral`); ``meta["spectral"]`` counts them.

    Args:
        cell: a :class:`~gradflow.cells.Cell`, or a catalogue name (resolved once, here).
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
        structure: ``"auto"`` takes the exact ``O(m b^2)`` path of :mod:`gradflow.diagonal`
            when the derivation shows a diagonal or block-diagonal ``J_t`` (NumPy backend);
            ``"dense"`` forces the dense chain. ``meta["structure"]`` says which ran.
        compiled: the compiled backend (:mod:`gradflow.compiled`, extra ``fast``): ``None``
            uses it where the case qualifies, ``False`` forces the NumPy reference path,
            ``True`` requires it.
        draws: grouped weights, several weight draws in one call: every parameter array has
            a leading axis ``draws`` (shape ``(D, *shape)``, draw ``g`` in ``params[name][g]``)
            and the ``B`` sequences of ``inputs`` (and ``s0``) form ``D`` groups of ``B / D``
            consecutive sequences, sequence ``b`` taking draw ``b // (B / D)``. Every result
            array is the one the ``D`` separate calls (draw ``g`` with sequences
            ``g B/D .. (g+1) B/D - 1``) give, in that order, at the per-step overhead of one
            call (:meth:`~gradflow.codegen.Kernels.pack_draws`): bit for bit, but for the
            spectral norms, certified as ever and equal to the separate calls' within the
            certified tolerance (``meta["spectral"]["rtol"]``: the estimator works over the
            whole batch). NumPy backend only; the compiled backend is not used
            (``compiled=True`` is refused). ``None`` (default): one parameter set shared by
            every sequence.
        spectral_per_draw: with ``draws``, one spectral-norm estimator per draw, so that the
            spectral norms and their certificates too are the separate calls' bit for bit
            (:class:`~gradflow.chains.GroupSpectral`; slower: each estimator pays its own
            per-step cost). Structured cells' spectral norms are exact either way.

    Returns:
        An :class:`~gradflow.results.AnalysisResult`.

    Raises:
        UsageError: not a Cell, bad options, or a cost above the limits without ``force``.
        CellError: an unknown catalogue name.
        WeightsError: missing, misshapen or non-finite parameters.
        InputsError: inputs of the wrong rank or with NaN/inf.
        NumericalError: the rollout, a Jacobian or the product is NaN or inf (with the step
            and sequence).
    """
    started = time.perf_counter()
    if draws is not None and compiled:
        raise UsageError(f"the compiled backend takes one shared weight set, not draws={draws}")
    plan = structured_plan(resolve(cell), structure, backend)  # None: the dense chain below
    if plan is not None:
        setup = _setup if draws is None else partial(_setup, draws=draws)  # no estimator
        res = analyze_structured(
            plan, setup, resolve(cell), params, inputs, s0=s0, dtype=dtype, paths=paths,
            singular_lags=singular_lags, n_singular=n_singular, lyapunov=lyapunov,
            gradient=gradient, hidden=hidden, threads=threads, force=force, started=started,
        )  # fmt: skip
        return replace(res, meta=_draws_meta(_krylov_kernel_meta(res.meta), draws))
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

    su = _setup(cell, params, inputs, s0, backend, dtype, check, draws, spectral_per_draw)
    nthreads = blas_threads(su.m, threads)
    with compute_region(nthreads):
        if draws is None and fast.qualifies(
            su, compiled, (paths, singular_lags, lyapunov, gradient)
        ):
            result = fast.analyze(su, hidden, threads, _forward, _chunk_values, _check_factors)
        else:
            args = (paths, singular_lags, n_singular, lyapunov, gradient, hidden, compiled)
            result = _analyze(su, backend, *args)
    # the thread count is configuration (data); timings are volatile and kept apart (run.json)
    return replace(
        result,
        meta=_draws_meta(
            {
                **_krylov_kernel_meta(result.meta),
                "threads": nthreads,
                "structure": structure_meta(su.cell, su.m, "dense"),
            },
            draws,
        ),
        run={"seconds": time.perf_counter() - started},
    )


def _draws_meta(meta: dict[str, Any], draws: int | None) -> dict[str, Any]:
    """``meta`` with ``meta["draws"]`` for a grouped call (nothing added otherwise)."""
    return meta if draws is None else {**meta, "draws": int(draws)}


def split_draws(result: AnalysisResult, draws: int) -> list[AnalysisResult]:
    """The ``draws`` results of a grouped call (:func:`analyze` with ``draws``), one per draw,
    each over its ``B / draws`` sequences: what the separate call of that draw returns. Each
    part's ``meta`` is the call's (its certificate counts cover every draw) with
    ``meta["draw"]`` added; ``run`` too is the whole call's.

    Raises:
        UsageError: ``draws`` does not divide the result's batch.
    """
    B = result.batch
    if draws < 1 or B % draws:
        raise UsageError(f"cannot split a batch of {B} sequences into {draws} draws")
    g = B // draws

    def cut(a: Any, axis: int, i: int) -> Any:
        if a is None:
            return None
        return np.take(a, np.arange(i * g, (i + 1) * g), axis=axis)

    parts = []
    for i in range(draws):
        cert = result.singular_certified
        parts.append(
            replace(
                result,
                batch=g,
                log10_spectral_norm=cut(result.log10_spectral_norm, 1, i),
                log10_frobenius_norm=cut(result.log10_frobenius_norm, 1, i),
                log10_spectral_norm_hidden=cut(result.log10_spectral_norm_hidden, 1, i),
                final_hidden=cut(result.final_hidden, 0, i),
                paths={
                    p: {k: cut(v, 1, i) for k, v in chain.items()}
                    for p, chain in result.paths.items()
                },
                log10_singular_values={
                    k: cut(v, 0, i) for k, v in result.log10_singular_values.items()
                },
                singular_certified=(
                    {k: cut(v, 0, i) for k, v in cert.items()} if cert is not None else None
                ),
                lyapunov_exponents=cut(result.lyapunov_exponents, 0, i),
                log10_gradient_norm=cut(result.log10_gradient_norm, 1, i),
                meta={**result.meta, "draw": i},
            )
        )
    return parts


def _krylov_kernel_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with ``meta["spectral"]["krylov_kernel"]`` set on every path: True only where
    the NumPy chain's spectral norms took the compiled Krylov kernel; the compiled backend
    (its own certificate kernel) and the structured paths (no Krylov iteration) report False."""
    spec = meta.get("spectral")
    if not isinstance(spec, dict) or "krylov_kernel" in spec:
        return dict(meta)
    return {**meta, "spectral": {**spec, "krylov_kernel": False}}


def _analyze(
    su: Setup,
    backend: str,
    paths: bool,
    singular_lags: Sequence[int],
    n_singular: int | None,
    lyapunov: int,
    gradient: str | None,
    hidden: bool,
    compiled: bool | None = None,
) -> AnalysisResult:
    T = su.steps
    lags = sorted({int(k) for k in singular_lags})
    if lags and (lags[0] < 1 or lags[-1] > T):
        raise UsageError(f"singular_lags must lie in 1..{T}; got {lags}")
    n_sv = su.m if n_singular is None else max(1, min(int(n_singular), su.m))
    chunk = _chunk_steps(su, 0)  # products are not stored: only the Jacobian factors count
    # one estimator per draw decides as the draw's separate call would (its own batch)
    per_draw = su.draws is not None and su.spectral_per_draw
    batch = su.batch // su.draws if per_draw and su.draws else su.batch
    kernel = compiled_wanted(su.xp, su.dtype, su.m, T * batch, compiled)
    chains = {"full": Chain(su, su.kernels, T, hidden, chunk, kernel)}
    zero_paths = []
    if paths:
        from .symbolic.jacobian import state_jacobian

        jac = state_jacobian(su.cell)
        for name, part in (("additive", jac.additive()), ("multiplicative", jac.multiplicative())):
            if part.is_zero():
                zero_paths.append(name)
            else:
                kern = compile_cell(su.cell, backend, name)
                chains[name] = Chain(su, kern, T, False, chunk, kernel)
    # The rollout's unit values are kept when they fit (no second pass over the steps);
    # otherwise each chunk is recomputed from its checkpoint (memory constant in T).
    item = np.dtype(su.dtype).itemsize
    keep = T * su.batch * su.n * len(su.kernels.layout.needed) * item <= ROLLOUT_BUDGET
    checkpoints, s_final, kept = _forward(su, chunk, keep)
    grad = VectorChain(su, T, gradient) if gradient else None
    lyap = Lyapunov(su, lyapunov) if lyapunov else None
    # singular values: the certified product SVD fed each chunk's Jacobians (gradflow.prodsvd)
    psvd = StreamedProductSVD(su.m, su.batch, lags) if lags else None
    spectra: list[ProductSpectrum] = []
    k0 = 0
    for c in range(len(checkpoints) - 1, -1, -1):
        t0 = c * chunk
        t1 = min(T, t0 + chunk)
        V = kept[c] if kept is not None else _chunk_values(su, checkpoints[c], t0, t1)
        shape = (t1 - t0, su.batch, su.n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                F = su.kernels.factors(V, su.q, shape)  # NaN/inf are found and reported next
            except FactorError as err:  # the kernel knows the factor, the engine the step
                raise err.at_step(su.cell.name, t0) from None
        _check_factors(su, F, t0)
        for name, ch in chains.items():
            Fp = F if name == "full" else _path_factors(su.kernels, ch.kern, V, su.q, shape)
            ch.run_chunk(su, Fp, k0, t1 - t0)
        if psvd is not None and not psvd.done:  # steps t1 down to the largest lag's
            lo = max(0, t1 - t0 - (lags[-1] - k0))
            per = max(1, MEMORY_BUDGET // (8 * su.batch * su.m * su.m))  # Jacobians in pieces
            for b in range(t1 - t0, lo, -per):
                a = max(lo, b - per)
                Jc = to_numpy(su.kernels.jacobian([f[a:b] for f in F], su.q, (b - a, su.batch)))
                for i in range(b - a - 1, -1, -1):
                    if (spectrum := psvd.push(Jc[i])) is not None:
                        spectra.append(spectrum)
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
            # True: the compiled Krylov kernel (gradflow.spectral_kernels); False: NumPy
            "krylov_kernel": bool(kernel),
            "certificates": {k: sum(sp.counts[k] for sp in spectrals) for k in CERTIFICATES},
            "worst_relative_gap": max(sp.worst_gap for sp in spectrals),
        },
    }
    if zero_paths:
        meta["zero_paths"] = zero_paths
    sv: dict[int, np.ndarray] = {}
    sv_cert = None
    if spectra:
        ps = stack_spectra(spectra)
        sv = {k: ps.log10_singular_values[i][:, :n_sv] for i, k in enumerate(ps.lags)}
        sv_cert = {k: ps.certified[i][:, :n_sv] for i, k in enumerate(ps.lags)}
        meta["singular_values"] = {"method": ps.method, "tol": ps.tol}
    result = AnalysisResult(
        cell=su.cell.name,
        hidden_size=n,
        input_size=su.d,
        steps=T,
        batch=su.batch,
        log10_spectral_norm=full.spec,
        log10_frobenius_norm=full.frob,
        log10_spectral_norm_hidden=spec_h,
        final_hidden=to_numpy(s_final[:, : su.h_size]).astype(np.float64),
        paths={
            name: {"log10_spectral_norm": ch.spec, "log10_frobenius_norm": ch.frob}
            for name, ch in chains.items()
            if name != "full"
        },
        log10_singular_values=sv,
        singular_certified=sv_cert,
        lyapunov_exponents=(-np.sort(-lyap.total / T, axis=-1) if lyap is not None else None),
        log10_gradient_norm=grad.out if grad is not None else None,
        gradient_loss=gradient,
        meta=meta,
    )
    return result

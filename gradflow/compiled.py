r"""The optional compiled backend (extra ``fast``: numba) for small hidden sizes.

At small ``n`` the floor's step is a few microseconds per sequence and NumPy's per-call cost
(a dozen calls per lag, LAPACK on tiny matrices) dominates ``analyze`` (issue 14: 5-9x the floor
at n = 32). Here the whole backward chain of a chunk of lags runs in one compiled call
(:func:`gradflow.compiled_kernels.chain_chunk`), the sequences of the batch spread over numba's
threads: the product, its renormalisation and log scale, the Frobenius norms and a certified
spectral norm at every lag (and of the h block), with the certificate kinds of
:mod:`gradflow.spectral` (bracket, Cholesky, exact) counted in ``meta["spectral"]`` the same way.

Nothing numeric is written by hand: the rollout and the Jacobian factors of each chunk come
from one numba kernel per cell that :mod:`gradflow.compiled_codegen` prints from the SymPy
derivation (the same expressions as :mod:`gradflow.codegen`'s NumPy kernels, which remain the
rollout for a cell the scalar printer cannot express, and name a non-finite factor), and the
terms ``diag(d) W diag(d')`` and block structure that the compiled product applies without
forming ``J_t`` (a column block of diagonal blocks is a scaling) are read from the same
derivation (:func:`gradflow.symbolic.jacobian.state_jacobian`). The factors of the whole
rollout are kept when they fit in ``ROLLOUT_BUDGET``, else recomputed chunk by chunk from
checkpoints.

**When it is used** (:func:`qualifies`): numba imports, the backend is ``numpy``, the dtype
``float64``, the hidden size ``n <= MAX_N``, only the default quantities are asked for (no
``paths``, ``singular_lags``, ``lyapunov`` or ``gradient``), the cell's Jacobian terms hold at
most one weight matrix each, and there is enough work to repay loading numba: at least
``MIN_STEPS`` sequence-steps ``T B`` (loading it and the cached kernels costs about 0.6 s of CPU
once per process; the compiled chain saves about 8-30 microseconds per sequence-step at
n = 32). The rule reads the inputs only, never the process's state (such as numba being loaded
already), so that a sweep's points come out the same inline and in a process pool.
``analyze(compiled=False)`` or ``GRADFLOW_COMPILED=0`` forces the NumPy reference path;
``compiled=True`` refuses, with one line, a case that does not qualify. The result's
``meta["compiled"]`` names the kernels, the threads and the rollout (``compiled`` or
``numpy``) when this path ran. The numba functions
are compiled once per machine and cached on disk (numba's ``cache=True``); this module imports
numba only when it runs.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ._version import __version__
from .backend import to_numpy
from .cells import Cell
from .chains import Setup
from .codegen import compile_cell
from .compiled_codegen import Rollout
from .compiled_codegen import rollout as compiled_rollout
from .errors import FactorError, NumericalError, UsageError
from .results import AnalysisResult
from .spectral import BLOCK, CERTIFICATES, SPECTRAL_RTOL
from .symbolic.jacobian import state_jacobian
from .threads import batch_threads, compute_region

#: Largest hidden size the compiled backend takes by default (above, NumPy's per-call cost no
#: longer dominates and the reference path's BLAS-bound kernels are as fast).
MAX_N = 64
#: Fewest sequence-steps ``T B`` for which the compiled backend is loaded by default.
MIN_STEPS = 10_000
#: The environment variable that, set to 0, forces the NumPy reference path.
ENV = "GRADFLOW_COMPILED"
#: Bytes of Jacobian factors per chunk.
CHUNK_BUDGET = 16 * 2**20
#: Bytes of the rollout's Jacobian factors (unit values on the NumPy rollout) kept in memory
#: instead of recomputed chunk by chunk.
ROLLOUT_BUDGET = 64 * 2**20
#: Subspace iterations on ``L = P P^T`` per lag, each tried with the residual certificate,
#: before the refinement on ``P^T P`` and a Cholesky certificate (issue 14, n = 32, T = 1000,
#: B = 16: the warm block's bracket closes at once on 84-91% of the lags; of the rest, the
#: early lags of a full-rank product, the residual bound certifies 70-85% within four
#: iterations, each two thin products, where forming ``P^T P`` and factorising cost a floor
#: step or more: the chain 10-20% faster than with none).
MAX_ITERATIONS = 4

_LOCK = threading.Lock()


def available() -> bool:
    """Whether numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def qualifies(su: Setup, compiled: bool | None, extras: tuple[Any, ...] = ()) -> bool:
    """Whether ``analyze`` takes the compiled path (module docstring); ``extras`` are the
    further quantities asked for (``paths``, ``singular_lags``, ``lyapunov``, ``gradient``),
    none of which it computes. ``compiled=True`` raises :class:`UsageError` where it cannot."""
    if compiled is False:
        return False
    if compiled is None and os.environ.get(ENV, "").strip() == "0":
        return False
    why = None
    if su.xp is not np:
        why = "the numpy backend"
    elif np.dtype(su.dtype) != np.float64:
        why = "float64"
    elif any(len(e) if isinstance(e, Sequence) else e for e in extras):
        why = "the default quantities (no paths, singular_lags, lyapunov or gradient)"
    elif compiled is None and su.n > MAX_N:
        why = f"hidden size n <= {MAX_N}"
    elif compiled is None and su.steps * su.batch < MIN_STEPS:
        why = f"T B >= {MIN_STEPS} sequence-steps"
    elif plan(su.cell) is None:
        why = "Jacobian terms with at most one weight matrix each"
    elif not available():
        why = "numba: pip install 'gradflow[fast]'"
    if why is not None and compiled:
        raise UsageError(f"the compiled backend needs {why}")
    return why is None


@dataclass(frozen=True)
class Plan:
    """The compiled chain's view of a cell's derivation (:func:`plan`)."""

    dense: np.ndarray  # (ns,) int8: column blocks holding a weight matrix
    diag: np.ndarray  # (ns, ns) int8: non-zero blocks (diagonal in the other columns)
    terms: np.ndarray  # (terms, 5) int64: block row, column, weight, leading, trailing factor
    weights: tuple[str, ...]  # the weight of index k in ``terms``


@lru_cache(maxsize=64)
def plan(cell: Cell) -> Plan | None:
    """The derivation's terms as a table for :func:`gradflow.compiled_kernels._apply`, and
    its block structure (a column block without weights is a scaling); ``None`` where a term
    chains several weight matrices (e.g. the reset-before GRU): the NumPy path runs those."""
    jac = state_jacobian(cell)
    layout = compile_cell(cell).layout
    ns = len(jac.blocks)
    weights: list[str] = []
    rows = []

    def factor(dg: Any) -> int:
        return -1 if dg == 1 else layout.diags.index(dg)

    for i in range(ns):
        for j in range(ns):
            for t in jac.blocks[i][j]:
                if len(t.weights) > 1:
                    return None
                w = -1
                if t.weights:
                    if t.weights[0] not in weights:
                        weights.append(t.weights[0])
                    w = weights.index(t.weights[0])
                rows.append((i, j, w, factor(t.diags[0]), factor(t.diags[1]) if w >= 0 else -1))
    dense = [any(t.weights for i in range(ns) for t in jac.blocks[i][j]) for j in range(ns)]
    diag = [[bool(jac.blocks[i][j]) for j in range(ns)] for i in range(ns)]
    return Plan(
        dense=np.array(dense, dtype=np.int8),
        diag=np.array(diag, dtype=np.int8),
        terms=np.array(rows, dtype=np.int64).reshape(-1, 5),
        weights=tuple(weights),
    )


def _rollout_error(su: Setup, s: np.ndarray, t: int) -> NumericalError:
    b = int(np.argwhere(~np.isfinite(s))[0][0])
    return NumericalError(
        f"the rollout of {su.cell.name!r} produced NaN or inf at step {t}, sequence {b}: "
        "reduce the weight scale or the inputs"
    )


def _run(su: Setup, ro: Rollout, s: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, int]:
    """Steps ``t0 + 1 .. t1`` from ``s`` (updated in place) by the compiled rollout: their
    factors ``(factors, K, B, n)`` and its status (:mod:`gradflow.compiled_codegen`)."""
    u = np.ascontiguousarray(su.kernels.input_projection(su.inputs[t0:t1], su.q))
    F = np.empty((max(1, ro.factors), t1 - t0, su.batch, su.n))
    if not ro.factors:
        F[0] = 0.0
    status = int(ro.run(s, u, F, su.n, *(su.q[k] for k in ro.args)))
    if status > 0:
        raise _rollout_error(su, s, t0 + status)
    return F, status


def _forward(
    su: Setup, ro: Rollout, chunk: int, keep: bool
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray] | None] | None:
    """The compiled rollout: the state at every chunk boundary, ``s_T`` and, with ``keep``,
    every chunk's factors; ``None`` where a factor is not finite."""
    s = np.array(su.s0, dtype=np.float64, order="C")
    checkpoints = []
    kept: list[np.ndarray] | None = [] if keep else None
    for t0 in range(0, su.steps, chunk):
        checkpoints.append(s.copy())
        F, status = _run(su, ro, s, t0, min(su.steps, t0 + chunk))
        if status < 0:
            return None
        if kept is not None:
            kept.append(F)
    return checkpoints, s, kept


def _factors(su: Setup, ro: Rollout, s: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """The factors of steps ``t0 + 1 .. t1``, recomputed from the checkpoint ``s``."""
    return _run(su, ro, s.copy(), t0, t1)[0]


def _numpy_factors(
    su: Setup, V: Any, t0: int, t1: int, check_factors: Callable[..., None]
) -> np.ndarray:
    """The factors of steps ``t0 + 1 .. t1`` by the code generator's NumPy kernels."""
    shape = (t1 - t0, su.batch, su.n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        try:
            F = su.kernels.factors(V, su.q, shape)
        except FactorError as err:
            raise err.at_step(su.cell.name, t0) from None
    check_factors(su, F, t0)
    return np.stack(F) if F else np.zeros((1, *shape))


def analyze(
    su: Setup,
    hidden: bool,
    threads: int | None,
    forward: Callable[..., Any],
    chunk_values: Callable[..., Any],
    check_factors: Callable[..., None],
) -> AnalysisResult:
    """``analyze`` of :mod:`gradflow.engine` on the compiled path; the engine hands in its
    rollout (``forward``, ``chunk_values``) and its factor check."""
    import numba

    from . import compiled_kernels as ck

    importlib.import_module("scipy.linalg.cython_blas")  # the BLAS numba's np.dot calls

    T, B, n, m = su.steps, su.batch, su.n, su.m
    ro = compiled_rollout(su.cell)
    nf = max(1, ro.factors if ro is not None else len(su.kernels.layout.diags))
    chunk = int(max(1, min(256, CHUNK_BUDGET // (8 * B * n * nf))))
    done = _forward(su, ro, chunk, T * B * n * nf * 8 <= ROLLOUT_BUDGET) if ro else None
    if done is not None:
        checkpoints, s_final, kept = done
    else:  # no compiled rollout, or a factor is not finite: the NumPy kernels name it
        ro = None
        keep = T * B * n * len(su.kernels.layout.needed) * 8 <= ROLLOUT_BUDGET
        checkpoints, s_final, kept = forward(su, chunk, keep)
    pl = plan(su.cell)
    assert pl is not None  # qualifies() checked
    Ws = np.stack([np.asarray(su.q[f"W:{w}"]) for w in pl.weights] or [np.zeros((n, n))])
    if Ws.shape[1:] != (n, n):
        raise UsageError(f"the compiled backend needs n x n state weights; got {Ws.shape[1:]}")
    WsT = np.ascontiguousarray(Ws.transpose(0, 2, 1))
    hidden = hidden and len(su.cell.state) > 1
    rng = np.random.default_rng(20130101)

    def block(rows: int) -> np.ndarray:
        u0, _ = np.linalg.qr(rng.standard_normal((rows, min(BLOCK, rows))))
        return np.broadcast_to(u0, (B, *u0.shape)).copy()  # writable, also for B = 1

    P = np.broadcast_to(np.eye(m), (B, m, m)).copy()  # the chain carries P^T
    U, Uh = block(m), block(n) if hidden else np.zeros((B, 1, 1))
    frob = np.zeros((T + 1, B))
    spec = np.zeros((T + 1, B))
    spec_h = np.zeros((T + 1, B))
    frob[0] = 0.5 * np.log10(m)
    counts = np.zeros(len(CERTIFICATES), dtype=np.int64)
    worst, depth = 0.0, 0
    log_scale = np.zeros(B)
    workers = batch_threads(B, threads)
    saved = numba.get_num_threads()
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    numba.set_num_threads(min(workers, limit))
    # One BLAS thread in every BLAS library loaded now (SciPy's OpenBLAS, which the kernels
    # call from each of numba's threads); the libraries are looked up again only after an
    # import (threadpoolctl's full scan costs 1.7 ms per call, 0.04 of the floor at n = 32).
    blas = compute_region(1)
    blas.__enter__()
    # numba's default (workqueue) threading layer aborts the process when two Python threads
    # launch parallel kernels at once (e.g. a threaded Dask worker): one at a time.
    _LOCK.acquire()
    try:
        k0 = 0
        for c in range(len(checkpoints) - 1, -1, -1):
            t0, t1 = c * chunk, min(T, (c + 1) * chunk)
            K = t1 - t0
            if ro is not None:
                Fs = kept[c] if kept is not None else _factors(su, ro, checkpoints[c], t0, t1)
            else:
                V = kept[c] if kept is not None else chunk_values(su, checkpoints[c], t0, t1)
                Fs = _numpy_factors(su, V, t0, t1, check_factors)
            logs = np.empty((K, B))
            out = np.zeros((7, K, B))
            bad = np.empty(B, dtype=np.int64)
            ck.chain_chunk(Fs, WsT, pl.terms, P, U, Uh, n, pl.dense, hidden, SPECTRAL_RTOL,
                           MAX_ITERATIONS, logs, out, bad)  # fmt: skip
            if (bad >= 0).any():
                b = int(np.flatnonzero(bad >= 0)[0])
                raise NumericalError(
                    f"the Jacobian product of {su.cell.name!r} overflowed or became NaN at "
                    f"step {T - k0 - int(bad[b])}, sequence {b}: a Jacobian there is not "
                    "finite or beyond the floating-point range"
                )
            cum = log_scale[None, :] + np.cumsum(logs, axis=0)
            log_scale = cum[-1]
            frob[k0 + 1 : k0 + K + 1] = cum
            with np.errstate(divide="ignore", invalid="ignore"):
                spec[k0 + 1 : k0 + K + 1] = np.log10(out[0]) + cum
                spec_h[k0 + 1 : k0 + K + 1] = np.log10(out[3]) + cum
            for q in (2, 5) if hidden else (2,):
                counts += np.bincount(out[q].astype(np.int64).ravel(), minlength=len(counts))
            worst = max(worst, float(out[1].max()), float(out[4].max()))
            depth += int(out[6].sum())
            k0 += K
    finally:
        _LOCK.release()
        numba.set_num_threads(saved)
        blas.__exit__(None, None, None)
    if not hidden:
        spec_h = spec
    meta: dict[str, Any] = {
        "backend": "numpy",
        "dtype": "float64",
        "gradflow_version": __version__,
        "chunk_steps": chunk,
        "compiled": {
            "kernels": f"numba {numba.__version__}",
            "threads": workers,
            "rollout": "compiled" if ro is not None else "numpy",
        },
        "spectral": {
            "method": "compiled per-sequence chain (numba): a warm orthonormal block, "
            f"up to {MAX_ITERATIONS} subspace iterations on P P^T and {ck.REFINE} on P^T P per "
            "lag; every value certified: a Frobenius bracket, the residual bound with a proven "
            "gap, a Cholesky test of u^2 I - P^T P, or an exact eigenvalue of P^T P",
            "rtol": SPECTRAL_RTOL,
            "krylov_depths": depth,
            "certificates": {k: int(v) for k, v in zip(CERTIFICATES, counts, strict=True)},
            "worst_relative_gap": worst,
        },
    }
    return AnalysisResult(
        cell=su.cell.name,
        hidden_size=n,
        input_size=su.d,
        steps=T,
        batch=B,
        log10_spectral_norm=spec,
        log10_frobenius_norm=frob,
        log10_spectral_norm_hidden=spec_h,
        final_hidden=to_numpy(s_final[:, :n]).astype(np.float64),
        paths={},
        log10_singular_values={},
        lyapunov_exponents=None,
        log10_gradient_norm=None,
        gradient_loss=None,
        meta=meta,
    )

r"""Structure-aware analysis: cells whose state Jacobian is diagonal or block-diagonal
(issue 11 item 4; issue 14, "structure pays").

:func:`jacobian_structure` reads the shape of ``J_t = ds_t/ds_{t-1}`` from the symbolic
derivation (no numbers):

``diagonal``
    every term is weight-free and lies in a diagonal block ``ds_i/ds_i``: ``J_t = diag(D_t)``
    (``mingru``, ``minlstm``, ``rglru``, ``indrnn``).
``block_diagonal``
    every term is weight-free but some couple two state vectors (``dy/dz = diag(v)``): the
    state vectors interact unit by unit, so after the permutation that puts each unit's ``k``
    state entries next to each other, ``J_t`` is block-diagonal with ``n`` blocks of size
    ``b = k`` (a cell of 2x2 oscillator blocks, one per unit).
``dense``
    a weight matrix appears: the dense engine.

``state_free`` says whether ``J_t`` depends on the inputs only (no factor names the state or a
node computed from it): ``mingru``, ``minlstm``, ``rglru``, a linear RNN; the product of the
Jacobians is then the product of the gates, fixed by the inputs alone.

:func:`analyze_structured` is the structure-aware path of :func:`gradflow.engine.analyze`
(which dispatches to it; ``structure="dense"`` there forces the dense path). It returns the
same :class:`~gradflow.results.AnalysisResult`, every field computed exactly in ``O(m b^2)``
per step instead of ``O(m^3)`` (:mod:`gradflow.blockdiag`): spectral norms with the
certificate kinds ``diagonal`` and ``block`` in ``meta["spectral"]``, singular values and
Lyapunov exponents from the blocks' own small SVDs (the exponents are the exact finite-time
ones, ``ln sigma_i(ds_T/ds_0) / T``, where the dense path estimates them by QR), and a product
that is exactly zero is reported as such from the lag where it happens. ``meta["structure"]``
records ``pattern``, ``block``, ``state_free`` and the ``kernel`` that ran.

Memory: the state-free cells need no checkpoints (a chunk's Jacobian factors are computed
from its inputs alone, all its steps in one batched call), so memory is constant in ``T``;
the others keep a checkpoint state every ``~sqrt(T)`` steps.

References:
    [li2018indrnn] IndRNN (diagonal, state-dependent); [feng2024minrnn] minGRU, minLSTM
    (diagonal, input-only); [de2024griffin] RG-LRU (diagonal, input-only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from ._version import __version__
from .backend import to_numpy
from .blockdiag import BlockChain, DiagonalChain, GradientChain
from .cells.graph import Affine, Cell
from .chains import Setup
from .codegen import Kernels, compile_cell
from .cost import Cost, check_cost, estimate_cost
from .errors import FactorError, NumericalError, UsageError
from .results import AnalysisResult
from .spectral import CERTIFICATES
from .symbolic.jacobian import BlockJacobian, state_jacobian
from .threads import blas_threads, compute_region

#: The values of ``analyze(..., structure=...)``.
STRUCTURES = ("auto", "dense")
#: Elements of a chunk's ``(K, B, m)`` arrays the structured path may hold at once.
CHUNK_ELEMENTS = 2**21


@dataclass(frozen=True)
class JacobianStructure:
    """What the symbolic Jacobian of a cell says about its shape (see the module docstring).

    Attributes:
        pattern: ``"dense"``, ``"diagonal"`` or ``"block_diagonal"``.
        block: the block size ``b`` after the permutation (1 for diagonal); 0 for dense (the
            whole state is one block: ``m``, known once ``n`` is).
        state_free: no factor of ``J_t`` depends on the state (inputs and parameters only).
        state_dependent: the cell's vectors that depend on ``s_{t-1}``.
    """

    pattern: str
    block: int
    state_free: bool
    state_dependent: frozenset[str]

    @property
    def diagonal(self) -> bool:
        return self.pattern == "diagonal"

    @property
    def input_only(self) -> bool:
        """The same as :attr:`state_free` (the issue's word)."""
        return self.state_free

    @property
    def kernel(self) -> str:
        """The kernel the structured path uses: ``diagonal``, ``block`` or ``dense``."""
        return {"diagonal": "diagonal", "block_diagonal": "block"}.get(self.pattern, "dense")


def _state_dependent(cell: Cell) -> frozenset[str]:
    live = set(cell.state)
    for nd in cell.nodes:
        used = (
            {src for _, src in nd.terms}
            if isinstance(nd, Affine)
            else {str(s) for s in nd.expr.free_symbols}
        )
        if used & live:
            live.add(nd.name)
    return frozenset(live)


def _pattern(jac: BlockJacobian) -> tuple[str, int]:
    if any(t.weights for _, _, t in jac.terms()):
        return "dense", 0
    if all(i == j for i, j, _ in jac.terms()):
        return "diagonal", 1
    return "block_diagonal", len(jac.state)


@lru_cache(maxsize=256)
def jacobian_structure(cell: Cell) -> JacobianStructure:
    """Read the structure of ``ds_t/ds_{t-1}`` from the derivation (see the module docstring).

    ``state_free`` is decided on the factors as the kernels evaluate them (node values named
    by their nodes): a factor is state-dependent when it names the state or a node computed
    from it. Cached per cell (``analyze`` asks for every result's ``meta["structure"]``).
    """
    jac = state_jacobian(cell)
    pattern, block = _pattern(jac)
    live = _state_dependent(cell)
    used: set[str] = set()
    for _, _, t in jac.terms():
        for dg in t.diags:
            used |= {str(s) for s in dg.free_symbols}
    return JacobianStructure(pattern, block, not (used & live), live)


def structure_meta(cell: Cell, m: int, kernel: str) -> dict[str, Any]:
    """``meta["structure"]`` of a result: the pattern read from the derivation and the kernel
    that ran (``"dense"`` when the dense path was forced or the pattern is dense)."""
    s = jacobian_structure(cell)
    return {
        "pattern": s.pattern,
        "block": s.block if s.pattern != "dense" else m,
        "state_free": s.state_free,
        "kernel": kernel,
    }


def structured_plan(cell: Cell, structure: str, backend: str) -> JacobianStructure | None:
    """The structure the structured path will use for ``cell``, or None for the dense path
    (``structure="dense"``, a dense pattern, or a backend other than NumPy).

    Raises:
        UsageError: ``structure`` is not one of :data:`STRUCTURES`.
    """
    if structure not in STRUCTURES:
        raise UsageError(f"unknown structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    if structure == "dense" or backend != "numpy":
        return None
    s = jacobian_structure(cell)
    return s if s.pattern != "dense" else None


def _entries(jac: BlockJacobian, diags: tuple[sp.Expr, ...], b: int) -> list[list[int]]:
    """For each entry of the ``b x b`` unit block (row-major; for ``b = 1`` each state vector),
    the indices into the kernels' factors whose sum it is (``-1``: the constant 1)."""
    k = len(jac.state)
    pairs = [(i, i) for i in range(k)] if b == 1 else [(i, j) for i in range(k) for j in range(k)]
    out = []
    for i, j in pairs:
        idx = []
        for t in jac.blocks[i][j]:
            (dg,) = t.diags
            idx.append(-1 if dg == 1 else diags.index(dg))
        out.append(idx)
    return out


def _assemble(F: Sequence[Any], entries: list[list[int]], shape: tuple[int, ...], b: int) -> Any:
    """The chunk's Jacobians from the kernels' factors, in float64: ``(K, B, m)`` diagonals
    (``b = 1``, the state vectors side by side) or ``(K, B, n, b, b)`` unit blocks."""
    parts = []
    for idx in entries:
        if len(idx) == 1 and idx[0] >= 0:
            parts.append(np.asarray(F[idx[0]], dtype=np.float64))
            continue
        total = np.zeros(shape)
        for k in idx:
            total += 1.0 if k < 0 else np.asarray(F[k], dtype=np.float64)
        parts.append(total)
    if b == 1:
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
    return np.stack(parts, axis=-1).reshape(*shape, b, b)


@dataclass
class _PathChain:
    """One chain (full, or one path) of the structured path, its kernels and how its
    factors sum to the Jacobian's entries."""

    kern: Kernels
    entries: list[list[int]]
    chain: DiagonalChain | BlockChain


def _factors(su: Setup, kern: Kernels, V: list[Any], shape: tuple[int, ...], t0: int) -> Any:
    by_name = dict(zip(su.kernels.layout.needed, V, strict=True))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        try:
            F = kern.factors([by_name[v] for v in kern.layout.needed], su.q, shape)
        except FactorError as err:
            raise err.at_step(su.cell.name, t0) from None
    for f in F:
        if not np.isfinite(f).all():
            k, b = (int(i) for i in np.argwhere(~np.isfinite(to_numpy(f)))[0][:2])
            raise NumericalError(
                f"the Jacobian of {su.cell.name!r} is NaN or inf at step {t0 + k + 1}, "
                f"sequence {b}: a derivative is undefined at the state reached there "
                "(e.g. sqrt or log at 0)"
            )
    return F


def _step(su: Setup, s: Any, u: Any, t: int) -> tuple[Any, Any]:
    with np.errstate(over="ignore", invalid="ignore"):
        s, vals = su.kernels.step(s, u, su.q)
    if not np.isfinite(s).all():
        b = int(np.argwhere(~np.isfinite(to_numpy(s)))[0][0])
        raise NumericalError(
            f"the rollout of {su.cell.name!r} produced NaN or inf at step {t}, sequence {b}: "
            "reduce the weight scale or the inputs"
        )
    return s, vals


def _chunk_values(su: Setup, s: Any, t0: int, t1: int, state_free: bool) -> list[Any]:
    """Unit values of steps t0+1..t1, stacked over steps. A state-free cell's factors read no
    state-dependent value, so one batched call over the chunk's steps (any state) gives them."""
    u = su.kernels.input_projection(su.inputs[t0:t1], su.q)
    lay = su.kernels.layout
    if state_free and set(lay.needed) <= set(lay.affine):  # the input projection itself
        n = su.n
        return [u[..., lay.affine.index(v) * n : (lay.affine.index(v) + 1) * n] for v in lay.needed]
    if state_free:
        with np.errstate(all="ignore"):  # state-dependent values are computed but never read
            _, vals = su.kernels.step(np.zeros((t1 - t0, su.batch, su.m)), u, su.q)
        return [np.broadcast_to(v, (t1 - t0, su.batch, su.n)) for v in vals]
    cols: list[list[Any]] = [[] for _ in su.kernels.layout.needed]
    for k in range(t1 - t0):
        s, vals = _step(su, s, u[k], t0 + k + 1)
        for col, v in zip(cols, vals, strict=True):
            col.append(v)
    return [np.stack(col) for col in cols]


def _chunk_steps(su: Setup, b: int, state_free: bool) -> int:
    """Steps per chunk: the chunk's arrays within :data:`CHUNK_ELEMENTS`; without state
    freedom at least ``sqrt(T)``, so that the checkpoints too stay ``O(sqrt(T) B m)``."""
    lay = su.kernels.layout
    per_step = su.batch * su.m * (b + len(lay.needed) + len(lay.diags) + len(lay.affine) + 4)
    k = max(1, CHUNK_ELEMENTS // per_step)
    if not state_free:
        k = max(k, math.isqrt(su.steps - 1) + 1)
    return min(k, su.steps)


def _method(kind: str) -> str:
    if kind == "diagonal":
        return (
            "exact: the spectral norm of a diagonal product is its largest |entry|, from "
            "log-domain sums of log10 |J_ii|"
        )
    return (
        "exact: the largest over unit blocks of each block's spectral norm (each block's "
        "product renormalised with its own scale; 2 x 2 closed form or a small SVD)"
    )


def _run(
    su: Setup,
    plan: JacobianStructure,
    paths: bool,
    singular_lags: Sequence[int],
    n_singular: int | None,
    lyapunov: int,
    gradient: str | None,
    hidden: bool,
) -> AnalysisResult:
    T, B, n, m, b = su.steps, su.batch, su.n, su.m, plan.block
    lags = sorted({int(k) for k in singular_lags})
    if lags and (lags[0] < 1 or lags[-1] > T):
        raise UsageError(f"singular_lags must lie in 1..{T}; got {lags}")
    n_sv = m if n_singular is None else max(1, min(int(n_singular), m))
    multi = hidden and len(su.cell.state) > 1

    def chain(kern: Kernels, jac: BlockJacobian, full: bool) -> _PathChain:
        ch: DiagonalChain | BlockChain
        last = full and gradient == "last"
        if b == 1:
            ch = DiagonalChain(T, B, m, n, full and multi, last)
        else:
            ch = BlockChain(T, B, n, b, full and multi, last)
        return _PathChain(kern, _entries(jac, kern.layout.diags, b), ch)

    jac = state_jacobian(su.cell)
    chains = {"full": chain(su.kernels, jac, True)}
    zero_paths = []
    if paths:
        for name, part in (("additive", jac.additive()), ("multiplicative", jac.multiplicative())):
            if part.is_zero():
                zero_paths.append(name)
            else:
                chains[name] = chain(compile_cell(su.cell, "numpy", name), part, False)
    grad = None
    if gradient == "sum":
        e = np.zeros((m // b, b))
        e[:n, 0] = 1.0  # the h entries: state vector 0 of every unit
        grad = GradientChain(T, e, B)
    state_free = plan.state_free and not set(su.kernels.layout.needed) & plan.state_dependent
    chunk = _chunk_steps(su, b, state_free)
    # forward: s_T, and a checkpoint per chunk unless the factors need no state
    s = su.s0
    checkpoints = []
    for t0 in range(0, T, chunk):
        checkpoints.append(None if state_free else s)
        u = su.kernels.input_projection(su.inputs[t0 : t0 + chunk], su.q)
        for k in range(u.shape[0]):
            s, _ = _step(su, s, u[k], t0 + k + 1)
    sv: dict[int, np.ndarray] = {}
    k0 = 0
    for c in range(len(checkpoints) - 1, -1, -1):
        t0, t1 = c * chunk, min(T, (c + 1) * chunk)
        V = _chunk_values(su, checkpoints[c], t0, t1, state_free)
        shape = (t1 - t0, B, n)
        for name, pc in chains.items():
            J = _assemble(_factors(su, pc.kern, V, shape, t0), pc.entries, shape, b)
            pc.chain.run_chunk(J, k0, lags if name == "full" else (), sv)
            if grad is not None and name == "full":
                grad.run_chunk(J[..., None, None] if b == 1 else J, k0)
        k0 += t1 - t0
    full = chains["full"].chain
    lyap = None
    if lyapunov:
        lyap = full.log10_singular_values()[:, : min(lyapunov, m)] * (math.log(10.0) / T)
    kind = full.certificate
    estimates = sum(1 + (pc.chain.spec_h is not None) for pc in chains.values())
    meta: dict[str, Any] = {
        "backend": "numpy",
        "dtype": np.dtype(su.dtype).name,
        "gradflow_version": __version__,
        "chunk_steps": chunk,
        "spectral": {
            "method": _method(kind),
            "rtol": 0.0,
            "krylov_depths": 0,
            "certificates": {**dict.fromkeys(CERTIFICATES, 0), kind: T * B * estimates},
            "worst_relative_gap": 0.0,
        },
        "structure": structure_meta(su.cell, m, plan.kernel),
    }
    if zero_paths:
        meta["zero_paths"] = zero_paths
    return AnalysisResult(
        cell=su.cell.name,
        hidden_size=n,
        input_size=su.d,
        steps=T,
        batch=B,
        log10_spectral_norm=full.spec,
        log10_frobenius_norm=full.frob,
        log10_spectral_norm_hidden=full.spec_h if full.spec_h is not None else full.spec,
        final_hidden=to_numpy(s[:, :n]).astype(np.float64),
        paths={
            name: {"log10_spectral_norm": pc.chain.spec, "log10_frobenius_norm": pc.chain.frob}
            for name, pc in chains.items()
            if name != "full"
        },
        log10_singular_values={k: v[:, :n_sv] for k, v in sv.items()},
        # a diagonal product's singular values are its entries' magnitudes, each a log-domain
        # sum of its own factors: exact however small; a block product's come from one SVD
        # per accumulated block, certified only by the plots' one-SVD resolution bound
        singular_certified=(
            {k: np.ones(v[:, :n_sv].shape, dtype=bool) for k, v in sv.items()} if b == 1 else None
        ),
        lyapunov_exponents=lyap,
        log10_gradient_norm=(
            grad.out if grad is not None else full.grad if gradient == "last" else None
        ),
        gradient_loss=gradient,
        meta=meta,
    )


def analyze_structured(
    plan: JacobianStructure,
    setup: Callable[..., Setup],
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    *,
    s0: Any,
    dtype: str,
    paths: bool,
    singular_lags: Sequence[int],
    n_singular: int | None,
    lyapunov: int,
    gradient: str | None,
    hidden: bool,
    threads: int | None,
    force: bool,
    started: float,
) -> AnalysisResult:
    """:func:`gradflow.engine.analyze` for a cell of diagonal or block-diagonal Jacobian: the
    engine's validation (``setup``, its ``_setup``), then the chains of
    :mod:`gradflow.blockdiag`. The arguments are the engine's."""
    if gradient not in (None, "last", "sum"):
        raise UsageError(f"unknown gradient loss {gradient!r}; choose 'last' or 'sum'")
    n_paths = 3 if paths else 1

    def check(T: int, B: int, n: int, m: int) -> None:
        # about 100 operations per entry, step and chain (the rollout's and the factors'
        # functions, logs, exps; b^2 for blocks): measured 34 ns CPU per entry and step
        # (mingru, n = 4096, B = 4), so the limit is hours, as for the dense chain
        n_sv = m if n_singular is None else max(1, min(int(n_singular), m))
        per_lag = 3 + 2 * (n_paths - 1) + (1 if gradient else 0)
        values = estimate_cost(T, B, m, n, per_lag_quantities=per_lag).values
        flops = 100.0 * T * B * m * plan.block**2 * n_paths
        check_cost(Cost(flops, values + len(set(singular_lags)) * B * n_sv), force)

    su = setup(cell, params, inputs, s0, "numpy", dtype, check)
    nthreads = blas_threads(su.m, threads)
    with compute_region(nthreads):
        result = _run(su, plan, paths, singular_lags, n_singular, lyapunov, gradient, hidden)
    return replace(
        result,
        meta={**result.meta, "threads": nthreads},
        run={"seconds": time.perf_counter() - started},
    )

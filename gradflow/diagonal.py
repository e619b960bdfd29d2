r"""Structure-aware chains: cells whose state Jacobian is diagonal (issue 11 item 4).

When every term of ``J_t = ds_t/ds_{t-1}`` is weight-free and lies in a diagonal block
(``ds_i/ds_i``), ``J_t = diag(D_t)`` with ``D_t`` a vector of length ``m``, and the product over
lags is ``ds_T/ds_{T-k} = diag(prod_{t=T-k+1}^T D_t)``. Its norms are then exact and cost
``O(m)`` per step, with no Krylov iteration, QR or renormalisation:

* spectral norm ``max_i prod_t |D_{t,i}|`` (the largest entry of a diagonal matrix),
* Frobenius norm ``sqrt(sum_i prod_t D_{t,i}^2)`` (a log-sum-exp of ``2 sum_t log|D_{t,i}|``),
* Lyapunov exponents: the time averages of ``ln |D_{t,i}|`` (nats per step, as
  :func:`gradflow.engine.analyze` reports them), sorted descending: exactly the finite-time
  exponents ``ln(sigma_i(ds_T/ds_0)) / T``.

Everything is summed in the log domain (``sum_t log10 |D_{t,i}|``), so a product that is merely
tiny or huge is never reported as 0 or inf; an entry that is exactly 0 (a ReLU unit off) makes
that unit's product exactly 0 (``-inf`` in log10), and the norm is ``-inf`` only when every
unit's product is exactly 0.

:func:`jacobian_structure` reads the structure from the symbolic Jacobian (no numbers): whether
``J_t`` is diagonal, and whether it depends on the inputs only (``mingru``, ``minlstm``: no
factor of the chain depends on the state, so the product is exactly the product of the gates).
:func:`diagonal_chain` computes the norms of every lag in constant memory in ``T``: a forward
pass keeps a checkpoint state every ``chunk`` steps, and a backward pass over the chunks
recomputes each chunk's ``D_t`` and accumulates ``sum log10 |D|`` from the end.

References:
    [li2018indrnn] IndRNN (diagonal, state-dependent); [feng2024minrnn] minGRU, minLSTM
    (diagonal, input-only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from .cells.graph import Affine, Cell
from .codegen import compile_cell
from .errors import UsageError
from .symbolic.jacobian import BlockJacobian, state_jacobian

_LOG10E = 1.0 / math.log(10.0)


@dataclass(frozen=True)
class JacobianStructure:
    """What the symbolic Jacobian of a cell says about its shape.

    Attributes:
        diagonal: every term is weight-free and in a diagonal block: ``J_t = diag(D_t)``.
        input_only: no factor of ``J_t`` depends on the state (only on inputs and parameters).
        state_dependent: the cell's vectors that depend on ``s_{t-1}``.
    """

    diagonal: bool
    input_only: bool
    state_dependent: frozenset[str]


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


def jacobian_structure(cell: Cell) -> JacobianStructure:
    """Read the structure of ``ds_t/ds_{t-1}`` from the derivation (see the module docstring).

    ``input_only`` is decided on the factors as the kernels evaluate them (node values named by
    their nodes): a factor is state-dependent when it names the state or a node computed from
    it.
    """
    jac = state_jacobian(cell)
    diagonal = all(not t.weights and i == j for i, j, t in jac.terms())
    live = _state_dependent(cell)
    used: set[str] = set()
    for _, _, t in jac.terms():
        for dg in t.diags:
            used |= {str(s) for s in sp.sympify(dg).free_symbols}
    return JacobianStructure(diagonal, not (used & live), live)


@dataclass(frozen=True)
class DiagonalChain:
    """Exact norms of ``ds_T/ds_{T-k}`` for every lag ``k = 0..T`` of a diagonal chain.

    Attributes:
        lags: ``0..T``.
        log10_spectral_norm: ``(T + 1, B)``, ``log10 max_i |prod D_i|``.
        log10_frobenius_norm: ``(T + 1, B)``.
        lyapunov_exponents: ``(B, m)`` nats per step, descending: ``mean_t ln |D_{t,i}|``.
        input_only: whether ``J_t`` depends on the inputs only (see :func:`jacobian_structure`).
    """

    lags: np.ndarray
    log10_spectral_norm: np.ndarray
    log10_frobenius_norm: np.ndarray
    lyapunov_exponents: np.ndarray
    input_only: bool


def _diagonal_entries(jac: BlockJacobian, layout_diags: tuple[sp.Expr, ...]) -> list[list[int]]:
    """For each state block, the indices into the kernels' factors whose sum is ``D`` there
    (``-1`` stands for the constant 1)."""
    out: list[list[int]] = []
    for i, row in enumerate(jac.blocks):
        idx: list[int] = []
        for t in row[i]:
            (dg,) = t.diags
            idx.append(-1 if dg == 1 else layout_diags.index(dg))
        out.append(idx)
    return out


def diagonal_chain(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    *,
    s0: Any = None,
    chunk: int | None = None,
) -> DiagonalChain:
    """Exact per-lag norms and Lyapunov exponents of a cell with a diagonal Jacobian.

    Args:
        cell: a cell whose :func:`jacobian_structure` is diagonal.
        params: parameters by the cell's names.
        inputs: ``(T, B, d)`` float array.
        s0: initial state ``(B, m)``; zeros by default.
        chunk: steps per checkpoint (default ``ceil(sqrt(T))``): memory ``O((T/chunk + chunk)
            B m)``, time ``O(T B m)`` (each step's values are computed twice).

    Raises:
        UsageError: the cell's Jacobian is not diagonal, or the inputs are not ``(T, B, d)``.
    """
    if not jacobian_structure(cell).diagonal:
        raise UsageError(
            f"cell {cell.name!r}: its state Jacobian is not diagonal; use gradflow.engine.analyze"
        )
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 3 or 0 in x.shape:
        raise UsageError(f"inputs must have shape (T, B, d) with T, B, d >= 1, got {x.shape}")
    T, B, _ = x.shape
    kern = compile_cell(cell)
    q = kern.pack(params)
    n = int(q["n"])
    m = len(cell.state) * n
    s = np.zeros((B, m)) if s0 is None else np.array(s0, dtype=np.float64).reshape(B, m)
    entries = _diagonal_entries(state_jacobian(cell), kern.layout.diags)
    size = chunk if chunk is not None else max(1, math.isqrt(T - 1) + 1)

    def log_diag(V: Any) -> np.ndarray:
        # log10 |D_t| of one step, (B, m); an exact zero gives -inf (a dead unit, not a tiny one)
        F = kern.factors(V, q, (B, n))
        parts = []
        for idx in entries:
            total = np.zeros((B, n))
            for k in idx:
                total = total + (1.0 if k < 0 else np.asarray(F[k]))
            parts.append(total)
        with np.errstate(divide="ignore"):
            return np.log10(np.abs(np.concatenate(parts, axis=-1)))

    # forward: checkpoints s_{c*size} and the running sum of log10|D| for the exponents
    checkpoints = []
    for t0 in range(0, T, size):
        checkpoints.append(s)
        for t in range(t0, min(t0 + size, T)):
            s, _ = kern.step(s, kern.input_projection(x[t], q), q)
    # backward: L = sum_{t > T-k} log10 |D_t|, per lag k
    spec = np.empty((T + 1, B))
    frob = np.empty((T + 1, B))
    spec[0], frob[0] = 0.0, 0.5 * math.log10(m)
    L = np.zeros((B, m))
    lag = 0
    for c in range(len(checkpoints) - 1, -1, -1):
        t0 = c * size
        s = checkpoints[c]
        logs = []
        for t in range(t0, min(t0 + size, T)):
            s_next, V = kern.step(s, kern.input_projection(x[t], q), q)
            logs.append(log_diag(V))
            s = s_next
        for ld in reversed(logs):
            L = L + ld
            lag += 1
            spec[lag] = L.max(axis=-1)
            top = np.where(np.isfinite(spec[lag]), spec[lag], 0.0)[:, None]
            with np.errstate(divide="ignore"):
                frob[lag] = top[:, 0] + 0.5 * np.log10(np.sum(10.0 ** (2 * (L - top)), axis=-1))
    lyap = -np.sort(-(L / (T * _LOG10E)), axis=-1)
    return DiagonalChain(np.arange(T + 1), spec, frob, lyap, jacobian_structure(cell).input_only)

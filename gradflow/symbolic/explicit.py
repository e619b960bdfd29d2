r"""The explicit small-``n`` Jacobian: scalar symbols and ``sympy.Matrix.jacobian``.

This is the teaching view (every entry written out) and the independent check of the matrix
form in :mod:`gradflow.symbolic.jacobian`: it never uses the chain rule over the cell graph,
only SymPy's differentiation of the unrolled step.

Examples:
    >>> from gradflow.cells import get_cell
    >>> J = explicit_jacobian(get_cell("rnn"), 2)
    >>> J.shape
    (2, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..cells.graph import Affine, Cell
from ..errors import CellError
from .jacobian import expression_size

MAX_EXPLICIT_N = 8
#: The work an explicit Jacobian may take, in SymPy operations built or differentiated
#: (an LSTM at n = 8 about 30,000: a few seconds); past it the cell is refused.
MAX_EXPLICIT_WORK = 50_000


@dataclass(frozen=True)
class ExplicitStep:
    """The unrolled step with scalar symbols.

    Attributes:
        symbols: for each vector or parameter name, its scalar symbols (a list for vectors,
            a list of rows for matrices).
        state: the stacked previous state ``s_{t-1}`` (column matrix).
        new_state: the stacked ``s_t`` as expressions of all symbols.
        jacobian: ``new_state.jacobian(state)``.
    """

    symbols: dict[str, list[Any]]
    state: sp.Matrix
    new_state: sp.Matrix
    jacobian: sp.Matrix


def explicit_step(cell: Cell, n: int, d: int = 1, p: int | None = None) -> ExplicitStep:
    """Unroll one step of ``cell`` with hidden size ``n``, input size ``d`` and, for a cell
    with a second size (``Cell.sizes``), ``p`` (default ``max(1, n // 2)``, as
    :func:`gradflow.initialisers.initialise`)."""
    if not isinstance(n, int) or not 1 <= n <= MAX_EXPLICIT_N:
        raise CellError(f"explicit Jacobian needs 1 <= n <= {MAX_EXPLICIT_N}, got {n!r}")
    if cell.has_second_size and p is None:
        p = max(1, n // 2)
    if cell.has_second_size and (not isinstance(p, int) or not 1 <= p <= MAX_EXPLICIT_N):
        raise CellError(
            f"cell {cell.name!r} has vectors of size p: the explicit Jacobian needs "
            f"1 <= p <= {MAX_EXPLICIT_N}, got {p!r}"
        )
    syms: dict[str, list[Any]] = {}
    values: dict[str, list[sp.Expr]] = {}
    units = {"n": n, "p": p if p is not None else n, "d": d}

    def vec(name: str, size: int) -> list[sp.Symbol]:
        return [sp.Symbol(f"{name}_{k + 1}", real=True) for k in range(size)]

    syms[cell.input] = values[cell.input] = vec(cell.input, d)
    for s in cell.state:
        syms[s] = values[s] = vec(s, units[cell.size_of(s)])
    for par in cell.parameters:
        if par.kind == "weight" and len(par.shape) == 3:  # heads blocks (F2): rows of all blocks
            heads, size, _ = par.numeric_shape(n, d)
            if heads * size != n:
                raise CellError(f"cell {cell.name!r}: n = {n} is not a multiple of {heads} heads")
            syms[par.name] = [
                [sp.Symbol(f"{par.name}_{k + 1}{i + 1}{j + 1}", real=True) for j in range(size)]
                for k in range(heads)
                for i in range(size)
            ]
        elif par.kind == "weight" and len(par.shape) == 1:  # rows(w) (F9): one row
            syms[par.name] = vec(par.name, n)
        elif par.kind == "weight":
            rows, cols = (units[s] for s in par.shape)
            syms[par.name] = [
                [sp.Symbol(f"{par.name}_{i + 1}{j + 1}", real=True) for j in range(cols)]
                for i in range(rows)
            ]
        else:
            syms[par.name] = vec(par.name, units[par.shape[0]])
    matrices: dict[str, sp.Matrix] = {}
    for mat in cell.matrices:  # F4: the matrix written out from its weights' symbols
        total = sp.Float(mat.identity) * sp.eye(n)
        blocks = dict(mat.heads)
        for c, w, transposed in mat.terms:
            entry = sp.Matrix(syms[w])
            if w in blocks:  # the blocks on the diagonal
                size = n // blocks[w]
                entry = sp.diag(*(entry[k * size : (k + 1) * size, :] for k in range(blocks[w])))
            elif w in mat.rows:  # one row w^T for every unit (F9)
                entry = sp.Matrix([list(syms[w])] * n)
            total += sp.Float(c) * (entry.T if transposed else entry)
        matrices[mat.name] = total
    work = 0

    def spend(ops: int) -> None:
        nonlocal work
        work += ops
        if work > MAX_EXPLICIT_WORK:
            raise CellError(
                f"cell {cell.name!r}: the explicit Jacobian at n = {n} would take more than "
                f"{MAX_EXPLICIT_WORK} symbolic operations; use a smaller n or the matrix form "
                "(valid for every n)"
            )

    for node in cell.nodes:
        size = units[cell.size_of(node.name)]
        if isinstance(node, Affine):
            spend(n * n * len(node.terms) + n * len(node.biases))
            total = sp.zeros(size, 1)
            for w, src in node.terms:
                if w in matrices:
                    if len(values[src]) != n:
                        raise CellError(
                            f"cell {cell.name!r}: matrix {w!r} is square, so the input size d "
                            f"must be n = {n}; got d = {len(values[src])}"
                        )
                    total += matrices[w] * sp.Matrix(values[src])
                    continue
                total += sp.Matrix(syms[w]) * sp.Matrix(values[src])
            for b in node.biases:
                total += sp.Matrix(syms[b])
            values[node.name] = list(total)
        else:
            spend(n * expression_size(node.expr)[0])
            free = sorted(node.expr.free_symbols, key=str)
            values[node.name] = [
                node.expr.xreplace(
                    {
                        sym: (values[str(sym)] if str(sym) in values else syms[str(sym)])[k]
                        for sym in free
                    }
                )
                for k in range(size)
            ]
    updates = dict(cell.update)
    state = sp.Matrix([v for s in cell.state for v in syms[s]])
    new_state = sp.Matrix([v for s in cell.state for v in values[updates[s]]])
    # differentiating every entry by every state unit: the unrolled step's size times m n,
    # and deeper nesting costs more (the chain rule multiplies through every level)
    size, depth = expression_size(sp.Tuple(*new_state), MAX_EXPLICIT_WORK)
    spend(size * len(state) * max(1, depth // 8))
    return ExplicitStep(syms, state, new_state, new_state.jacobian(state))


def explicit_jacobian(cell: Cell, n: int, d: int = 1, p: int | None = None) -> sp.Matrix:
    """The ``(m x m)`` Jacobian ``ds_t/ds_{t-1}`` with scalar symbols (``m = len(state)*n``,
    or ``Cell.state_size(n, p)`` for a cell with a second size)."""
    return explicit_step(cell, n, d, p).jacobian

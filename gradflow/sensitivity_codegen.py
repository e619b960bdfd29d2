r"""Kernels for the input Jacobian and the parameter vector-Jacobian products of a cell.

Generated from :mod:`gradflow.symbolic.sensitivity` with the code generator's printer
(:func:`gradflow.codegen.print_expr`, names in the array namespace ``xp``), never from
hand-written derivative formulas. Three functions per cell and backend:

``values(s, x, q)``
    one step for a batch, returning every vector of the cell graph by name (the input, the
    previous state, every node): what the derivatives below are evaluated at.
``input_jacobian(E, q)``
    the materialised ``ds_t/dx_t``, shape ``(..., m, d)``, from the values ``E``.
``param_vjp(G, E, q)``
    ``G ds_t/dθ`` for row vectors ``G`` of shape ``(..., m)``, as a dict from parameter name to
    an array of shape ``(...,) + shape(θ)``: a weight gets ``g_a u^T`` (an outer product per
    use ``W @ u`` in affine node ``a``, with ``g_a = G ds_t/da``), a bias ``g_a``.

``print(compile_sensitivity(get_cell("lstm")).source)`` shows what runs.

Examples:
    >>> from gradflow.cells import get_cell
    >>> "def param_vjp" in compile_sensitivity(get_cell("gru")).source
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp

from .backend import array_namespace
from .cells.graph import Affine, Cell
from .codegen import HELPERS, block_spans, print_expr, size_lines, term_sizes
from .symbolic.jacobian import Block, Term
from .symbolic.sensitivity import input_jacobian, parameter_derivatives


def _vectors(cell: Cell) -> set[str]:
    return {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}


def _rename(cell: Cell, expr: sp.Expr) -> sp.Expr:
    vec = _vectors(cell)
    return expr.xreplace(
        {s: sp.Symbol(f"v_{s}" if str(s) in vec else f"p_{s}") for s in expr.free_symbols}
    )


def _gen_values(cell: Cell) -> list[str]:
    L = ["def values(s, x, q):", '    n = q["n"]', *size_lines(cell), f"    v_{cell.input} = x"]
    for st, (a, b) in zip(cell.state, block_spans(cell, cell.state), strict=True):
        L.append(f"    v_{st} = s[..., {a}:{b}]")
    vec = _vectors(cell)
    for p in cell.iter_params("vector"):
        L.append(f'    p_{p.name} = q["{p.name}"]')
    shape_of = f"v_{cell.state[0]}.shape"
    for nd in cell.nodes:
        if isinstance(nd, Affine):
            parts = [f'v_{src} @ q["T:{w}"]' for w, src in nd.terms]
            parts += [f'q["{b}"]' for b in nd.biases]
            L.append(f"    v_{nd.name} = " + " + ".join(parts))
        else:
            code = print_expr(_rename(cell, nd.expr))
            if not {str(s) for s in nd.expr.free_symbols} & vec:
                shape = shape_of
                if cell.sizes:  # the node's own size
                    shape = f"{shape_of}[:-1] + ({cell.size_of(nd.name)},)"
                code = f"xp.broadcast_to({code}, {shape})"
            L.append(f"    v_{nd.name} = {code}")
    names = [cell.input, *cell.state, *(nd.name for nd in cell.nodes)]
    L.append("    return {" + ", ".join(f'"{v}": v_{v}' for v in names) + "}")
    return L


class _Diags:
    """Distinct diagonal expressions of a set of terms, bound once to ``F0, F1, ...``."""

    def __init__(self, cell: Cell, blocks: list[Block]) -> None:
        self.cell = cell
        self.exprs: list[sp.Expr] = []
        #: the size symbol of each diagonal (cells with a second size): ``diags[0]`` at the
        #: block's row (blocks come one per state vector), ``diags[k]`` at ``weights[k-1]``'s
        #: columns
        self.sizes: dict[sp.Expr, str] = {}
        for k, blk in enumerate(blocks):
            row = cell.state[k % len(cell.state)]
            for t in blk:
                for dg, size in zip(t.diags, term_sizes(cell, row, t), strict=True):
                    if dg != 1 and dg not in self.exprs:
                        self.exprs.append(dg)
                        self.sizes[dg] = size

    def name(self, dg: sp.Expr) -> str:
        return f"F{self.exprs.index(dg)}"

    def lines(self) -> list[str]:
        cell, vec = self.cell, _vectors(self.cell)
        used = {str(s) for e in self.exprs for s in e.free_symbols}
        L = [f'    v_{v} = E["{v}"]' for v in sorted(used & vec)]
        L += [f'    p_{p} = q["{p}"]' for p in sorted(used - vec)]
        L.append(f'    _shape = E["{cell.state[0]}"].shape')
        temps, reduced = sp.cse(
            [_rename(cell, e) for e in self.exprs], symbols=sp.numbered_symbols("t_"), order="none"
        )
        L += [f"    {sym} = {print_expr(val)}" for sym, val in temps]
        shapes = ["_shape"] * len(reduced)
        if cell.sizes:
            shapes = [f'_shape[:-1] + (q["{self.sizes[e]}"],)' for e in self.exprs]
        L += [
            f"    F{k} = xp.broadcast_to({print_expr(e)}, {shape})"
            for k, (e, shape) in enumerate(zip(reduced, shapes, strict=True))
        ]
        return L


def _materialised(t: Term, dg: _Diags) -> str:
    """``diag(d0) W1 diag(d1) ... Wk diag(dk)`` as a batched matrix expression."""
    code = f'q["{t.weights[0]}"]'
    for k in range(1, len(t.weights) + 1):
        d = t.diags[k]
        if d != 1:
            code = f"({code} * {dg.name(d)}[..., None, :])"
        if k < len(t.weights):
            code = f'({code} @ q["{t.weights[k]}"])'
    if t.diags[0] != 1:
        code = f"({dg.name(t.diags[0])}[..., :, None] * {code})"
    return code


def _row_chain(start: str, t: Term, dg: _Diags) -> str:
    """``start^T diag(d0) W1 diag(d1) ...``: a row vector through one term."""
    code = start if t.diags[0] == 1 else f"({start} * {dg.name(t.diags[0])})"
    for k, w in enumerate(t.weights):
        code = f'({code} @ q["{w}"])'
        d = t.diags[k + 1]
        if d != 1:
            code = f"({code} * {dg.name(d)})"
    return code


def _gen_input_jacobian(cell: Cell) -> list[str]:
    jac = input_jacobian(cell)
    dg = _Diags(cell, list(jac.blocks))
    L = ["def input_jacobian(E, q):", '    n = q["n"]', *size_lines(cell), '    d = q["d"]']
    L += dg.lines()
    outs = []
    for i, blk in enumerate(jac.blocks):
        body = " + ".join(_materialised(t, dg) for t in blk)
        rows = cell.size_of(cell.state[i])
        zero = f"xp.zeros(_shape[:-1] + ({rows}, d))"
        L.append(
            f"    K{i} = xp.broadcast_to({body}, _shape[:-1] + ({rows}, d))"
            if blk
            else f"    K{i} = {zero}"
        )
        outs.append(f"K{i}")
    L.append(
        f"    return {outs[0]}"
        if len(outs) == 1
        else f"    return xp.concatenate(({', '.join(outs)}), axis=-2)"
    )
    return L


#: The diagonal blocks ``(..., H, n/H, n/H)`` of ``(..., n, n)`` gradients (F2, heads).
BLOCKS = """def _blocks(G, H):
    b = G.shape[-1] // H
    return xp.stack([G[..., k * b:(k + 1) * b, k * b:(k + 1) * b] for k in range(H)], axis=-3)

"""


def _gen_param_vjp(cell: Cell) -> list[str]:
    pd = parameter_derivatives(cell)
    blocks = [b for bs in (*pd.nodes.values(), *pd.vectors.values()) for b in bs]
    dg = _Diags(cell, blocks)
    L = ["def param_vjp(G, E, q):", '    n = q["n"]', *size_lines(cell), *dg.lines()]
    for i, (a, b) in enumerate(block_spans(cell, cell.state)):
        L.append(f"    G{i} = G[..., {a}:{b}]")

    def gradient(var: str, bs: tuple[Block, ...], size: str) -> None:
        parts = [_row_chain(f"G{i}", t, dg) for i, blk in enumerate(bs) for t in blk]
        zero = "xp.zeros_like(G0)" if not cell.sizes else f"xp.zeros(G.shape[:-1] + ({size},))"
        L.append(f"    {var} = " + (" + ".join(parts) if parts else zero))

    for a, bs in pd.nodes.items():
        gradient(f"g_{a}", bs, cell.size_of(a))
    shape = {par.name: par.shape for par in cell.parameters}
    for p, bs in pd.vectors.items():
        gradient(f"g_{p}", bs, shape[p][0])
    out = []
    for use in pd.params:
        if use.kind == "weight":
            parts = [f'g_{a}[..., :, None] * E["{u}"][..., None, :]' for a, u in use.uses]
            for k, (c, transposed) in enumerate(use.scales):  # through a matrix definition
                a, u = use.uses[k]
                outer = f'E["{u}"][..., :, None] * g_{a}[..., None, :]' if transposed else parts[k]
                parts[k] = outer if c == 1.0 else f"{float(c)!r} * ({outer})"
            if use.heads:  # heads blocks (F2): the diagonal blocks of the dense gradient
                parts = [f"_blocks({' + '.join(parts)}, {use.heads})"]
            if use.rows:  # one row for every unit (F9): the column sums
                parts = [f"({' + '.join(parts)}).sum(axis=-2)"]
        elif use.kind == "bias":
            parts = [f"g_{a}" for a, _ in use.uses]
        else:
            parts = [f"g_{use.name}"]
        out.append(f'"{use.name}": ' + " + ".join(parts))
    L.append("    return {" + ", ".join(out) + "}")
    return L


@dataclass(frozen=True)
class SensitivityKernels:
    """Compiled sensitivity kernels of one cell on one array namespace."""

    cell: Cell
    xp: ModuleType
    source: str
    values: Callable[..., Any]
    input_jacobian: Callable[..., Any]
    param_vjp: Callable[..., Any]

    def pack(self, params: Mapping[str, Any], dtype: Any = np.float64) -> dict[str, Any]:
        """Parameters by name on the kernels' backend, with ``T:W`` the transposed weights."""
        xp = self.xp
        q: dict[str, Any] = {}
        n = d = 0
        params = self.cell.with_matrices(params)  # matrix definitions (F4), like weights
        for mat in self.cell.matrices:
            a = np.asarray(params[mat.name], dtype=dtype)
            q[mat.name], q[f"T:{mat.name}"] = xp.asarray(a), xp.asarray(np.ascontiguousarray(a.T))
        for p in self.cell.parameters:
            a = np.asarray(params[p.name], dtype=dtype)
            q[p.name] = xp.asarray(a)
            if a.ndim == 3 or p.name in self.cell.rows:  # F2, F9: through their matrices only
                continue
            n = int(a.shape[0])
            if p.kind == "weight" and p.shape[1] == "d":
                d = int(a.shape[1])
            if p.kind == "weight":
                q[f"T:{p.name}"] = xp.asarray(np.ascontiguousarray(a.T))
        q["n"], q["d"] = n, d
        if self.cell.sizes:  # the sizes from the shapes' symbols, not from the last parameter
            q["n"], q["p"] = self.cell.size_values(params)
        return q


@lru_cache(maxsize=128)
def compile_sensitivity(cell: Cell, backend: str = "numpy") -> SensitivityKernels:
    """Sensitivity kernels for ``cell`` (cached per cell and backend)."""
    xp = array_namespace(backend)
    parts = [_gen_values(cell), _gen_input_jacobian(cell), _gen_param_vjp(cell)]
    # No user text in the source, docstrings included (names arrive as validated identifiers).
    header = ['"""Sensitivity kernels; generated by gradflow.sensitivity_codegen."""', "", HELPERS]
    if cell.heads:
        header.append(BLOCKS)
    source = "\n".join(header + ["\n\n".join("\n".join(p) for p in parts)]) + "\n"
    namespace: dict[str, Any] = {"xp": xp}
    # Built from validated identifiers and SymPy's printer only (never raw user text).
    exec(compile(source, "<gradflow sensitivity kernels>", "exec"), namespace)
    return SensitivityKernels(
        cell,
        xp,
        source,
        namespace["values"],
        namespace["input_jacobian"],
        namespace["param_vjp"],
    )

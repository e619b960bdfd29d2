r"""Input and parameter derivatives of a cell, in matrix form for every hidden size.

The same chain rule over the cell graph that gives the state Jacobian
(:mod:`gradflow.symbolic.jacobian`) is seeded at other vectors (DESIGN decision 9):

* the **input Jacobian** ``ds_t/dx_t``: seeded at the input; each state block is a sum of
  :class:`~gradflow.symbolic.jacobian.Term` chains ending in an input weight, e.g.
  ``dh_t/dx_t = diag(1 - h_t^2) W_ih`` for the Elman RNN;
* the **node Jacobians** ``ds_t/da`` of every affine node ``a = sum_k W_k u_k + sum_j b_j``:
  a weight's derivative is only ever used as a vector-Jacobian product,
  ``v^T ds_t/dW = (v^T ds_t/da)^T u^T`` (an outer product, never an ``m x |W|`` matrix), and a
  bias's is ``v^T ds_t/da``;
* the **vector-parameter Jacobians** ``ds_t/dp`` of diagonal parameters (peepholes, IndRNN's
  ``u``): seeded at ``p``, they end in a diagonal (``diag(c_{t-1} i_t (1 - i_t))`` ...).

:func:`explicit_input_jacobian` and :func:`explicit_parameter_jacobian` are the independent
small-``n`` checks: ``sympy.Matrix.jacobian`` of the unrolled step with scalar symbols.

Examples:
    >>> from gradflow.cells import get_cell
    >>> print(input_jacobian(get_cell("rnn")))
    dh_t/dx_t = diag(1 - h_t**2) @ W_ih
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..cells.graph import Affine, Cell
from ..errors import CellError
from .explicit import explicit_step
from .jacobian import Block, Term, own_value_rules
from .render import text_names

ONE = sp.S.One


def _merge(terms: list[Term]) -> Block:
    """Add terms with the same weight chain and trailing diagonals; drop zeros."""
    merged: dict[tuple[tuple[str, ...], tuple[sp.Expr, ...]], sp.Expr] = {}
    for t in terms:
        key = (t.weights, t.diags[1:])
        merged[key] = merged.get(key, sp.S.Zero) + t.diags[0]
    out = []
    for (weights, rest), lead in sorted(merged.items(), key=lambda kv: (len(kv[0][0]), kv[0][0])):
        lead = sp.factor_terms(lead)
        if lead != 0:
            out.append(Term((lead,) + rest, weights))
    return tuple(out)


def derive(cell: Cell, seed: str) -> tuple[Block, ...]:
    """``d s_t[i] / d seed`` for every state vector ``i``, by the chain rule over the graph.

    ``seed`` is the input, a state vector, a vector parameter or an affine node (then treated
    as an independent vector: what follows it in the graph is differentiated, not what feeds
    it). Blocks are sums of :class:`Term` chains in numerator layout.
    """
    rules = own_value_rules(cell)
    known = {cell.input, *cell.state, *(p.name for p in cell.iter_params("vector"))}
    if seed not in known and seed not in cell.node_map:
        raise CellError(f"cell {cell.name!r} has no vector {seed!r} to differentiate by")
    deriv: dict[str, list[Term]] = {}
    if seed in known:
        deriv[seed] = [Term((ONE,), ())]
    for node in cell.nodes:
        if node.name == seed:
            deriv[node.name] = [Term((ONE,), ())]
            continue
        acc: list[Term] = []
        if isinstance(node, Affine):
            for weight, src in node.terms:
                acc.extend(t.through(weight) for t in deriv.get(src, ()))
        else:
            for sym in sorted(node.expr.free_symbols, key=str):
                upstream = deriv.get(str(sym))
                if not upstream:
                    continue
                partial = sp.diff(node.expr, sym).xreplace(rules)
                if partial != 0:
                    acc.extend(t.then(partial) for t in upstream)
        if acc:
            deriv[node.name] = list(_merge(acc))
    updates = dict(cell.update)
    return tuple(tuple(deriv.get(updates[s], ())) for s in cell.state)


def _block_text(cell: Cell, blocks: tuple[Block, ...], wrt: str) -> str:
    names = text_names(cell)
    lines = []
    for s, blk in zip(cell.state, blocks, strict=True):
        body = " + ".join(t.text(names) for t in blk) if blk else "0"
        lines.append(f"d{s}_t/d{wrt} = {body}")
    return "\n".join(lines)


def _block_latex(cell: Cell, blocks: tuple[Block, ...], wrt: str) -> str:
    """``\\begin{aligned}`` rows ``\\partial s_t / \\partial wrt = ...`` (diag and weights)."""
    names = text_names(cell)
    rows = []
    for s, blk in zip(cell.state, blocks, strict=True):
        parts = []
        for t in blk:
            factors = []
            for k, dg in enumerate(t.diags):
                if dg != ONE:
                    shown = sp.latex(dg.xreplace(names))
                    factors.append(rf"\operatorname{{diag}}\left({shown}\right)")
                if k < len(t.weights):
                    base, _, sub = t.weights[k].partition("_")
                    factors.append(f"{base}_{{{sub}}}" if sub else base)
            parts.append(" ".join(factors) or "I")
        body = " + ".join(parts) if parts else "0"
        rows.append(rf"\frac{{\partial {s}_t}}{{\partial {wrt}}} &= {body}")
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"


@dataclass(frozen=True)
class InputJacobian:
    """``ds_t/dx_t`` as one block per state vector (rows ``s_t[i]``, columns the input)."""

    cell: Cell
    blocks: tuple[Block, ...]

    def terms(self) -> Iterator[tuple[int, Term]]:
        for i, blk in enumerate(self.blocks):
            for t in blk:
                yield i, t

    def __str__(self) -> str:
        return _block_text(self.cell, self.blocks, f"{self.cell.input}_t")

    def latex(self) -> str:
        return _block_latex(self.cell, self.blocks, f"{self.cell.input}_t")

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"


@lru_cache(maxsize=256)
def input_jacobian(cell: Cell) -> InputJacobian:
    """Derive ``ds_t/dx_t`` for ``cell`` (any ``n``, any ``d``)."""
    return InputJacobian(cell, derive(cell, cell.input))


@dataclass(frozen=True)
class ParameterUse:
    """Where one parameter enters: ``(node, source)`` pairs for weights (``W @ source`` in
    affine ``node``), ``(node, None)`` for biases, ``(name, None)`` for vector parameters."""

    name: str
    kind: str
    uses: tuple[tuple[str, str | None], ...]
    #: per use, ``(c, transposed)`` when the weight enters through a matrix definition
    #: ``M = ... + c W (or c W^T) + ...`` (F4): its gradient is ``c G`` (``c G^T``), ``G`` that
    #: of ``M``; empty when every use is the weight itself
    scales: tuple[tuple[float, bool], ...] = ()
    #: for a weight stored as heads blocks (F2), their number ``H``: its gradient is the
    #: ``(H, n/H, n/H)`` diagonal blocks of the dense one
    heads: int = 0
    #: for a weight stored as one row ``w`` (F9, ``rows(w)`` = ``1_n w^T``): its gradient is
    #: the column sums of the dense one
    rows: bool = False


@dataclass(frozen=True)
class ParameterDerivatives:
    """Everything ``v^T ds_t/dθ`` needs, for every parameter of the cell.

    Attributes:
        nodes: ``ds_t/da`` (one block per state vector) for every affine node ``a`` that holds
            a parameter.
        vectors: ``ds_t/dp`` for every vector (diagonal) parameter ``p``.
        params: how each parameter enters, in the cell's parameter order.
    """

    cell: Cell
    nodes: dict[str, tuple[Block, ...]]
    vectors: dict[str, tuple[Block, ...]]
    params: tuple[ParameterUse, ...]

    def __str__(self) -> str:
        lines = [_block_text(self.cell, b, a) for a, b in self.nodes.items()]
        lines += [_block_text(self.cell, b, p) for p, b in self.vectors.items()]
        for use in self.params:
            if use.kind == "weight" and use.scales:
                parts = [
                    f"{c:g} " + (f"{u} (v^T ds_t/d{a})" if t else f"(v^T ds_t/d{a})^T {u}^T")
                    for (a, u), (c, t) in zip(use.uses, use.scales, strict=True)
                ]
            elif use.kind == "weight":
                parts = [f"(v^T ds_t/d{a})^T {u}^T" for a, u in use.uses]
            elif use.kind == "bias":
                parts = [f"v^T ds_t/d{a}" for a, _ in use.uses]
            else:
                parts = [f"v^T ds_t/d{use.name}"]
            lines.append(f"grad {use.name} = " + " + ".join(parts))
        return "\n".join(lines)

    def latex(self) -> str:
        rows = [_block_latex(self.cell, b, a) for a, b in self.nodes.items()]
        rows += [_block_latex(self.cell, b, p) for p, b in self.vectors.items()]
        return r",\quad ".join(rows)


@lru_cache(maxsize=256)
def parameter_derivatives(cell: Cell) -> ParameterDerivatives:
    """Derive the pieces of ``v^T ds_t/dθ`` for every parameter of ``cell``."""
    uses: dict[str, list[tuple[str, str | None]]] = {p.name: [] for p in cell.parameters}
    scales: dict[str, list[tuple[float, bool]]] = {p.name: [] for p in cell.parameters}
    matrices = cell.matrix_map
    for node in cell.nodes:
        if isinstance(node, Affine):
            for w, src in node.terms:
                if w in matrices:
                    for c, mw, transposed in matrices[w].terms:
                        uses[mw].append((node.name, src))
                        scales[mw].append((float(c), transposed))
                    continue
                uses[w].append((node.name, src))
                scales[w].append((1.0, False))
            for b in node.biases:
                uses[b].append((node.name, None))
    holders = [nd.name for nd in cell.nodes if isinstance(nd, Affine) and (nd.terms or nd.biases)]
    nodes = {a: derive(cell, a) for a in holders}
    vectors = {p.name: derive(cell, p.name) for p in cell.iter_params("vector")}

    def scaled(name: str) -> tuple[tuple[float, bool], ...]:
        plain = all(sc == (1.0, False) for sc in scales[name])
        return () if plain else tuple(scales[name])

    params = tuple(
        ParameterUse(
            p.name,
            p.kind,
            tuple(uses[p.name]) if p.kind != "vector" else ((p.name, None),),
            scaled(p.name) if p.kind == "weight" else (),
            cell.heads.get(p.name, 0),
            p.name in cell.rows,
        )
        for p in cell.parameters
    )
    return ParameterDerivatives(cell, nodes, vectors, params)


# ---- the explicit small-n checks -----------------------------------------------------------


def explicit_input_jacobian(cell: Cell, n: int, d: int, p: int | None = None) -> sp.Matrix:
    """``ds_t/dx_t`` of the unrolled step with scalar symbols, ``(m, d)`` (``p``: the second
    size of a cell that has one)."""
    step = explicit_step(cell, n, d, p)
    return step.new_state.jacobian(sp.Matrix(step.symbols[cell.input]))


def explicit_parameter_jacobian(
    cell: Cell, n: int, d: int, name: str, p: int | None = None
) -> sp.Matrix:
    """``ds_t/dθ`` for one parameter, its entries flattened row-major: ``(m, |θ|)``."""
    step = explicit_step(cell, n, d, p)
    if name not in step.symbols or name == cell.input or name in cell.state:
        raise CellError(f"cell {cell.name!r} has no parameter {name!r}")
    entry = step.symbols[name]
    flat = [s for row in entry for s in row] if isinstance(entry[0], list) else list(entry)
    return step.new_state.jacobian(sp.Matrix(flat))

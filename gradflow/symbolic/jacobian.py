r"""The state Jacobian ``ds_t/ds_{t-1}`` in matrix form, valid for every hidden size.

The chain rule runs over the cell graph. An affine node contributes its weight matrices; an
elementwise node contributes the diagonal of its SymPy partial derivatives, rewritten in the
cell's own values (``tanh(a) -> h_t``, so ``1 - tanh(a)^2`` reads ``1 - h_t^2``). The result is
a block matrix (numerator layout: row blocks are outputs ``s_t``, column blocks inputs
``s_{t-1}``) whose blocks are sums of :class:`Term` chains
``diag(d_0) W_1 diag(d_1) ... W_k diag(d_k)``.

Examples:
    >>> from gradflow.cells import get_cell
    >>> print(get_cell("rnn").jacobian())
    dh_t/dh_{t-1} = diag(1 - h_t**2) @ W_hh
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..cells.graph import Affine, Cell, Elementwise
from .render import jacobian_latex, jacobian_mathml_element, text_names

ONE = sp.S.One
#: A derivation with more terms than this is refused (chained affine nodes multiply terms).
MAX_TERMS = 2000
#: The derivative of one node (all its terms, every state) may hold at most this many
#: operations, counted as printed (a shared sub-expression counts each time it appears).
#: Chains of equations such as ``e_k = tanh(e_{k-1} e_{k-2})`` grow it exponentially; the
#: derivation refuses them at the first equation past the limit, naming it.
MAX_DERIVATIVE_OPS = 4000
#: ... and be nested at most this deep (printers and code generation recurse over it).
MAX_DERIVATIVE_DEPTH = 80
#: Sums up to this size are tidied with ``factor_terms`` (which walks the printed tree).
_TIDY_OPS = 200


def expression_size(expr: sp.Basic, limit: int | None = None) -> tuple[int, int]:
    """``(operations, depth)`` of ``expr`` as printed (a leaf counts 1 and has depth 1), in
    time linear in its distinct sub-expressions (a DAG walk with a memo: the printed size can
    be exponential in them). Stops counting once the size passes ``limit``."""
    sizes: dict[sp.Basic, tuple[int, int]] = {}
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if node in sizes:
            continue
        if done or not node.args:
            parts = [sizes[a] for a in node.args]
            sizes[node] = (1 + sum(p[0] for p in parts), 1 + max((p[1] for p in parts), default=0))
            if limit is not None and sizes[node][0] > limit:
                return sizes[node]
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in sizes)
    return sizes[expr]


@dataclass(frozen=True)
class Term:
    """``diag(diags[0]) @ W_1 @ diag(diags[1]) @ ... @ W_k @ diag(diags[k])``.

    ``weights`` names the matrices ``W_1..W_k`` (parameters); ``diags`` are scalar SymPy
    expressions in the cell's unit values, applied elementwise. ``multiplicative`` is True when
    the path passes through the derivative of a function at a *pre-activation* (docs
    cells-2018-2026.md §2, :func:`pre_activations`); the other terms, weights or not, form the
    additive path.
    """

    diags: tuple[sp.Expr, ...]
    weights: tuple[str, ...]
    multiplicative: bool = False

    @property
    def is_additive(self) -> bool:
        return not self.multiplicative

    def then(self, first: sp.Expr, through_pre_activation: bool = False) -> Term:
        """``diag(first) @ self``; the path becomes multiplicative when ``first`` is the
        derivative of a function at a pre-activation."""
        return Term(
            (first * self.diags[0],) + self.diags[1:],
            self.weights,
            self.multiplicative or through_pre_activation,
        )

    def through(self, weight: str) -> Term:
        """``weight @ self``."""
        return Term((ONE,) + self.diags, (weight,) + self.weights, self.multiplicative)

    def text(self, names: dict[sp.Symbol, sp.Symbol] | None = None) -> str:
        """Plain-text form; ``names`` renames symbols (e.g. ``h_new -> h_t``)."""
        parts: list[str] = []
        for k, dgl in enumerate(self.diags):
            if dgl != ONE:
                shown = dgl.xreplace(names) if names else dgl
                parts.append(f"diag({sp.sstr(shown, order='none')})")
            if k < len(self.weights):
                parts.append(self.weights[k])
        return " @ ".join(parts) if parts else "I"

    def __str__(self) -> str:
        return self.text()


Block = tuple[Term, ...]


def _merge(terms: list[Term]) -> Block:
    """Add terms with the same weight chain and trailing diagonals; drop zeros."""
    merged: dict[tuple[bool, tuple[str, ...], tuple[sp.Expr, ...]], sp.Expr] = {}
    for t in terms:
        key = (t.multiplicative, t.weights, t.diags[1:])
        merged[key] = merged.get(key, sp.S.Zero) + t.diags[0]
    out = []
    order = sorted(merged.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1]))
    for (mult, weights, rest), lead in order:
        if expression_size(lead, _TIDY_OPS)[0] <= _TIDY_OPS:
            lead = sp.factor_terms(lead)
        if lead != 0:
            out.append(Term((lead,) + rest, weights, mult))
    return tuple(out)


def _is_call(expr: sp.Basic) -> bool:
    """A function call: an applied function (``tanh``, ``sigmoid``, ``exp``, ``Abs``, ...) or a
    power with a non-integer exponent (``sqrt``); arithmetic and integer powers are not."""
    if isinstance(expr, sp.Function):
        return True
    return isinstance(expr, sp.Pow) and not expr.exp.is_Integer


def pre_activations(
    expr: sp.Expr, state_dependent: frozenset[str], affine: frozenset[str], vectors: frozenset[str]
) -> list[tuple[sp.Expr, int]]:
    """The ``(function call, argument index)`` pairs of ``expr`` whose argument is a
    *pre-activation* (docs cells-2018-2026.md §2).

    An argument is a pre-activation when it depends on ``s_{t-1}`` through a parameter: it
    holds a state-dependent affine node (``sigmoid(a_f + b)``), or a vector parameter
    multiplies a state-dependent term in it (IndRNN's ``relu(a + u*h)``, a peephole
    ``p*c``). ``state_dependent`` names the vectors that depend on ``s_{t-1}``.
    """
    out: list[tuple[sp.Expr, int]] = []
    seen: set[sp.Expr] = set()
    for call in sp.preorder_traversal(expr):
        if not _is_call(call) or call in seen:
            continue
        seen.add(call)
        positions = range(len(call.args)) if isinstance(call, sp.Function) else (0,)
        for k in positions:
            arg = call.args[k]
            names = {str(s) for s in arg.free_symbols}
            live = names & state_dependent
            if not live:
                continue
            if live & affine or any(
                sp.diff(arg, sp.Symbol(p, real=True), sp.Symbol(v, real=True)) != 0
                for p in names & vectors
                for v in live
            ):
                out.append((call, k))
    return out


def split_partial(
    expr: sp.Expr, sym: sp.Symbol, calls: list[tuple[sp.Expr, int]]
) -> tuple[sp.Expr, sp.Expr]:
    """``d expr / d sym`` as ``(additive, multiplicative)``: the partial with every
    pre-activation argument in ``calls`` held fixed, and the rest, the chain rule through
    those arguments. Their sum is the whole partial derivative."""
    if not calls:
        return sp.diff(expr, sym), sp.S.Zero
    fresh = [sp.Dummy(f"pre{k}", real=True) for k in range(len(calls))]
    by_call: dict[sp.Expr, dict[int, sp.Dummy]] = {}
    for (call, k), p in zip(calls, fresh, strict=True):
        by_call.setdefault(call, {})[k] = p
    frozen = expr.xreplace(
        {
            call: call.func(*(slots.get(k, a) for k, a in enumerate(call.args)))
            for call, slots in by_call.items()
        }
    )
    back = {p: call.args[k] for (call, k), p in zip(calls, fresh, strict=True)}
    additive = sp.diff(frozen, sym).xreplace(back)
    mult = sp.S.Zero
    for (call, k), p in zip(calls, fresh, strict=True):
        inner = sp.diff(call.args[k], sym)
        if inner != 0:
            mult += sp.diff(frozen, p).xreplace(back) * inner
    return additive, mult


def own_value_rules(cell: Cell) -> dict[sp.Expr, sp.Symbol]:
    """``{tanh(a): h_new, sigmoid(a_f): f, ...}``: function applications named by their node."""
    return {
        node.expr: cell.symbol(node.name)
        for node in cell.nodes
        if isinstance(node, Elementwise) and isinstance(node.expr, sp.Function)
    }


@dataclass(frozen=True, repr=False)
class BlockJacobian:
    """The state Jacobian as blocks of :class:`Term` sums.

    ``blocks[i][j]`` is ``d s_t[i] / d s_{t-1}[j]`` for state vectors ``i, j`` (numerator
    layout). Use :meth:`paths` to split it into its additive and multiplicative parts.
    """

    cell: Cell
    blocks: tuple[tuple[Block, ...], ...]
    path: str = "full"

    @property
    def state(self) -> tuple[str, ...]:
        return self.cell.state

    def block(self, row: str, col: str) -> Block:
        """The block ``d row_t / d col_{t-1}`` by state-vector names."""
        return self.blocks[self.state.index(row)][self.state.index(col)]

    def terms(self) -> Iterator[tuple[int, int, Term]]:
        for i, row in enumerate(self.blocks):
            for j, blk in enumerate(row):
                for t in blk:
                    yield i, j, t

    @property
    def weights(self) -> frozenset[str]:
        return frozenset(w for _, _, t in self.terms() for w in t.weights)

    def _select(self, additive: bool, path: str) -> BlockJacobian:
        blocks = tuple(
            tuple(tuple(t for t in blk if t.is_additive == additive) for blk in row)
            for row in self.blocks
        )
        return BlockJacobian(self.cell, blocks, path)

    def additive(self) -> BlockJacobian:
        """The terms through no function derivative at a pre-activation (``diag(f_t)`` in the
        LSTM cell block, ``I + eps A`` of the Lipschitz RNN; docs cells-2018-2026.md §2)."""
        return self._select(True, "additive")

    def multiplicative(self) -> BlockJacobian:
        """The terms through at least one function derivative at a pre-activation (IndRNN's
        whole chain ``diag(relu'(a + u h) u)``, every path through a gate's pre-activation)."""
        return self._select(False, "multiplicative")

    def paths(self) -> JacobianPaths:
        """The split ``J = additive + multiplicative``."""
        return JacobianPaths(self.additive(), self.multiplicative())

    def is_zero(self) -> bool:
        return not any(True for _ in self.terms())

    def __str__(self) -> str:
        names = text_names(self.cell)
        lines = []
        for i, row in enumerate(self.blocks):
            for j, blk in enumerate(row):
                body = " + ".join(t.text(names) for t in blk) if blk else "0"
                lines.append(f"d{self.state[i]}_t/d{self.state[j]}_{{t-1}} = {body}")
        return "\n".join(lines)

    def latex(self) -> str:
        """LaTeX as a paper writes it, e.g. ``\\operatorname{diag}(1 - h_t^2) W_{hh}``."""
        return jacobian_latex(self)

    def mathml(self) -> str:
        """A complete ``<math display="block">`` element: left-hand side, presentation MathML,
        and the LaTeX as a ``<semantics>`` annotation; valid XML (numeric character
        references only)."""
        return jacobian_mathml_element(self)

    def __repr__(self) -> str:
        n_terms = sum(1 for _ in self.terms())
        m = len(self.state)
        weights = ", ".join(sorted(self.weights)) or "none"
        return (
            f"<BlockJacobian of {self.cell.name!r} ({self.path}): {m}x{m} blocks over "
            f"({', '.join(self.state)}), {n_terms} terms; weights: {weights}>"
        )

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """Jupyter: plain text, LaTeX (MathJax) and MathML (rendered natively in HTML)."""
        return {
            "text/plain": str(self),
            "text/latex": self._repr_latex_(),
            "text/html": self.mathml(),
        }


@dataclass(frozen=True, repr=False)
class JacobianPaths:
    """A Jacobian split into its additive and multiplicative parts."""

    additive: BlockJacobian
    multiplicative: BlockJacobian

    def __str__(self) -> str:
        add = str(self.additive) if not self.additive.is_zero() else "0"
        mul = str(self.multiplicative) if not self.multiplicative.is_zero() else "0"
        return f"additive path:\n{add}\nmultiplicative path:\n{mul}"

    def latex(self) -> str:
        return (
            r"J^{\mathrm{add}} = "
            + jacobian_latex(self.additive, bare=True)
            + r",\quad J^{\mathrm{mul}} = "
            + jacobian_latex(self.multiplicative, bare=True)
        )

    def __repr__(self) -> str:
        return f"<JacobianPaths of {self.additive.cell.name!r}: additive + multiplicative>"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """Jupyter: plain text and LaTeX."""
        return {"text/plain": str(self), "text/latex": self._repr_latex_()}


@lru_cache(maxsize=256)
def state_jacobian(cell: Cell) -> BlockJacobian:
    """Derive ``ds_t/ds_{t-1}`` for ``cell`` by the chain rule over its graph (any ``n``).

    Examples:
        >>> from gradflow.cells import get_cell
        >>> J = state_jacobian(get_cell("lstm"))
        >>> print(J.block("c", "c")[0])
        diag(f)
    """
    rules = own_value_rules(cell)
    deriv: dict[str, dict[str, list[Term]]] = {s: {s: [Term((ONE,), ())]} for s in cell.state}
    affine = frozenset(nd.name for nd in cell.nodes if isinstance(nd, Affine))
    vectors = frozenset(p.name for p in cell.iter_params("vector"))
    for node in cell.nodes:
        acc: dict[str, list[Term]] = {}
        if isinstance(node, Affine):
            for weight, src in node.terms:
                for s, terms in deriv.get(src, {}).items():
                    acc.setdefault(s, []).extend(t.through(weight) for t in terms)
        else:
            live = frozenset(k for k, v in deriv.items() if v)
            calls = pre_activations(node.expr, live, affine, vectors)
            for sym in sorted(node.expr.free_symbols, key=str):
                upstream = deriv.get(str(sym))
                if not upstream:
                    continue
                parts = split_partial(node.expr, sym, calls)
                for part, mult in zip(parts, (False, True), strict=True):
                    part = part.xreplace(rules)
                    if part == 0:
                        continue
                    for s, terms in upstream.items():
                        acc.setdefault(s, []).extend(t.then(part, mult) for t in terms)
        label = f"equation {node.name!r}"
        if sum(len(ts) for ts in acc.values()) > MAX_TERMS:
            raise cell.error_at(
                f"its derivative has more than {MAX_TERMS} terms; simplify the cell (fewer "
                "chained affine nodes)",
                node.name,
                label,
            )
        deriv[node.name] = {s: list(_merge(ts)) for s, ts in acc.items()}
        size = depth = 0
        for ts in deriv[node.name].values():
            for t in ts:
                for dg in t.diags:
                    ops, nested = expression_size(dg, MAX_DERIVATIVE_OPS)
                    size, depth = size + ops, max(depth, nested)
        if depth > MAX_DERIVATIVE_DEPTH:
            raise cell.error_at(
                f"its derivative is nested more than {MAX_DERIVATIVE_DEPTH} levels deep; the "
                "equations above it compound: give fewer equations in a chain",
                node.name,
                label,
            )
        if size > MAX_DERIVATIVE_OPS:
            raise cell.error_at(
                f"its derivative has more than {MAX_DERIVATIVE_OPS} operations; the equations "
                "above it compound (each one multiplies the derivatives of those it uses): "
                "give fewer equations in a chain",
                node.name,
                label,
            )
    updates = dict(cell.update)
    blocks = tuple(
        tuple(tuple(deriv[updates[row]].get(col, ())) for col in cell.state) for row in cell.state
    )
    return BlockJacobian(cell, blocks)

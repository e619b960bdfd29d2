r"""Code generation: printable, batched NumPy/CuPy kernels from a cell's SymPy derivation.

:func:`compile_cell` turns a :class:`~gradflow.cells.graph.Cell` and its derived
:class:`~gradflow.symbolic.jacobian.BlockJacobian` into Python source that names only the
array namespace ``xp`` (the way SymPy's ``CuPyPrinter`` switches backends with one
attribute), then executes that source once per ``(cell, path, backend)``. The kernels:

``step(s, u, q)``
    one time step for a batch: ``s`` is ``(..., m)``, ``u`` the input projection of that step
    (:meth:`Kernels.input_projection`), ``q`` the packed parameters. Returns the new state and
    the unit values the Jacobian needs.
``factors(V, q, shape)``
    every diagonal of every Jacobian term, evaluated at once for a whole chunk of steps.
``apply(P, F, q)``
    ``P @ J_t`` for a batch of row blocks ``P`` of shape ``(B, r, m)`` without building
    ``J_t`` when a weight is shared (DESIGN decision 5): ``diag(v) @ W`` becomes the column
    scaling ``P * v[..., None, :]`` followed by one stacked product with ``W``; a column block
    with several weights is formed once per step (``sum_k v_k[:, None] * W_k``, O(n^2)) and
    multiplied, so an LSTM needs two ``(m x n)(n x n)`` products instead of one dense
    ``(m x m)(m x m)``.
``apply_vec(P, F, q)``
    the same product for a few rows (vector-Jacobian products): only shared-weight products.
``jacobian(F, q)``
    the materialised ``(..., m, m)`` Jacobians, for spectra and checks.

``print(compile_cell(get_cell("rnn")).source)`` shows exactly what runs.

Examples:
    >>> from gradflow.cells import get_cell
    >>> src = compile_cell(get_cell("rnn")).source
    >>> "numpy" in src, "xp.tanh" in src
    (False, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import (
    NumPyPrinter,
    _known_constants_numpy,
    _known_functions_numpy,
)

from . import kernel_cache
from .backend import array_namespace
from .cells.functions import sigmoid
from .cells.graph import Affine, Cell, Elementwise
from .errors import CellError, FactorError, InputsError
from .symbolic.jacobian import BlockJacobian, Term, state_jacobian


class sech2(sp.Function):  # type: ignore[misc]  # noqa: N801 - SymPy ships no types
    r"""``sech(x)^2 = 1 - tanh(x)^2``, the derivative of tanh, in a form exact in both tails.

    Used only by the code generator (see :func:`tail_exact`); printed as ``_sech2(x)``.
    """

    nargs = 1


#: Helpers every generated module defines before its kernels. ``_vm(v, w)`` is ``v @ w`` for
#: grouped weights (:meth:`Kernels.pack_draws`): ``v`` is ``(..., B, n)``, ``w`` is ``(D, n, k)``
#: and the ``B / D`` consecutive sequences of group ``g`` take ``w[g]`` (one product per group).
#: The other two are exact in the tails:
#: ``0.5*(1 + tanh(x/2))`` is exactly 0 below x = -37 and ``1/(1 + exp(-x))`` overflows below
#: -709, while ``exp(-|x|)`` is evaluated once and never overflows; ``1 - tanh(x)**2`` is 0 as
#: soon as tanh(x) rounds to +-1 (|x| > 19), ``4 e/(1 + e)^2`` with ``e = exp(-2|x|)`` is not.
HELPERS = """def _sigmoid(x):
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e) / (1.0 + e)


def _sech2(x):
    e = xp.exp(-2.0 * xp.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


def _vm(v, w):
    lead, b = v.shape[:-2], v.shape[-2]
    g = v.reshape(lead + (w.shape[0], b // w.shape[0], v.shape[-1])) @ w
    return g.reshape(lead + (b, w.shape[-1]))

"""


class XpPrinter(NumPyPrinter):  # type: ignore[misc]  # SymPy ships no type information
    """NumPy printer that names the array namespace ``xp`` (NumPy or CuPy)."""

    _module = "xp"
    _kf = {k: "xp." + v for k, v in _known_functions_numpy.items()}
    _kc = {k: "xp." + v for k, v in _known_constants_numpy.items()}

    def _print_sigmoid(self, expr: sp.Expr) -> str:
        return f"_sigmoid({self._print(expr.args[0])})"  # see HELPERS

    def _print_sech2(self, expr: sp.Expr) -> str:
        return f"_sech2({self._print(expr.args[0])})"  # see HELPERS

    def _print_relu(self, expr: sp.Expr) -> str:
        return f"xp.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_softplus(self, expr: sp.Expr) -> str:
        return f"xp.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_maximum(self, expr: sp.Expr) -> str:
        a, b = (self._print(x) for x in expr.args)
        return f"xp.maximum({a}, {b})"

    def _print_clip(self, expr: sp.Expr) -> str:
        x, lo, hi = (self._print(v) for v in expr.args)
        return f"xp.clip({x}, {lo}, {hi})"

    def _print_hard_sigmoid(self, expr: sp.Expr) -> str:
        return f"xp.clip({self._print(expr.args[0])} / 6.0 + 0.5, 0.0, 1.0)"

    def _print_Heaviside(self, expr: sp.Expr) -> str:
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"xp.heaviside({self._print(expr.args[0])}, {float(h0)!r})"


def print_expr(expr: sp.Expr) -> str:
    """Python source of a scalar expression, in the ``xp`` namespace."""
    return str(XpPrinter().doprint(expr))


def tail_exact(cell: Cell, expr: sp.Expr) -> sp.Expr:
    """``expr`` with complements of gate values written so that they stay exact in the tails.

    The derivation writes derivatives in the cell's own values (``f (1 - f)``, ``1 - g^2``);
    once ``f`` rounds to 1, ``1 - f`` is 0 although ``sigmoid(-a_f)`` is, say, 1e-30. This
    rewrites, by the identities ``1 - sigmoid(a) = sigmoid(-a)`` and
    ``1 - tanh(a)^2 = sech(a)^2``, every ``1 - f`` of a sigmoid node ``f = sigmoid(a)`` and every
    ``1 - g^2`` of a tanh node ``g = tanh(a)`` (or a literal ``tanh(a)``) in terms of the
    pre-activation ``a``.

    Examples:
        >>> from gradflow.cells import get_cell
        >>> tail_exact(get_cell("gru"), sp.Symbol("z", real=True) * (1 - sp.Symbol("z", real=True)))
        z*sigmoid(-a_z)
    """
    gates: dict[sp.Expr, sp.Expr] = {}
    tanhs: dict[sp.Expr, sp.Expr] = {}
    for nd in cell.nodes:
        if isinstance(nd, Elementwise) and isinstance(nd.expr, sigmoid | sp.tanh):
            table = gates if isinstance(nd.expr, sigmoid) else tanhs
            table[cell.symbol(nd.name)] = nd.expr.args[0]

    def rewrite(e: sp.Expr) -> sp.Expr:
        if not isinstance(e, sp.Add) or len(e.args) != 2 or sp.S.One not in e.args:
            return e
        (rest,) = (a for a in e.args if a != 1)
        neg = -rest
        if neg in gates:
            return sigmoid(-gates[neg])
        if isinstance(neg, sp.Pow) and neg.exp == 2:
            if neg.base in tanhs:
                return sech2(tanhs[neg.base])
            if isinstance(neg.base, sp.tanh):
                return sech2(neg.base.args[0])
        return e

    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Layout:
    """How parameters are packed for the kernels (built once, see :meth:`Kernels.pack`)."""

    affine: tuple[str, ...]  # affine node names, the slots of the input projection
    sources: dict[str, tuple[str, ...]]  # non-input source -> affine nodes it feeds, in order
    needed: tuple[str, ...]  # vectors the Jacobian factors read
    diags: tuple[sp.Expr, ...]  # distinct non-constant diagonal expressions
    #: the size symbol of each diagonal (``n``, or ``p`` for cells with a second size)
    diag_sizes: tuple[str, ...] = ()


def block_spans(cell: Cell, names: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """``(start, stop)`` code of consecutive blocks of ``names`` (``k*n:(k+1)*n`` when every
    vector has size ``n``; sums of ``n`` and ``p`` for a cell with a second size)."""
    if not cell.sizes:
        return [(f"{k}*n", f"{k + 1}*n") for k in range(len(names))]
    out: list[tuple[str, str]] = []
    parts: list[str] = []
    for name in names:
        start = " + ".join(parts) or "0"
        parts.append(cell.size_of(name))
        out.append((start, " + ".join(parts)))
    return out


def size_lines(cell: Cell) -> list[str]:
    """``p = q["p"]`` for a cell with a second size (nothing otherwise: same source as ever)."""
    return ['    p = q["p"]'] if cell.sizes else []


def term_sizes(cell: Cell, row: str, term: Term) -> list[str]:
    """The size symbol of each diagonal of ``term`` in the block of state ``row``:
    ``diags[0]`` lives at the row, ``diags[k]`` at the columns of ``weights[k-1]``."""
    out = [cell.size_of(row)]
    for w in term.weights:
        out.append(cell.weight_shape(w)[1])
    return out


def _var(name: str) -> str:
    return f"v_{name}"


def _layout(cell: Cell, jac: BlockJacobian, needed: tuple[str, ...] | None = None) -> Layout:
    """The kernels' :class:`Layout`; ``needed`` (the vectors the factors read), when given,
    comes with a cached source (:func:`_kernel_source`) instead of from the factors' free
    symbols."""
    affine = tuple(nd.name for nd in cell.nodes if isinstance(nd, Affine))
    sources: dict[str, list[str]] = {}
    for nd in cell.nodes:
        if isinstance(nd, Affine):
            for _, src in nd.terms:
                if src != cell.input and nd.name not in sources.setdefault(src, []):
                    sources[src].append(nd.name)
    diags: list[sp.Expr] = []
    sizes: dict[sp.Expr, str] = {}
    for i, _, t in jac.terms():
        for dg, size in zip(t.diags, term_sizes(cell, cell.state[i], t), strict=True):
            if dg != 1 and dg not in diags:
                diags.append(dg)
            if dg != 1 and sizes.setdefault(dg, size) != size:
                raise CellError(
                    f"cell {cell.name!r}: the Jacobian factor {dg} appears at sizes "
                    f"{sizes[dg]} and {size}"
                )
    if needed is None:
        vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
        shown = [tail_exact(cell, dg) for dg in diags]
        needed = tuple(sorted({str(s) for dg in shown for s in dg.free_symbols} & vectors))
    return Layout(
        affine,
        {k: tuple(v) for k, v in sources.items()},
        needed,
        tuple(diags),
        tuple(sizes[dg] for dg in diags),
    )


def _rename(cell: Cell, expr: sp.Expr) -> sp.Expr:
    vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
    return expr.xreplace(
        {s: sp.Symbol(_var(str(s)) if str(s) in vectors else f"p_{s}") for s in expr.free_symbols}
    )


def _param_lines(cell: Cell, exprs: list[sp.Expr], indent: str) -> list[str]:
    vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
    names = sorted({str(s) for e in exprs for s in e.free_symbols} - vectors)
    return [f'{indent}p_{nm} = q["V:{nm}"]' for nm in names]


def _gen_step(cell: Cell, lay: Layout, grouped: bool = False) -> list[str]:
    """``step``, or with ``grouped`` ``step_grouped``: the same step for grouped weights, whose
    recurrent projections ``v @ U`` take one matrix per group of sequences (``_vm``)."""
    name = "step_grouped" if grouped else "step"
    L = [f"def {name}(s, u, q):", '    n = q["n"]', *size_lines(cell)]
    for st, (a, b) in zip(cell.state, block_spans(cell, cell.state), strict=True):
        L.append(f"    {_var(st)} = s[..., {a}:{b}]")
    slots = dict(zip(lay.affine, block_spans(cell, lay.affine), strict=True))
    exprs = [nd.expr for nd in cell.nodes if not isinstance(nd, Affine)]
    L += _param_lines(cell, exprs, "    ")
    vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
    projected: set[str] = set()
    for nd in cell.nodes:
        if isinstance(nd, Affine):
            a, b = slots[nd.name]
            parts = [f"u[..., {a}:{b}]"]
            for _, src in nd.terms:
                if src == cell.input:
                    continue
                if src not in projected:
                    if grouped:
                        L.append(f'    r_{src} = _vm({_var(src)}, q["U:{src}"])')
                    else:
                        L.append(f'    r_{src} = {_var(src)} @ q["U:{src}"]')
                    projected.add(src)
                j = lay.sources[src].index(nd.name)
                a, b = block_spans(cell, lay.sources[src])[j]
                parts.append(f"r_{src}[..., {a}:{b}]")
            L.append(f"    {_var(nd.name)} = " + " + ".join(parts))
        elif {str(x) for x in nd.expr.free_symbols} & vectors:
            L.append(f"    {_var(nd.name)} = {print_expr(_rename(cell, nd.expr))}")
        else:  # parameters and numbers alone: give the value the batch axis of the state
            L.append(
                f"    {_var(nd.name)} = xp.broadcast_to({print_expr(_rename(cell, nd.expr))}, "
                f"s.shape[:-1] + ({cell.size_of(nd.name)},))"
            )
    upd = dict(cell.update)
    new = ", ".join(_var(upd[st]) for st in cell.state)
    vals = "".join(f"{_var(v)}, " for v in lay.needed)
    joined = new if len(cell.state) == 1 else f"xp.concatenate(({new}), axis=-1)"
    L.append(f"    return {joined}, ({vals})")
    return L


def _gen_factors(cell: Cell, lay: Layout) -> list[str]:
    L = ["def factors(V, q, shape):"]
    if lay.needed:
        L.append("    " + "".join(f"{_var(v)}, " for v in lay.needed) + "= V")
    exact = [tail_exact(cell, d) for d in lay.diags]
    exprs = [_rename(cell, d) for d in exact]
    L += _param_lines(cell, exact, "    ")
    # Common subexpressions (tanh(c_t) appears in four LSTM factors) are computed once.
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t_"), order="none")
    L += [f"    {sym} = {print_expr(val)}" for sym, val in temps]
    shapes = [
        "shape" if size == "n" else f'shape[:-1] + (q["{size}"],)'
        for size in (lay.diag_sizes or ("n",) * len(reduced))
    ]
    body = "".join(
        f"xp.broadcast_to({print_expr(e)}, {shape}), "
        for e, shape in zip(reduced, shapes, strict=True)
    )
    if any(_may_be_unbounded(d) for d in exact):
        # 0/0 at a kink is refused by _finite with one line, not warned about first
        L.append(f"    return _finite(({body}))")
        L = L[:1] + ["    with _quiet():"] + ["    " + line for line in L[1:]]
    else:
        L.append(f"    return ({body})")
    return L


def _may_be_unbounded(expr: sp.Expr) -> bool:
    """Whether a factor can be infinite or NaN at a finite state (``1/(2 sqrt(a))`` at a = 0,
    ``1/a`` from ``log(a)``): a negative power or a log. Factors of smooth cells never are."""
    return any(
        (isinstance(e, sp.Pow) and e.exp.is_negative) or isinstance(e, sp.log)
        for e in sp.preorder_traversal(expr)
    )


def _finite_factors(xp: ModuleType, texts: tuple[str, ...], F: tuple[Any, ...]) -> tuple[Any, ...]:
    """``F`` if every factor is finite; else a one-line :class:`NumericalError`.

    Subgradient convention: at a kink the derivative takes a value of the subdifferential,
    ``Heaviside(0) = 0`` for relu and ``sign(0) = 0`` for abs. A derivative that is unbounded
    at a point (``sqrt`` or ``log`` at 0, a division by a value that reached 0) has no such
    value: it is refused here, naming the factor and where in the chunk it happened.
    """
    for text, f in zip(texts, F, strict=True):
        bad = ~xp.isfinite(f)
        if bool(bad.any()):
            where = tuple(int(i) for i in np.argwhere(np.asarray(_to_numpy(bad)))[0])
            raise FactorError(
                f"the Jacobian factor diag({text}) is not finite at (step in chunk, sequence, "
                f"unit) = {where}: the cell's derivative is unbounded there (sqrt or log at 0?)",
                text,
                where,
            )
    return F


def _to_numpy(a: Any) -> Any:
    return a.get() if hasattr(a, "get") else a


def _chain(term: Term, lay: Layout, start: str, memo: dict[str, str], lines: list[str]) -> str:
    """``start @ W1 * d1 @ W2 ...`` for the part of a term after its leading diagonal.

    Products shared by several terms (``(P * d) @ W_hn`` in the reset-before GRU) are bound to
    a temporary once: ``memo`` maps code to its variable, ``lines`` receives the bindings.
    """
    code = start
    for k, w in enumerate(term.weights):
        product = f'({code}) @ q["W:{w}"]'
        if product not in memo:
            memo[product] = f"t{len(memo)}"
            lines.append(f"    {memo[product]} = {product}")
        code = memo[product]
        dg = term.diags[k + 1]
        if dg != 1:
            code = f"({code} * F[{lay.diags.index(dg)}][..., None, :])"
    return code


def _scaled(block_var: str, dg: sp.Expr, lay: Layout) -> str:
    if dg == 1:
        return block_var
    return f"{block_var} * F[{lay.diags.index(dg)}][..., None, :]"


def _materialised(
    var: str, terms: list[Term], diagonal: list[Term], lay: Layout, size: str = "n"
) -> tuple[list[str], bool]:
    """Lines forming ``var = sum_t diag(d_t) W_t`` (+ the block's diagonal terms) in place,
    and whether the diagonal terms went into ``var`` (else the caller adds them as ``P_i * d``).

    Terms with a row scaling come first, so that the first sum already has the batch shape;
    the rest accumulate into it with ``+=`` (fewer fresh n x n temporaries per step, which
    glibc may hand back to the system and page-fault in again). A diagonal term of the same
    row block (``P_i * d`` beside ``P_i @ G``, e.g. the GRU's ``z``) is added to ``G``'s
    diagonal instead of costing a full pass over ``P_i``; that needs ``G`` batched, i.e. a
    scaled term (otherwise the terms are summed as they are and the diagonal stays outside).
    """
    ordered = sorted(terms, key=lambda t: t.diags[0] == 1)

    def term(t: Term) -> str:
        w = f'q["W:{t.weights[0]}"]'
        return w if t.diags[0] == 1 else f"F[{lay.diags.index(t.diags[0])}][..., :, None] * {w}"

    if ordered[0].diags[0] == 1:  # no row scaling at all: a plain sum of weights
        return [f"    {var} = " + " + ".join(term(t) for t in ordered)], False
    lines = [f"    {var} = " + " + ".join(term(t) for t in ordered[:2])]
    lines += [f"    {var} += {term(t)}" for t in ordered[2:]]
    if diagonal:
        lines.append(f"    d = xp.arange({size})")
        for t in diagonal:
            dg = "1.0" if t.diags[0] == 1 else f"F[{lay.diags.index(t.diags[0])}]"
            lines.append(f"    {var}[..., d, d] += {dg}")
    return lines, True


def _through_projection(
    weighted: list[tuple[int, Term]],
    lay: Layout,
    j: int,
    memo: dict[str, str],
    lines: list[str],
    parts: list[str],
) -> list[tuple[int, Term]]:
    """``P_i @ W_a @ (sum_k diag(d_k) W_k)`` for the terms ``W_a diag(d_k) W_k`` of row block
    ``i`` that share ``W_a`` (the projected LSTM's ``W_hr``): the sum is formed once per step
    (``O(n p)``), so the block costs two products instead of one per term. Returns the terms
    left for the other rules."""
    groups: dict[tuple[int, str], list[Term]] = {}
    for i, t in weighted:
        if len(t.weights) == 2 and t.diags[0] == 1 and t.diags[2] == 1 and t.diags[1] != 1:
            groups.setdefault((i, t.weights[0]), []).append(t)
    done: set[int] = set()
    for g, ((i, first), terms) in enumerate(groups.items()):
        if len(terms) < 2:
            continue
        var = f"H{i}{j}{g}"
        body = " + ".join(
            f'F[{lay.diags.index(t.diags[1])}][..., :, None] * q["W:{t.weights[1]}"]' for t in terms
        )
        lines.append(f"    {var} = {body}")
        product = f'(P{i}) @ q["W:{first}"]'
        if product not in memo:
            memo[product] = f"t{len(memo)}"
            lines.append(f"    {memo[product]} = {product}")
        parts.append(f"{memo[product]} @ {var}")
        done |= {id(t) for t in terms}
    return [(i, t) for i, t in weighted if id(t) not in done]


def _gen_apply(
    cell: Cell, jac: BlockJacobian, lay: Layout, name: str, materialise: bool
) -> list[str]:
    m = len(cell.state)
    L = [f"def {name}(P, F, q):", '    n = q["n"]', *size_lines(cell)]
    memo: dict[str, str] = {}
    for i, (a, b) in enumerate(block_spans(cell, cell.state)):
        L.append(f"    P{i} = P[..., {a}:{b}]")
    outs = []
    for j in range(m):
        parts: list[str] = []
        column = [(i, t) for i in range(m) for t in jac.blocks[i][j]]
        weighted = [(i, t) for i, t in column if t.weights]
        if materialise and cell.sizes:  # a projection ahead of several weights (lstm-proj)
            weighted = _through_projection(weighted, lay, j, memo, L, parts)
        single = all(len(t.weights) == 1 and t.diags[1] == 1 for _, t in weighted)
        n_weights = len({t.weights for _, t in weighted})
        folded: set[int] = set()
        if materialise and single and n_weights > 1:
            # Form each row block's n x n Jacobian once (O(n^2)), then one product per row block.
            for i in sorted({i for i, _ in weighted}):
                lines, diagonal_in = _materialised(
                    f"G{i}{j}",
                    [t for k, t in weighted if k == i],
                    [t for k, t in column if k == i and not t.weights],
                    lay,
                    cell.size_of(cell.state[i]),
                )
                L += lines
                if diagonal_in:
                    folded.add(i)
                parts.append(f"P{i} @ G{i}{j}")
        else:
            groups: dict[tuple[object, ...], list[tuple[int, Term]]] = {}
            for i, t in weighted:
                groups.setdefault((t.weights, t.diags[1:]), []).append((i, t))
            for members in groups.values():
                lead = " + ".join(_scaled(f"P{i}", t.diags[0], lay) for i, t in members)
                parts.append(_chain(members[0][1], lay, lead, memo, L))
        for i, t in column:
            if not t.weights and i not in folded:
                parts.append(_scaled(f"P{i}", t.diags[0], lay))
        out = f"o{j}"
        L.append(f"    {out} = " + (" + ".join(parts) if parts else f"xp.zeros_like(P{j})"))
        outs.append(out)
    joined = outs[0] if m == 1 else f"xp.concatenate(({', '.join(outs)}), axis=-1)"
    L.append(f"    return {joined}")
    return L


def _gen_jacobian(cell: Cell, jac: BlockJacobian, lay: Layout) -> list[str]:
    m = len(cell.state)
    L = ["def jacobian(F, q, shape):", '    n = q["n"]', *size_lines(cell), "    eye = xp.eye(n)"]
    rows = []
    for i in range(m):
        cols = []
        for j in range(m):
            parts = []
            for t in jac.blocks[i][j]:
                d0 = f"F[{lay.diags.index(t.diags[0])}][..., :, None]" if t.diags[0] != 1 else "1.0"
                if not t.weights:
                    size = cell.size_of(cell.state[i])
                    parts.append(f"{d0} * eye" if size == "n" else f"{d0} * xp.eye({size})")
                    continue
                mat = f'q["W:{t.weights[0]}"]'
                for k in range(1, len(t.weights) + 1):
                    dg = t.diags[k]
                    if dg != 1:
                        mat = f"({mat} * F[{lay.diags.index(dg)}][..., None, :])"
                    if k < len(t.weights):
                        mat = f'({mat}) @ q["W:{t.weights[k]}"]'
                parts.append(f"{d0} * {mat}")
            blk = f"J{i}{j}"
            body = " + ".join(parts) if parts else "0.0"
            rc = f"{cell.size_of(cell.state[i])}, {cell.size_of(cell.state[j])}"
            L.append(f"    {blk} = xp.broadcast_to({body}, shape + ({rc}))")
            cols.append(blk)
        rows.append(f"xp.concatenate(({', '.join(cols)},), axis=-1)")
    L.append(f"    return xp.concatenate(({', '.join(rows)},), axis=-2)")
    return L


@dataclass(frozen=True)
class Kernels:
    """Compiled kernels of one cell, one Jacobian path and one array namespace."""

    cell: Cell
    path: str
    xp: ModuleType
    layout: Layout
    source: str
    step: Callable[..., Any]
    factors: Callable[..., Any]
    apply: Callable[..., Any]
    apply_vec: Callable[..., Any]
    jacobian: Callable[..., Any]
    #: ``step`` for grouped weights (:meth:`pack_draws`); :meth:`grouped` puts it in place
    step_grouped: Callable[..., Any] | None = None

    def grouped(self) -> Kernels:
        """These kernels for parameters packed by :meth:`pack_draws`: ``step`` is
        ``step_grouped``; every other kernel broadcasts over per-sequence weights as it is."""
        assert self.step_grouped is not None
        return replace(self, step=self.step_grouped)

    def pack_draws(
        self, params: Mapping[str, Any], batch: int, dtype: Any = np.float64
    ) -> dict[str, Any]:
        """Grouped parameters: every array of ``params`` has a leading axis ``D`` (one set per
        weight draw) and the batch of ``batch`` sequences is ``D`` groups of ``batch / D``
        consecutive sequences, group ``g`` taking draw ``g``.

        Each draw is packed as by :meth:`pack`; the input and recurrent projections
        (``U:x``, ``U:src``) are stacked as ``(D, rows, cols)`` and applied one group at a
        time (``_vm`` in the kernels' source); every other entry (weights ``W:``, vectors
        ``V:``, the summed bias ``b:x``) is repeated to one copy per sequence, ``(batch, ...)``,
        so that ``apply``, ``factors`` and ``jacobian`` broadcast over it exactly as over one
        shared weight (a batched ``(B, r, n) @ (B, n, n)`` product instead of
        ``(B, r, n) @ (n, n)``). Memory: ``batch`` copies of the weights.
        """
        names = [p.name for p in self.cell.parameters]
        draws = int(np.shape(params[names[0]])[0])
        packs = [
            self.pack({k: np.asarray(params[k])[i] for k in names}, dtype) for i in range(draws)
        ]
        group = batch // draws
        xp = self.xp
        q: dict[str, Any] = {"draws": draws}
        for key, value in packs[0].items():
            if not isinstance(key, str) or ":" not in key:  # sizes: the same in every draw
                q[key] = value
                continue
            stacked = xp.stack([pk[key] for pk in packs])
            q[key] = stacked if key.startswith("U:") else xp.repeat(stacked, group, axis=0)
        return q

    def pack(self, params: Mapping[str, Any], dtype: Any = np.float64) -> dict[str, Any]:
        """Parameters in the kernels' layout, on the kernels' backend.

        ``U:src`` stacks the transposed weights applied to ``src`` (one product per source per
        step), ``U:x``/``b:x`` the input weights and summed biases of every affine node.
        """
        xp, cell = self.xp, self.cell
        if not cell.parameters:
            raise CellError(f"cell {cell.name!r} has no parameters to infer n from")
        n = int(np.shape(params[cell.parameters[0].name])[0])  # every parameter has n rows
        proj = None
        if cell.sizes:  # ... except those of a second size
            n, proj = cell.size_values(params)
        params = cell.with_matrices(params, n)  # matrix definitions (F4) by value
        d = 0
        for nd in cell.nodes:
            if isinstance(nd, Affine):
                for w, src in nd.terms:
                    if src == cell.input:
                        d = int(np.shape(params[w])[1])
        q: dict[str, Any] = {"n": n, "d": d}
        if proj is not None:
            q["p"] = proj
        width = {"n": n, "p": proj if proj is not None else n}
        starts = np.cumsum([0] + [width[cell.size_of(a)] for a in self.layout.affine])

        def conv(a: Any) -> Any:
            return xp.asarray(np.asarray(a, dtype=dtype))

        ux = np.zeros((d, int(starts[-1])), dtype=dtype)
        bx = np.zeros(int(starts[-1]), dtype=dtype)
        for k, name in enumerate(self.layout.affine):
            nd = cell.node_map[name]
            assert isinstance(nd, Affine)
            a, b = int(starts[k]), int(starts[k + 1])
            for w, src in nd.terms:
                if src == cell.input:
                    ux[:, a:b] += np.asarray(params[w], dtype=dtype).T
            for bias in nd.biases:
                bx[a:b] += np.asarray(params[bias], dtype=dtype)
        q["U:x"], q["b:x"] = conv(ux), conv(bx)
        for src, nodes in self.layout.sources.items():
            blocks = []
            for name in nodes:
                nd = cell.node_map[name]
                assert isinstance(nd, Affine)
                total = sum(np.asarray(params[w], dtype=dtype) for w, s in nd.terms if s == src)
                blocks.append(np.asarray(total).T)
            q[f"U:{src}"] = conv(np.concatenate(blocks, axis=1))
        for p in cell.parameters:
            if p.kind == "weight":
                q[f"W:{p.name}"] = conv(params[p.name])
            elif p.kind == "vector":
                q[f"V:{p.name}"] = conv(params[p.name])
        for mat in cell.matrices:
            q[f"W:{mat.name}"] = conv(params[mat.name])
        return q

    def input_projection(self, x: Any, q: Mapping[str, Any]) -> Any:
        """``x @ U:x + b:x`` for any leading shape, e.g. a whole chunk ``(K, B, d)`` at once.

        The bias is added in place: a chunk's projection is megabytes, and a second fresh
        array of that size costs its page faults again."""
        if x.shape[-1] != q["U:x"].shape[-2] and self.cell.matrices:
            raise InputsError(
                f"cell {self.cell.name!r} applies a square matrix (I or a matrix definition) "
                f"to its input, so the input size d must be the hidden size "
                f"{q['U:x'].shape[-2]}; got d = {x.shape[-1]}"
            )
        u = x @ q["U:x"] if q["U:x"].ndim == 2 else self._grouped_projection(x, q["U:x"])
        u += q["b:x"]
        return u

    def _grouped_projection(self, x: Any, w: Any) -> Any:
        """``x @ U:x`` with one ``(d, k)`` matrix per group of sequences (:meth:`pack_draws`):
        ``x`` is ``(..., B, d)``, ``w`` is ``(D, d, k)``."""
        lead, b = x.shape[:-2], x.shape[-2]
        g = x.reshape(lead + (w.shape[0], b // w.shape[0], x.shape[-1])) @ w
        return g.reshape(lead + (b, w.shape[-1]))


def generate_source(cell: Cell, jac: BlockJacobian) -> tuple[str, Layout]:
    """The Python source of every kernel for ``cell`` and Jacobian ``jac``."""
    lay = _layout(cell, jac)
    # No user text goes into the source, docstrings included: names reach it only as
    # validated identifiers behind a prefix (v_, p_, r_) or inside q["..."] keys.
    header = [
        f'"""Kernels, {PATHS_SHOWN[jac.path]} Jacobian; generated by gradflow.codegen."""',
        "",
        HELPERS,
    ]
    parts = [
        _gen_step(cell, lay),
        _gen_step(cell, lay, grouped=True),
        _gen_factors(cell, lay),
        _gen_apply(cell, jac, lay, "apply", materialise=True),
        _gen_apply(cell, jac, lay, "apply_vec", materialise=False),
        _gen_jacobian(cell, jac, lay),
    ]
    return "\n".join(header + ["\n\n".join("\n".join(p) for p in parts)]) + "\n", lay


PATHS = ("full", "additive", "multiplicative")
PATHS_SHOWN = {p: p for p in PATHS}


def definition(cell: Cell, path: str) -> str:
    """The canonical text of everything the kernels of ``cell`` and ``path`` depend on besides
    the generator's code: every field of the cell (equations as ``srepr``, which keeps each
    symbol's assumptions; the origin, which only names a file, left out), the path, and the
    NumPy and SymPy versions. Two cells with the same text get the same kernels."""
    return f"path={path}\n{_cell_text(cell)}"


@lru_cache(maxsize=128)
def _cell_text(cell: Cell) -> str:
    parts = [f"numpy={np.__version__}", f"sympy={sp.__version__}"]
    for f in fields(cell):
        if f.name == "origin":
            continue
        if f.name == "nodes":
            for nd in cell.nodes:
                shown = sp.srepr(nd.expr) if isinstance(nd, Elementwise) else repr(nd)
                parts.append(f"node {nd.name}: {shown}")
        else:
            parts.append(f"{f.name}={getattr(cell, f.name)!r}")
    return "\n".join(parts)


def _kernel_source(cell: Cell, jac: BlockJacobian) -> tuple[str, tuple[str, ...], Layout]:
    """The kernels' source, the factors' texts and the layout: from the disk cache
    (:mod:`gradflow.kernel_cache`) where a verified entry of the right shape exists, else
    generated (and stored). A cached entry holds only strings."""
    key = kernel_cache.entry_key(definition(cell, jac.path))
    hit = kernel_cache.load(key)
    if hit is not None and set(hit) == {"source", "texts", "needed"}:
        source, texts, needed = hit["source"], hit["texts"], hit["needed"]
        vectors = {cell.input, *cell.state, *(nd.name for nd in cell.nodes)}
        if (
            isinstance(source, str)
            and isinstance(texts, list)
            and all(isinstance(t, str) for t in texts)
            and isinstance(needed, list)
            and all(isinstance(v, str) and v in vectors for v in needed)
        ):
            lay = _layout(cell, jac, tuple(needed))
            if len(texts) == len(lay.diags):
                return source, tuple(texts), lay
    source, lay = generate_source(cell, jac)
    shown = tuple(_short(sp.sstr(tail_exact(cell, d))) for d in lay.diags)
    kernel_cache.store(key, {"source": source, "texts": list(shown), "needed": list(lay.needed)})
    return source, shown, lay


@lru_cache(maxsize=128)
def _compile(cell: Cell, path: str, backend: str) -> Kernels:
    xp = array_namespace(backend)
    jac = state_jacobian(cell)
    if path == "additive":
        jac = jac.additive()
    elif path == "multiplicative":
        jac = jac.multiplicative()
    elif path != "full":
        raise CellError(f"unknown path {path!r}; choose one of {', '.join(PATHS)}")
    source, texts, lay = _kernel_source(cell, jac)
    namespace: dict[str, Any] = {
        "xp": xp,
        "_finite": lambda F: _finite_factors(xp, texts, F),
        "_quiet": (lambda: np.errstate(all="ignore")) if xp is np else contextlib.nullcontext,
    }
    # The source is built from validated identifiers and SymPy's printer, never from raw
    # user text (SymPy issue #24990), so executing it is safe; a cached source is the same
    # text, handed back only after its content hash verified.
    exec(compile(source, f"<gradflow kernels/{path}>", "exec"), namespace)
    return Kernels(
        cell=cell,
        path=path,
        xp=xp,
        layout=lay,
        source=source,
        step=namespace["step"],
        factors=namespace["factors"],
        apply=namespace["apply"],
        apply_vec=namespace["apply_vec"],
        jacobian=namespace["jacobian"],
        step_grouped=namespace.get("step_grouped"),
    )


def compile_cell(cell: Cell, backend: str = "numpy", path: str = "full") -> Kernels:
    """Kernels for ``cell`` (cached per cell, path and backend)."""
    return _compile(cell, path, backend)

r"""LaTeX, MathML and text of Jacobians and equations, written the way papers write them.

A block Jacobian becomes a SymPy matrix whose entries are products of non-commutative factors
``diag(...)`` and weight symbols, so SymPy's own printers lay it out: ``sympy.latex`` for LaTeX
and the presentation MathML printer (SymPy >= 1.14 emits MathML Core, which browsers render
without JavaScript).

For the command line and notebooks (``gradflow derive``): :func:`jacobian_mathml_element`
(a complete ``<math display="block">`` element with the left-hand side and a LaTeX
annotation, valid XML), :func:`equations_text` (the equations as plain text, not LaTeX source)
and :func:`explicit_text` (an explicit small-n Jacobian one entry per line).

Examples:
    >>> from gradflow.cells import get_cell
    >>> print("\n".join(equations_text(get_cell("rnn"))))
    a = W_ih @ x_t + W_hh @ h_{t-1} + b_ih + b_hh
    h_t = tanh(a)
"""

from __future__ import annotations

import html.entities
import re
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import sympy as sp
from sympy.printing.mathml import mathml

from ..cells.graph import Cell, MatrixDef

if TYPE_CHECKING:
    from .jacobian import BlockJacobian, Term

DIAG = sp.Function("diag", commutative=False)
IDENTITY = sp.Symbol("I", commutative=False)


class Name(sp.Symbol):  # type: ignore[misc]  # SymPy ships no type information
    """A symbol whose subscript prints literally: ``W_xi`` is W with subscript ``xi``, not
    ``W_ξ`` (SymPy turns subscripts that spell Greek letters into Greek)."""

    def _parts(self) -> tuple[str, str | None]:
        base, _, sub = self.name.partition("_")
        return base, (sub or None)

    def _latex(self, printer: Any) -> str:
        base, sub = self._parts()
        shown = printer._print(sp.Symbol(base))
        return shown if sub is None else f"{shown}_{{{sub}}}"

    def _mathml_presentation(self, printer: Any) -> Any:
        base, sub = self._parts()
        shown = printer._print(sp.Symbol(base))
        if sub is None:
            return shown
        msub = printer.dom.createElement("msub")
        mi = printer.dom.createElement("mi")
        mi.appendChild(printer.dom.createTextNode(sub))
        msub.appendChild(shown)
        msub.appendChild(mi)
        return msub


class Indicator(sp.Function):  # type: ignore[misc]
    """``1[x > 0]``: how the derivative of relu, ``Heaviside(x, 0)``, is displayed."""

    nargs = 1

    def _latex(self, printer: Any) -> str:
        return rf"\mathbb{{1}}\left[{printer._print(self.args[0])} > 0\right]"

    def _mathml_presentation(self, printer: Any) -> Any:
        dom = printer.dom
        row = dom.createElement("mrow")
        for tag, text in (("mn", "1"), ("mo", "[")):
            el = dom.createElement(tag)
            el.appendChild(dom.createTextNode(text))
            row.appendChild(el)
        row.appendChild(printer._print(self.args[0]))
        for tag, text in (("mo", ">"), ("mn", "0"), ("mo", "]")):
            el = dom.createElement(tag)
            el.appendChild(dom.createTextNode(text))
            row.appendChild(el)
        return row


def _shown(expr: sp.Expr, names: dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """``expr`` with display names, and relu's derivative written as an indicator."""
    out = expr.xreplace(names)
    return out.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: Indicator(e.args[0]))


def display_names(cell: Cell) -> dict[sp.Symbol, sp.Symbol]:
    """Map each cell symbol to the symbol a paper prints: ``h -> h_{t-1}``, ``h_new -> h_t``,
    ``f -> f_t``, ``a_nh -> a_{nh,t}``, ``x -> x_t``; parameters keep their names."""
    names: dict[sp.Symbol, sp.Symbol] = {cell.symbol(cell.input): Name(f"{cell.input}_t")}
    for s in cell.state:
        names[cell.symbol(s)] = Name(f"{s}_t-1")
    updates = {node: s for s, node in cell.update}
    for node in cell.nodes:
        if node.name in updates:
            shown = f"{updates[node.name]}_t"
        elif "_" in node.name:
            base, sub = node.name.split("_", 1)
            shown = f"{base}_{sub},t"
        else:
            shown = f"{node.name}_t"
        names[cell.symbol(node.name)] = Name(shown)
    for p in cell.parameters:
        if p.kind == "vector":
            names[cell.symbol(p.name)] = Name(p.name)
    return names


def term_expr(term: Term, names: dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """One term as a non-commutative product ``diag(d0) W1 diag(d1) ...``."""
    factors: list[sp.Expr] = []
    for k, dgl in enumerate(term.diags):
        if dgl != 1:
            factors.append(DIAG(_shown(dgl, names)))
        if k < len(term.weights):
            factors.append(Name(term.weights[k], commutative=False))
    if not factors:
        return IDENTITY
    return sp.Mul(*factors)


def jacobian_expr(jac: BlockJacobian) -> sp.Expr | sp.Matrix:
    """The Jacobian as a SymPy expression (one block) or matrix of blocks."""
    names = display_names(jac.cell)
    rows = [
        [sp.Add(*(term_expr(t, names) for t in blk)) if blk else sp.S.Zero for blk in row]
        for row in jac.blocks
    ]
    if len(rows) == 1:
        return rows[0][0]
    return sp.Matrix(rows)


def _lhs(jac: BlockJacobian) -> str:
    if len(jac.state) == 1:
        s = jac.state[0]
        return rf"\frac{{\partial {s}_{{t}}}}{{\partial {s}_{{t-1}}}}"
    return r"\frac{\partial s_{t}}{\partial s_{t-1}}"


def jacobian_latex(jac: BlockJacobian, bare: bool = False) -> str:
    r"""LaTeX, e.g. ``\frac{\partial h_{t}}{\partial h_{t-1}} = \operatorname{diag}...``.

    With ``bare=True`` only the right-hand side is returned.
    """
    body = sp.latex(jacobian_expr(jac), mat_delim="(")
    return body if bare else f"{_lhs(jac)} = {body}"


def jacobian_mathml(jac: BlockJacobian) -> str:
    """Presentation MathML of the right-hand side (a fragment, no ``<math>`` element; see
    :func:`jacobian_mathml_element` for the whole equation), with numeric character
    references only."""
    return numeric_entities(str(mathml(jacobian_expr(jac), printer="presentation")))


def state_latex(cell: Cell) -> str:
    r"""The state vector as LaTeX, e.g. ``s_t = (h_t, c_t)``."""
    return "s_{t} = (" + ", ".join(f"{s}_{{t}}" for s in cell.state) + ")"


def _matrix_latex(mat: MatrixDef) -> str:
    """``M_{h} = W_{h} - W_{h}^{\top} - 0.05 I`` for a matrix definition."""
    out = ""
    parts = [
        (c, sp.latex(Name(w, commutative=False)) + (r"^{\top}" if t else ""))
        for c, w, t in mat.terms
    ]
    if mat.identity:
        parts.append((mat.identity, "I"))
    for k, (c, body) in enumerate(parts):
        shown = body if abs(c) == 1 else f"{abs(c):g} {body}"
        out += ("-" if c < 0 else "") + shown if k == 0 else (" - " if c < 0 else " + ") + shown
    return f"{sp.latex(Name(mat.name, commutative=False))} = {out}"


def equations_latex(cell: Cell) -> list[str]:
    """One LaTeX line per node: ``f_t = \\sigma(a_{f,t})``, ``a_{f,t} = W_{if} x_t + ...``."""
    names = display_names(cell)
    lines = [_matrix_latex(m) for m in cell.matrices]
    for node in cell.nodes:
        lhs = sp.latex(names[cell.symbol(node.name)])
        if hasattr(node, "expr"):
            rhs = sp.latex(node.expr.xreplace(names))
        else:
            parts = [
                sp.latex(Name(w, commutative=False))
                + " "
                + sp.latex(names.get(cell.symbol(src), Name(src)))
                for w, src in node.terms
            ]
            parts += [sp.latex(Name(b)) for b in node.biases]
            rhs = " + ".join(parts)
        lines.append(f"{lhs} = {rhs}")
    return lines


def text_names(cell: Cell) -> dict[sp.Symbol, sp.Symbol]:
    """Plain-text names: the node updating ``h`` shows as ``h_t``, the previous state as
    ``h_{t-1}``."""
    names = {cell.symbol(s): sp.Symbol(f"{s}_{{t-1}}") for s in cell.state}
    names.update({cell.symbol(node): sp.Symbol(f"{s}_t") for s, node in cell.update})
    return names


def _text_name(cell: Cell, name: str, names: dict[sp.Symbol, sp.Symbol]) -> str:
    if name == cell.input:
        return f"{name}_t"
    return str(names.get(cell.symbol(name), sp.Symbol(name)))


def equations_text(cell: Cell) -> list[str]:
    """One plain-text line per node, in order: ``f = sigmoid(a_f)``, ``c_t = c_{t-1}*f + g*i``,
    ``a_f = W_if @ x_t + W_hf @ h_{t-1} + b_if + b_hf`` (the text the terminal shows; see
    :func:`equations_latex` for LaTeX)."""
    names = text_names(cell)
    names[cell.symbol(cell.input)] = sp.Symbol(f"{cell.input}_t")
    lines = [f"{m.name} = {m.text()}" for m in cell.matrices]  # matrix definitions (F4)
    for node in cell.nodes:
        lhs = _text_name(cell, node.name, names)
        if hasattr(node, "expr"):
            rhs = sp.sstr(node.expr.xreplace(names), order="none")
        else:
            parts = [f"{w} @ {_text_name(cell, src, names)}" for w, src in node.terms]
            rhs = " + ".join(parts + list(node.biases))
        lines.append(f"{lhs} = {rhs}")
    return lines


def explicit_text(matrix: sp.Matrix, name: str = "J") -> str:
    """An explicit Jacobian one entry per line, ``J[1,2] = ...`` (1-based, zeros left out),
    so that an ``n = 2`` LSTM reads as 64 short lines instead of a 3,000-character row."""
    lines = []
    for i in range(matrix.rows):
        for j in range(matrix.cols):
            entry = matrix[i, j]
            if entry != 0:
                lines.append(f"{name}[{i + 1},{j + 1}] = {sp.sstr(entry, order='none')}")
    zeros = matrix.rows * matrix.cols - len(lines)
    lines.append(f"({matrix.rows}x{matrix.cols}; {zeros} entries are 0)")
    return "\n".join(lines)


_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


def numeric_entities(markup: str) -> str:
    """``markup`` with named character entities (``&InvisibleTimes;``, which XML parsers
    reject without a DTD) written as numeric references (``&#x2062;``)."""

    def numeric(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES:
            return match.group(0)
        chars = html.entities.html5.get(name + ";")
        if chars is None:
            raise ValueError(f"unknown character entity &{name};")  # pragma: no cover
        return "".join(f"&#x{ord(c):X};" for c in chars)

    return _ENTITY.sub(numeric, markup)


_PARTIAL = "<mo>&#x2202;</mo>"


def _lhs_mathml(jac: BlockJacobian) -> str:
    s = jac.state[0] if len(jac.state) == 1 else "s"
    return (
        f"<mfrac><mrow>{_PARTIAL}<msub><mi>{s}</mi><mi>t</mi></msub></mrow>"
        f"<mrow>{_PARTIAL}<msub><mi>{s}</mi><mrow><mi>t</mi><mo>&#x2212;</mo><mn>1</mn></mrow>"
        "</msub></mrow></mfrac>"
    )


def jacobian_mathml_element(jac: BlockJacobian) -> str:
    """A complete ``<math display="block">`` element: ``d s_t / d s_{t-1} = ...`` in
    presentation MathML, with the LaTeX as a ``<semantics>`` annotation; valid XML.

    Examples:
        >>> import xml.etree.ElementTree as ET
        >>> from gradflow.cells import get_cell
        >>> math = ET.fromstring(jacobian_mathml_element(get_cell("rnn").jacobian()))
        >>> math.tag, math.get("display")
        ('{http://www.w3.org/1998/Math/MathML}math', 'block')
    """
    body = f"{_lhs_mathml(jac)}<mo>=</mo>{jacobian_mathml(jac)}"
    return (
        '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><semantics>'
        f"<mrow>{body}</mrow>"
        f'<annotation encoding="application/x-tex">{escape(jacobian_latex(jac))}</annotation>'
        "</semantics></math>"
    )

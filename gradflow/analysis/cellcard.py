r"""A cell's algebra as data: its equations and state Jacobian in MathML and LaTeX.

:func:`cell_card` builds the :class:`~gradflow.results.CellCard` an experiment result carries
for each cell, so a report shows the equations and the Jacobian without the cell's file and
without deriving anything again. MathML bodies are presentation MathML generated here (never
from user text: names come from the validated cell); LaTeX comes from
:mod:`gradflow.symbolic.render`.

Examples:
    >>> from gradflow.cells import get_cell
    >>> card = cell_card(get_cell("rnn"))
    >>> card.equations[0][1]
    'a_{t} = W_{ih} x_{t} + W_{hh} h_{t-1} + b_{ih} + b_{hh}'
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.mathml import mathml

from ..cells.graph import Affine, Cell, MatrixDef
from ..results import CellCard
from ..symbolic.jacobian import BlockJacobian
from ..symbolic.render import (
    display_names,
    equations_latex,
    jacobian_latex,
    jacobian_mathml,
    term_expr,
)

#: Functions shown under their usual mathematical name in MathML.
_SHOWN = {"sigmoid": sp.Function("σ")}

_PARTIAL = "<mo>&#x2202;</mo>"


def _mml(expr: sp.Basic) -> str:
    shown = expr.replace(
        lambda e: isinstance(e, sp.Function) and type(e).__name__ in _SHOWN,
        lambda e: _SHOWN[type(e).__name__](*e.args),
    )
    return str(mathml(shown, printer="presentation"))


def _matrix_mathml(mat: MatrixDef) -> str:
    """``M_h = W_h - W_h^T - 0.01 I``: a matrix definition (F4), as ``equations_latex`` has it."""
    parts = [
        (c, _mml(sp.Symbol(w, commutative=False)), transposed) for c, w, transposed in mat.terms
    ]
    if mat.identity:
        parts.append((mat.identity, "<mi>I</mi>", False))
    out = ""
    for k, (c, body, transposed) in enumerate(parts):
        if transposed:
            body = f"<msup><mrow>{body}</mrow><mo>&#x22A4;</mo></msup>"
        shown = body if abs(c) == 1 else f"<mn>{abs(c):g}</mn><mo>&#x2062;</mo>{body}"
        sign = "<mo>-</mo>" if c < 0 else ("" if k == 0 else "<mo>+</mo>")
        out += sign + shown
    return f"{_mml(sp.Symbol(mat.name, commutative=False))}<mo>=</mo>{out}"


def equations_mathml(cell: Cell) -> list[str]:
    """Presentation MathML of each equation of ``cell``, matching
    :func:`gradflow.symbolic.render.equations_latex` line for line (matrix definitions first)."""
    names = display_names(cell)
    lines = [_matrix_mathml(m) for m in cell.matrices]
    for node in cell.nodes:
        lhs = _mml(names[cell.symbol(node.name)])
        if isinstance(node, Affine):
            terms = [
                _mml(
                    sp.Mul(
                        sp.Symbol(w, commutative=False),
                        sp.Symbol(str(names.get(cell.symbol(src), src)), commutative=False),
                    )
                )
                for w, src in node.terms
            ] + [_mml(sp.Symbol(b)) for b in node.biases]
            rhs = "<mo>+</mo>".join(terms)
        else:
            rhs = _mml(node.expr.xreplace(names))
        lines.append(f"{lhs}<mo>=</mo>{rhs}")
    return lines


def _frac(row: str, col: str) -> tuple[str, str]:
    """MathML and LaTeX of ``d row_t / d col_{t-1}``."""
    mml = (
        f"<mfrac><mrow>{_PARTIAL}<msub><mi>{row}</mi><mi>t</mi></msub></mrow>"
        f"<mrow>{_PARTIAL}<msub><mi>{col}</mi><mrow><mi>t</mi><mo>-</mo><mn>1</mn></mrow>"
        f"</msub></mrow></mfrac>"
    )
    return mml, rf"\frac{{\partial {row}_{{t}}}}{{\partial {col}_{{t-1}}}}"


def jacobian_math(cell: Cell) -> list[tuple[str, list[tuple[str, str]]]]:
    """The state Jacobian and its additive and multiplicative paths, block by block.

    Returns ``[(label, [(mathml, latex), ...]), ...]`` for ``state Jacobian``,
    ``additive path`` and ``multiplicative path``: one line per non-zero block
    ``d row_t / d col_{t-1}`` (a path's part of a block is written ``[...]^add``), so a
    two-state cell such as the LSTM reads as four short equations rather than one wide matrix.
    """
    jac = cell.jacobian()
    out = []
    for label, tag, part in (
        ("state Jacobian", "", jac),
        ("additive path", "add", jac.additive()),
        ("multiplicative path", "mul", jac.multiplicative()),
    ):
        lines = []
        for i, row in enumerate(cell.state):
            for j, col in enumerate(cell.state):
                blk = part.blocks[i][j]
                if not blk and not (i == j == len(cell.state) - 1 and part.is_zero()):
                    continue
                one = BlockJacobian(cell, ((blk,),), part.path)
                frac_mml, frac_tex = (
                    _frac(row, col)
                    if len(cell.state) == 1 or not part.is_zero()
                    else _frac("s", "s")
                )
                if tag:
                    lhs = (
                        f"<msup><mrow><mo>[</mo>{frac_mml}<mo>]</mo></mrow>"
                        f'<mi mathvariant="normal">{tag}</mi></msup>'
                    )
                    lhs_tex = rf"\left[{frac_tex}\right]^{{\mathrm{{{tag}}}}}"
                else:
                    lhs, lhs_tex = frac_mml, frac_tex
                if len(blk) > 2:  # one term per row: long sums stay readable
                    body = _term_rows(cell, lhs, blk)
                else:
                    body = f"{lhs}<mo>=</mo>{jacobian_mathml(one)}"
                lines.append((body, f"{lhs_tex} = {jacobian_latex(one, bare=True)}"))
        out.append((label, lines))
    return out


def _term_rows(cell: Cell, lhs: str, block: Any) -> str:
    """``lhs = t1 + t2 + ...`` as an ``mtable``: the first row ``lhs = t1``, then ``+ tk``."""
    names = display_names(cell)
    rows = []
    for k, term in enumerate(block):
        first = k == 0
        rows.append(
            f"<mtr><mtd>{lhs if first else ''}</mtd><mtd><mo>{'=' if first else '+'}</mo></mtd>"
            f"<mtd>{_mml(term_expr(term, names))}</mtd></mtr>"
        )
    return f'<mtable class="terms" displaystyle="true">{"".join(rows)}</mtable>'


def cell_card(cell: Cell, source: str | None = None) -> CellCard:
    """The :class:`~gradflow.results.CellCard` of ``cell``; ``source`` is its file's text."""
    eq_mml, eq_tex = equations_mathml(cell), equations_latex(cell)
    return CellCard(
        name=cell.name,
        description=cell.description,
        reference=cell.reference,
        citations=tuple(cell.citations),
        state=tuple(cell.state),
        equations=tuple(zip(eq_mml, eq_tex, strict=True)),
        jacobian=tuple((label, tuple(lines)) for label, lines in jacobian_math(cell)),
        source=source,
    )

"""The matrix-form Jacobian is correct: the core check of gradflow.symbolic.

For every catalogue cell and the example user cells in examples/cells/, at random weights and
states, the matrix form ``cell.jacobian()`` (sums of ``diag(d0) W1 diag(d1) ...`` terms,
derived once for every hidden size) is evaluated numerically and compared with

(a) the explicit SymPy Jacobian of the unrolled step with scalar symbols
    (:func:`gradflow.symbolic.explicit.explicit_step`, ``sympy.Matrix.jacobian``; no chain rule
    over the cell graph), and
(b) a central finite difference of the step function.

Everything numeric here is test-local (numpy + ``sympy.lambdify``) and independent of
gradflow.codegen and gradflow.engine. Sizes: n in 3..5 for one-state cells, n in 3..4 for the
two-state LSTM family (their explicit Jacobians are twice as large and slow to build and
lambdify at n = 5); d alternates 2 / 3. The whole file runs in well under a minute.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from gradflow.cells import CATALOGUE, Affine, Cell, load_cell_file
from gradflow.cells.functions import relu
from gradflow.symbolic.explicit import explicit_step

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cells"
USER_CELLS = {p.stem: load_cell_file(p) for p in sorted(EXAMPLES.glob("*.toml"))}
ALL_CELLS: dict[str, Cell] = {**CATALOGUE, **USER_CELLS}

#: numpy implementations of gradflow's own SymPy functions, for lambdify.
NUMPY_FUNCS = {
    "sigmoid": expit,
    "relu": lambda a: np.maximum(a, 0.0),
    "softplus": lambda a: np.logaddexp(0.0, a),
    "Heaviside": lambda a, h0=0.0: np.heaviside(a, h0),
}
MODULES = [NUMPY_FUNCS, "numpy"]
FD_STEP = 1e-6
KINK_MARGIN = 1e-3


def proj(cell: Cell, n: int) -> int | None:
    """The second size ``p`` the tests use for a cell that has one (lstm-proj): ``n - 1``."""
    return n - 1 if cell.has_second_size else None


def sizes_of(cell: Cell, m: int) -> tuple[int, int | None]:
    """``(n, p)`` of a state of length ``m`` (with the tests' ``p = proj(cell, n)``)."""
    n = next(k for k in range(1, m + 2) if cell.state_size(k, proj(cell, k)) == m)
    return n, proj(cell, n)


def _units(cell: Cell, n: int, p: int | None, name: str) -> int:
    return {"n": n, "p": p if p is not None else n}[cell.size_of(name)]


def _cases() -> list[tuple[str, int, int]]:
    cases = []
    for name, cell in ALL_CELLS.items():
        for n in (3, 4) if len(cell.state) > 1 else (3, 4, 5):
            cases.append((name, n, 2 if n % 2 else 3))
    return cases


class Evaluator:
    """Node values, the step and the matrix-form Jacobian of one cell, with numpy."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.jac = cell.jacobian()
        self._fns: dict[sp.Expr, tuple[list[str], object]] = {}

    def _call(self, expr: sp.Expr, env: dict[str, np.ndarray], n: int) -> np.ndarray:
        if expr not in self._fns:
            syms = sorted(expr.free_symbols, key=str)
            self._fns[expr] = ([str(s) for s in syms], sp.lambdify(syms, expr, modules=MODULES))
        names, fn = self._fns[expr]
        value = fn(*(env[nm] for nm in names))
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()

    def nodes(self, params: dict, x: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        n, p = sizes_of(self.cell, s.size)
        params = self.cell.with_matrices(params, n)  # matrix definitions (F4) by value
        env: dict[str, np.ndarray] = {**params, self.cell.input: x}
        for name in self.cell.state:
            env[name] = s[self.cell.state_slice(name, n, p)]
        for node in self.cell.nodes:
            size = _units(self.cell, n, p, node.name)
            if isinstance(node, Affine):
                total = np.zeros(size)
                for w, src in node.terms:
                    total = total + params[w] @ env[src]
                for b in node.biases:
                    total = total + params[b]
                env[node.name] = total
            else:
                env[node.name] = self._call(node.expr, env, size)
        return env

    def step(self, params: dict, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        env = self.nodes(params, x, s)
        return np.concatenate([env[node] for _, node in self.cell.update])

    def matrix_jacobian(self, params: dict, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Evaluate each Term ``diag(d0) @ W1 @ diag(d1) @ ...`` and add them up, by block."""
        n, p = sizes_of(self.cell, s.size)
        env = self.nodes(params, x, s)
        out = np.zeros((s.size, s.size))
        state = self.cell.state
        for i, j, term in self.jac.terms():
            mat = np.diag(self._call(term.diags[0], env, _units(self.cell, n, p, state[i])))
            for w, dgl in zip(term.weights, term.diags[1:], strict=True):
                mat = mat @ env[w] @ np.diag(self._call(dgl, env, env[w].shape[1]))
            rows, cols = (self.cell.state_slice(v, n, p) for v in (state[i], state[j]))
            out[rows, cols] += mat
        return out

    def kink_distance(self, params: dict, x: np.ndarray, s: np.ndarray) -> float:
        """Smallest |argument| of relu/abs/Heaviside: finite differences must not cross a kink."""
        n, p = sizes_of(self.cell, s.size)
        env = self.nodes(params, x, s)
        dist = np.inf
        for node in self.cell.nodes:
            if isinstance(node, Affine):
                continue
            size = _units(self.cell, n, p, node.name)
            for app in node.expr.atoms(relu, sp.Abs, sp.Heaviside):
                dist = min(dist, float(np.min(np.abs(self._call(app.args[0], env, size)))))
        return dist


def random_point(cell: Cell, n: int, d: int, rng: np.random.Generator):
    """Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.25), vector parameters (leak rates,
    peepholes, IndRNN recurrent weights) ~ U(0.1, 0.9), x ~ N(0, 1), h ~ U(-0.9, 0.9),
    c ~ N(0, 1). A cell with a second size gets ``p = proj(cell, n)``."""
    params = {}
    for p in cell.parameters:
        shape = p.numeric_shape(n, d, proj(cell, n))
        if p.kind == "weight":
            # fan-in: the last axis (a rows(w) weight (n,) and heads blocks included)
            params[p.name] = rng.normal(0.0, 1.0 / np.sqrt(shape[-1]), shape)
        elif p.kind == "bias":
            params[p.name] = rng.normal(0.0, 0.5, shape)
        else:
            params[p.name] = rng.uniform(0.1, 0.9, shape)
    x = rng.normal(size=d)
    sizes = cell.block_sizes(n, proj(cell, n))
    s = np.concatenate(
        [
            rng.normal(size=k) if name == "c" else rng.uniform(-0.9, 0.9, k)
            for name, k in zip(cell.state, sizes, strict=True)
        ]
    )
    return params, x, s


def explicit_values(step, cell: Cell, params: dict, x: np.ndarray, s: np.ndarray):
    """Flatten the explicit step's scalar symbols and their values, in the same order."""
    n, p = sizes_of(cell, s.size)
    vectors = {cell.input: x, **{nm: s[cell.state_slice(nm, n, p)] for nm in cell.state}}
    syms, vals = [], []
    for name, entry in step.symbols.items():
        value = vectors[name] if name in vectors else params[name]
        flat = [sym for row in entry for sym in row] if isinstance(entry[0], list) else entry
        syms.extend(flat)
        vals.extend(np.ravel(value))
    return syms, vals


@pytest.mark.parametrize(("name", "n", "d"), _cases(), ids=lambda v: str(v))
def test_matrix_form_matches_explicit_and_finite_differences(name: str, n: int, d: int) -> None:
    cell = ALL_CELLS[name]
    ev = Evaluator(cell)
    rng = np.random.default_rng(zlib.crc32(f"{name}-{n}-{d}".encode()))
    for _ in range(100):
        params, x, s = random_point(cell, n, d, rng)
        if ev.kink_distance(params, x, s) > KINK_MARGIN:
            break
    else:  # pragma: no cover - would need 100 unlucky draws
        pytest.fail("could not draw a point away from the relu kink")

    matrix = ev.matrix_jacobian(params, x, s)

    step = explicit_step(cell, n, d, proj(cell, n))
    syms, vals = explicit_values(step, cell, params, x, s)
    new_state = np.asarray(sp.lambdify(syms, step.new_state, modules=MODULES)(*vals), float)
    explicit = np.asarray(sp.lambdify(syms, step.jacobian, modules=MODULES)(*vals), float)

    # The explicit unroll computes the same step as the test's evaluator (same formulas,
    # different evaluation order): agreement to rounding, rtol 1e-12.
    np.testing.assert_allclose(new_state.ravel(), ev.step(params, x, s), rtol=1e-12, atol=1e-14)
    # (a) Reference: SymPy's Matrix.jacobian of the unrolled step. Both sides are exact
    # formulas evaluated in float64, so they agree to rounding: rtol 1e-10, atol 1e-12 for
    # entries that cancel to ~0.
    np.testing.assert_allclose(matrix, explicit, rtol=1e-10, atol=1e-12)

    # (b) Reference: central differences, step 1e-6. Truncation error ~ h^2/6 |f'''| ~ 1e-13
    # and rounding error ~ eps |f| / h ~ 2e-10, so rtol 1e-6 with atol 1e-8 leaves a 50x
    # margin over rounding while still catching any wrong term (errors of order 1e-2..1).
    m = s.size
    fd = np.empty((m, m))
    for k in range(m):
        e = np.zeros(m)
        e[k] = FD_STEP
        fd[:, k] = (ev.step(params, x, s + e) - ev.step(params, x, s - e)) / (2 * FD_STEP)
    np.testing.assert_allclose(matrix, fd, rtol=1e-6, atol=1e-8)


def test_every_cell_is_covered() -> None:
    """Every catalogue cell and both example user cells are in the parametrisation."""
    covered = {name for name, _, _ in _cases()}
    assert covered == set(CATALOGUE) | {"leaky-rnn", "janet-example", "antisymmetric-gated"}
    assert set(USER_CELLS) == {"leaky-rnn", "janet-example", "antisymmetric-gated"}
    for name, cell in USER_CELLS.items():
        assert cell.name == name  # file stem and declared name agree


# -- bounded work (issue 13): the derivation refuses compounding chains, naming the line ------
def _chain_file(tmp_path: Path, lines: list[str], last: str) -> Path:
    text = "\n".join(['name = "chain"', 'state = ["h"]', "[equations]", *lines])
    path = tmp_path / "chain.toml"
    path.write_text(text + f'\n[update]\nh = "{last}"\n', "utf-8")
    return path


def test_fibonacci_chain_of_products_is_refused_at_its_line(tmp_path: Path) -> None:
    # The 625-byte file of issue 13: e_k = tanh(e_{k-1} e_{k-2}), k = 3..24; the derivative
    # doubles (Fibonacci) with each equation.
    from gradflow.errors import CellError
    from gradflow.symbolic.jacobian import MAX_DERIVATIVE_OPS, state_jacobian

    lines = ['a = "W @ x + U @ h + b"', 'e_1 = "tanh(a)"', 'e_2 = "tanh(e_1 * h)"']
    lines += [f'e_{k} = "tanh(e_{k - 1}*e_{k - 2})"' for k in range(3, 25)]
    path = _chain_file(tmp_path, lines, "e_24")
    assert path.stat().st_size < 1000
    cell = load_cell_file(path)
    with pytest.raises(CellError) as info:
        state_jacobian(cell)
    msg = str(info.value)
    # e_12 is line 16 of the file (3 header lines, then a, e_1, e_2, e_3 ... e_12)
    assert msg.startswith(f"{path}:16: equation 'e_12': its derivative has more than ")
    assert str(MAX_DERIVATIVE_OPS) in msg and "\n" not in msg


def test_long_chain_of_sums_is_refused_at_its_line(tmp_path: Path) -> None:
    # 200 equations a_k = tanh(a_{k-1}) + h: the derivative nests one level deeper each line.
    from gradflow.errors import CellError
    from gradflow.symbolic.jacobian import MAX_DERIVATIVE_DEPTH, state_jacobian

    lines = ['a_1 = "tanh(h)"'] + [f'a_{k} = "tanh(a_{k - 1}) + h"' for k in range(2, 201)]
    cell = load_cell_file(_chain_file(tmp_path, lines, "a_200"))
    with pytest.raises(
        CellError,
        match=rf"chain.toml:\d+: equation 'a_\d+': its derivative is "
        rf"nested more than {MAX_DERIVATIVE_DEPTH} levels deep",
    ):
        state_jacobian(cell)


def test_chains_within_the_limits_still_derive_correctly(tmp_path: Path) -> None:
    # 30 chained sums: below the limits, and the matrix form equals the explicit Jacobian.
    from gradflow.symbolic.jacobian import state_jacobian

    lines = ['a_1 = "tanh(h)"'] + [f'a_{k} = "tanh(a_{k - 1}) + h"' for k in range(2, 31)]
    cell = load_cell_file(_chain_file(tmp_path, lines, "a_30"))
    state_jacobian(cell)
    rng = np.random.default_rng(7)
    _check_against_explicit(cell, 2, 1, rng)


def _check_against_explicit(cell: Cell, n: int, d: int, rng: np.random.Generator) -> None:
    step = explicit_step(cell, n, d)
    ev = Evaluator(cell)
    params, x, s = random_point(cell, n, d, rng)
    syms, vals = explicit_values(step, cell, params, x, s)
    want = np.asarray(sp.lambdify(syms, step.jacobian, modules=MODULES)(*vals), float)
    # both exact formulas in float64: rounding only (as in the test above)
    np.testing.assert_allclose(ev.matrix_jacobian(params, x, s), want, rtol=1e-10, atol=1e-12)


def test_expression_size_counts_the_printed_tree_in_linear_time() -> None:
    from gradflow.symbolic.jacobian import expression_size

    x, g = sp.Symbol("x"), sp.Function("g")
    e = x
    for _ in range(200):  # printed size ~2^200: only ~600 distinct sub-expressions
        e = g(sp.Mul(e, sp.Add(e, 1, evaluate=False), evaluate=False))
    size, depth = expression_size(e, limit=10**6)
    assert size > 10**6  # stopped counting past the limit, did not walk 2^200 nodes
    assert expression_size(sp.tanh(x * x + 1)) == (6, 4)  # tanh(Add(Mul(x, x)... as stored


# -- derivation-size fuzzer ------------------------------------------------------------------
_FUNCS = ["tanh", "sigmoid", "softplus", "sin", ""]


@st.composite
def _chained_cells(draw: st.DrawFn) -> list[str]:
    """Random chains of elementwise equations, each using one or two earlier vectors."""
    k = draw(st.integers(2, 40))
    lines = ['a = "W @ x + U @ h + b"']
    names = ["h", "a"]
    for i in range(k):
        f = draw(st.sampled_from(_FUNCS))
        u = draw(st.sampled_from(names[-4:]))
        v = draw(st.sampled_from(names[-4:]))
        op = draw(st.sampled_from(["*", "+", "-"]))
        body = f"{u} {op} {v}"
        lines.append(f'e_{i} = "{f}({body})"' if f else f'e_{i} = "{body}"')
        names.append(f"e_{i}")
    return lines


@settings(max_examples=25, deadline=None)
@given(lines=_chained_cells())
def test_derivation_size_fuzz(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    """Every random chain either derives, with every node's derivative within the documented
    bounds, or is refused with one line naming the equation and its line in the file."""
    from gradflow.errors import CellError
    from gradflow.symbolic.jacobian import (
        MAX_DERIVATIVE_DEPTH,
        MAX_DERIVATIVE_OPS,
        expression_size,
        state_jacobian,
    )

    path = _chain_file(tmp_path_factory.mktemp("fuzz"), lines, lines[-1].split(" ")[0])
    cell = load_cell_file(path)
    try:
        jac = state_jacobian.__wrapped__(cell)  # uncached: every example derives afresh
    except CellError as err:
        msg = str(err)
        assert re.match(rf"{re.escape(str(path))}:\d+: equation 'e_\d+': its derivative ", msg)
        assert "\n" not in msg
        return
    for _, _, term in jac.terms():
        for dg in term.diags:
            ops, depth = expression_size(dg)
            assert ops <= MAX_DERIVATIVE_OPS and depth <= MAX_DERIVATIVE_DEPTH


# -- rendering (issue 12): complete MathML, text forms, short reprs ---------------------------
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_mathml_is_a_complete_valid_xml_math_element(name: str) -> None:
    import xml.etree.ElementTree as ET

    from gradflow.symbolic.render import jacobian_latex

    jac = CATALOGUE[name].jacobian()
    text = jac.mathml()
    # numeric character references only, besides XML's own (&amp; &lt; &gt; in the LaTeX)
    assert not set(re.findall(r"&([A-Za-z]+);", text)) - {"amp", "lt", "gt"}
    math = ET.fromstring(text)  # raises on invalid XML, e.g. &InvisibleTimes;
    ns = "{http://www.w3.org/1998/Math/MathML}"
    assert math.tag == f"{ns}math" and math.get("display") == "block"
    (sem,) = math.findall(f"{ns}semantics")
    row, note = list(sem)
    assert note.get("encoding") == "application/x-tex" and note.text == jacobian_latex(jac)
    # the left-hand side: a fraction of partials, then "="
    assert row[0].tag == f"{ns}mfrac" and "\u2202" in "".join(row[0].itertext())
    assert row[1].text == "="


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_repr_is_short_and_jupyter_gets_every_form(name: str) -> None:
    jac = CATALOGUE[name].jacobian()
    text = repr(jac)
    assert len(text) < 200 and "\n" not in text and repr(name) in text
    bundle = jac._repr_mimebundle_()
    assert bundle["text/plain"] == str(jac)
    assert bundle["text/latex"].startswith("$\\displaystyle \\frac{\\partial")
    assert bundle["text/html"].startswith("<math")
    assert len(repr(jac.paths())) < 100


def test_equations_text_is_text_not_latex() -> None:
    from gradflow.symbolic.render import equations_text

    lines = equations_text(CATALOGUE["lstm"])
    assert lines[4] == "i = sigmoid(a_i)"
    assert lines[-2:] == ["c_t = c_{t-1}*f + g*i", "h_t = o*tanh(c_t)"]
    assert lines[0] == "a_i = W_ii @ x_t + W_hi @ h_{t-1} + b_ii + b_hi"
    assert not any("\\" in line for line in lines)


def test_explicit_text_is_one_entry_per_line() -> None:
    from gradflow.symbolic.render import explicit_text

    J = CATALOGUE["lstm"].jacobian(n=2)
    text = explicit_text(J)
    lines = text.splitlines()
    nonzero = sum(1 for e in J if e != 0)
    assert len(lines) == nonzero + 1 and lines[-1] == f"(4x4; {16 - nonzero} entries are 0)"
    # each line holds exactly one entry
    entries = [(i, j) for i in range(4) for j in range(4) if J[i, j] != 0]
    for line, (i, j) in zip(lines, entries, strict=False):
        assert line == f"J[{i + 1},{j + 1}] = {sp.sstr(J[i, j], order='none')}"


def test_explicit_jacobian_work_is_bounded(tmp_path: Path) -> None:
    from gradflow.errors import CellError
    from gradflow.symbolic.explicit import MAX_EXPLICIT_WORK, explicit_jacobian

    lines = ['a = "W @ x + U @ h + b"', 'e_1 = "tanh(a)"', 'e_2 = "tanh(e_1 * h)"']
    lines += [f'e_{k} = "tanh(e_{k - 1}*e_{k - 2})"' for k in range(3, 12)]
    cell = load_cell_file(_chain_file(tmp_path, lines, "e_11"))
    with pytest.raises(CellError, match=rf"at n = 8 would take more than {MAX_EXPLICIT_WORK}"):
        explicit_jacobian(cell, 8)
    assert explicit_jacobian(CATALOGUE["lstm-peephole"], 8).shape == (16, 16)  # the largest

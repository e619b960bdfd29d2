"""Input Jacobian ``ds_t/dx_t`` and parameter VJPs ``v^T ds_t/dθ`` of every cell are correct.

For every catalogue cell and the example user cells, n = 3 and 4, at random weights, inputs
and states, the generated kernels (:mod:`gradflow.sensitivity_codegen`, printed from the matrix
form of :mod:`gradflow.symbolic.sensitivity`) are compared with

(a) the explicit SymPy Jacobian of the unrolled step with scalar symbols
    (``sympy.Matrix.jacobian`` with respect to the input's or the parameter's symbols), and
(b) central finite differences of the step (the test-local numpy evaluator of
    tests/test_symbolic.py, independent of gradflow.codegen).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import sympy as sp
from test_symbolic import (
    ALL_CELLS,
    FD_STEP,
    KINK_MARGIN,
    MODULES,
    Evaluator,
    explicit_values,
    proj,
    random_point,
)

from gradflow.cells import get_cell
from gradflow.errors import CellError
from gradflow.sensitivity_codegen import compile_sensitivity
from gradflow.symbolic.explicit import explicit_step
from gradflow.symbolic.jacobian import state_jacobian
from gradflow.symbolic.sensitivity import (
    derive,
    explicit_input_jacobian,
    explicit_parameter_jacobian,
    input_jacobian,
    parameter_derivatives,
)

CASES = [(name, n) for name in ALL_CELLS for n in (3, 4)]


def _point(name: str, n: int):
    cell = ALL_CELLS[name]
    d = 2 if n % 2 else 3
    ev = Evaluator(cell)
    rng = np.random.default_rng(zlib.crc32(f"sens-{name}-{n}".encode()))
    for _ in range(100):
        params, x, s = random_point(cell, n, d, rng)
        if ev.kink_distance(params, x, s) > KINK_MARGIN:
            break
    else:  # pragma: no cover
        pytest.fail("could not draw a point away from the relu kink")
    return cell, d, ev, params, x, s, rng


@pytest.mark.parametrize(("name", "n"), CASES, ids=lambda v: str(v))
def test_input_jacobian_matches_explicit_and_finite_differences(name: str, n: int) -> None:
    cell, d, ev, params, x, s, _ = _point(name, n)
    kern = compile_sensitivity(cell)
    q = kern.pack(params)
    E = kern.values(s[None], x[None], q)
    K = np.asarray(kern.input_jacobian(E, q))[0]
    assert K.shape == (s.size, d)

    step = explicit_step(cell, n, d, proj(cell, n))
    syms, vals = explicit_values(step, cell, params, x, s)
    jac = explicit_input_jacobian(cell, n, d, proj(cell, n))
    explicit = np.asarray(sp.lambdify(syms, jac, modules=MODULES)(*vals), float)
    # (a) Reference: Matrix.jacobian of the unrolled step; both exact formulas in float64,
    # rtol 1e-10 (atol 1e-12 for entries that cancel to ~0).
    np.testing.assert_allclose(K, explicit, rtol=1e-10, atol=1e-12)
    # The values kernel computes the same step as the independent evaluator (rounding).
    new = np.concatenate([np.asarray(E[nd])[0] for _, nd in cell.update])
    np.testing.assert_allclose(new, ev.step(params, x, s), rtol=1e-12, atol=1e-14)

    # (b) Reference: central differences in x, step 1e-6 (truncation ~1e-13, rounding ~2e-10):
    # rtol 1e-6, atol 1e-8, as in tests/test_symbolic.py.
    fd = np.empty_like(K)
    for k in range(d):
        e = np.zeros(d)
        e[k] = FD_STEP
        fd[:, k] = (ev.step(params, x + e, s) - ev.step(params, x - e, s)) / (2 * FD_STEP)
    np.testing.assert_allclose(K, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("name", "n"), CASES, ids=lambda v: str(v))
def test_parameter_vjp_matches_explicit_and_finite_differences(name: str, n: int) -> None:
    cell, d, ev, params, x, s, rng = _point(name, n)
    kern = compile_sensitivity(cell)
    q = kern.pack(params)
    v = rng.normal(size=s.size)
    E = kern.values(s[None], x[None], q)
    grads = kern.param_vjp(v[None], E, q)
    assert set(grads) == {p.name for p in cell.parameters}

    step = explicit_step(cell, n, d, proj(cell, n))
    syms, vals = explicit_values(step, cell, params, x, s)
    for p in cell.parameters:
        got = np.asarray(grads[p.name])[0]
        assert got.shape == params[p.name].shape
        jac = explicit_parameter_jacobian(cell, n, d, p.name, proj(cell, n))
        explicit = v @ np.asarray(sp.lambdify(syms, jac, modules=MODULES)(*vals), float)
        # (a) Reference: v^T (Matrix.jacobian wrt the parameter's symbols), row-major.
        np.testing.assert_allclose(got.ravel(), explicit, rtol=1e-10, atol=1e-12, err_msg=p.name)
        # (b) Reference: central differences of v . step in each parameter entry (tolerances
        # as above).
        fd = np.empty(params[p.name].size)
        for k in range(fd.size):
            plus = {**params, p.name: params[p.name].copy()}
            minus = {**params, p.name: params[p.name].copy()}
            plus[p.name].flat[k] += FD_STEP
            minus[p.name].flat[k] -= FD_STEP
            fd[k] = v @ (ev.step(plus, x, s) - ev.step(minus, x, s)) / (2 * FD_STEP)
        np.testing.assert_allclose(got.ravel(), fd, rtol=1e-6, atol=1e-8, err_msg=p.name)


@pytest.mark.parametrize("name", sorted(ALL_CELLS))
def test_derive_by_state_is_the_state_jacobian(name: str) -> None:
    """The generic derivation seeded at a state vector reproduces ``state_jacobian`` weight
    chain by weight chain (the same chain rule; reference: gradflow.symbolic.jacobian, whose
    terms are split further into additive and multiplicative ones, docs/cells-2018-2026.md §2,
    so the leading diagonals are compared as sums)."""
    cell = ALL_CELLS[name]
    sj = state_jacobian(cell)

    def chains(block) -> dict:  # type: ignore[no-untyped-def]
        out: dict = {}
        for t in block:
            key = (t.weights, t.diags[1:])
            out[key] = out.get(key, 0) + t.diags[0]
        return out

    for j, col in enumerate(cell.state):
        blocks = derive(cell, col)
        for i in range(len(cell.state)):
            got, want = chains(blocks[i]), chains(sj.blocks[i][j])
            assert set(got) == set(want)
            assert all(sp.simplify(got[k] - want[k]) == 0 for k in got)


def test_printed_forms() -> None:
    """Matrix forms read as papers write them (Elman RNN: diag(1 - h_t^2) W_ih)."""
    assert str(input_jacobian(get_cell("rnn"))) == "dh_t/dx_t = diag(1 - h_t**2) @ W_ih"
    lstm = input_jacobian(get_cell("lstm"))
    assert r"\operatorname{diag}" in lstm.latex() and "W_{ii}" in lstm.latex()
    text = str(parameter_derivatives(get_cell("gru")))
    assert "grad W_hn = (v^T ds_t/da_nh)^T h^T" in text
    with pytest.raises(CellError, match="no vector"):
        derive(get_cell("rnn"), "nope")
    with pytest.raises(CellError, match="no parameter"):
        explicit_parameter_jacobian(get_cell("rnn"), 2, 1, "h")

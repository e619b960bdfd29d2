"""Generated kernels: printed source (runs without CuPy) and values against references.

References: the materialised Jacobian kernel for the apply kernels (DESIGN decision 5: the fast
path must equal the plain one), and the sum of the path kernels for the full one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import CATALOGUE, define_cell, get_cell
from gradflow.codegen import XpPrinter, compile_cell
from gradflow.engine import state_jacobians

CELLS = sorted(CATALOGUE)


def _params(cell, n, d, rng, scale=1.0):
    return {
        p.name: rng.standard_normal(p.numeric_shape(n, d))
        * (scale / np.sqrt(n) if p.kind == "weight" else 0.5)
        for p in cell.parameters
    }


@pytest.mark.parametrize("name", CELLS)
def test_source_names_only_xp_and_broadcasts_diagonals(name):
    src = compile_cell(get_cell(name)).source
    assert "numpy" not in src and "cupy" not in src
    assert "diag" not in src  # diag(v) @ W is printed as v[..., :, None] * W or P * v[..., None, :]
    assert "def step(" in src and "def apply(" in src and "def jacobian(" in src
    compile(src, "<check>", "exec")


def test_printer_prints_sigmoid_overflow_free():
    import sympy as sp

    from gradflow.cells import sigmoid

    x = sp.Symbol("x")
    assert XpPrinter().doprint(sigmoid(x)) == "(0.5*(1 + xp.tanh(0.5*(x))))"
    assert XpPrinter().doprint(sp.tanh(x)) == "xp.tanh(x)"


def test_kernels_are_cached_per_cell_and_path():
    cell = get_cell("lstm")
    assert compile_cell(cell) is compile_cell(cell)
    assert compile_cell(cell, path="additive") is not compile_cell(cell)


def _factors(kern, cell, params, x, rng):
    q = kern.pack(params)
    B = x.shape[0]
    n = q["n"]
    s = rng.uniform(-0.9, 0.9, (B, cell.state_size(n)))
    _, V = kern.step(s, kern.input_projection(x, q), q)
    return q, kern.factors(V, q, (B, n))


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(CELLS),
    n=st.integers(1, 5),
    rows=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_apply_equals_product_with_materialised_jacobian(name, n, rows, seed):
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    kern = compile_cell(cell)
    params = _params(cell, n, 2, rng)
    x = rng.standard_normal((3, 2))
    q, F = _factors(kern, cell, params, x, rng)
    J = kern.jacobian(F, q, (3,))
    P = rng.standard_normal((3, rows, cell.state_size(n)))
    # Reference: dense P @ J; tolerance: a few ulps of the accumulated products.
    np.testing.assert_allclose(kern.apply(P, F, q), P @ J, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kern.apply_vec(P, F, q), P @ J, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CELLS)
def test_paths_add_up_to_full_jacobian(name):
    rng = np.random.default_rng(1)
    cell = get_cell(name)
    params = _params(cell, 3, 2, rng)
    x = rng.standard_normal((4, 2, 2))
    full = state_jacobians(cell, params, x)
    add = state_jacobians(cell, params, x, path="additive")
    mul = state_jacobians(cell, params, x, path="multiplicative")
    # J = J_add + J_mul exactly (same terms, split), up to rounding.
    np.testing.assert_allclose(add + mul, full, rtol=1e-13, atol=1e-14)


def test_rnn_jacobian_is_diag_times_weight():
    rng = np.random.default_rng(2)
    cell = get_cell("rnn")
    params = _params(cell, 4, 3, rng)
    x = rng.standard_normal((5, 1, 3))
    from gradflow.engine import rollout

    states = rollout(cell, params, x)
    J = state_jacobians(cell, params, x)
    for t in range(5):
        h = states[t + 1, 0]
        # Published form (Pascanu et al. 2013): diag(1 - h_t^2) W_hh.
        np.testing.assert_allclose(J[t, 0], (1 - h**2)[:, None] * params["W_hh"], rtol=1e-14)


def test_step_matches_pytorch_equations_for_gru():
    # nn.GRU equations from the PyTorch documentation, written out independently here.
    rng = np.random.default_rng(3)
    cell = get_cell("gru")
    n, d = 4, 3
    p = _params(cell, n, d, rng)
    x = rng.standard_normal((1, 2, d))
    h = rng.uniform(-1, 1, (2, n))

    def sig(a):
        return 1 / (1 + np.exp(-a))

    r = sig(x[0] @ p["W_ir"].T + p["b_ir"] + h @ p["W_hr"].T + p["b_hr"])
    z = sig(x[0] @ p["W_iz"].T + p["b_iz"] + h @ p["W_hz"].T + p["b_hz"])
    nn_ = np.tanh(x[0] @ p["W_in"].T + p["b_in"] + r * (h @ p["W_hn"].T + p["b_hn"]))
    expected = (1 - z) * nn_ + z * h
    from gradflow.engine import rollout

    got = rollout(cell, p, x, s0=h)[1]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(
    "h_new",
    [
        "0.5 * h + a + tanh(c)",  # a bare weight, a row-scaled one, a constant diagonal
        "sigmoid(a) * h + tanh(c) + a",  # a gate diagonal folded into the materialised block
        "0.5 * h + a + c",  # bare weights only: a plain sum, the diagonal kept outside
    ],
)
@pytest.mark.parametrize("path", ["full", "additive", "multiplicative"])
def test_materialised_blocks_of_user_cells(h_new, path):
    # The apply kernel forms sum_t diag(d_t) W_t in place and folds diagonal terms into it;
    # user cells reach the branches the catalogue does not (weights with no row scaling).
    cell = define_cell(
        "mixed",
        ["h"],
        {"a": "W_a @ x + U_a @ h + b_a", "c": "W_c @ x + U_c @ h + b_c", "h_new": h_new},
    )
    full = compile_cell(cell)
    kern = compile_cell(cell, path=path)
    rng = np.random.default_rng(3)
    params = _params(cell, 4, 2, rng)
    q, _ = _factors(full, cell, params, rng.standard_normal((3, 2)), rng)
    s = rng.uniform(-0.9, 0.9, (3, 4))
    _, V = full.step(s, full.input_projection(rng.standard_normal((3, 2)), q), q)
    by_name = dict(zip(full.layout.needed, V, strict=True))
    F = kern.factors([by_name[v] for v in kern.layout.needed], q, (3, 4))
    J = kern.jacobian(F, q, (3,))
    P = rng.standard_normal((3, 5, 4))
    np.testing.assert_allclose(kern.apply(P, F, q), P @ J, rtol=1e-12, atol=1e-12)

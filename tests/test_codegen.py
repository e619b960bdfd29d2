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


def _p(cell, n):
    """The second size of a cell that has one (lstm-proj): p = n - 1, at least 1."""
    return max(1, n - 1) if cell.has_second_size else None


def _params(cell, n, d, rng, scale=1.0):
    return {
        p.name: rng.standard_normal(p.numeric_shape(n, d, _p(cell, n)))
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


def test_printer_prints_sigmoid_and_sech2_through_tail_exact_helpers():
    import sympy as sp

    from gradflow.cells import sigmoid
    from gradflow.codegen import sech2

    x = sp.Symbol("x")
    assert XpPrinter().doprint(sigmoid(x)) == "_sigmoid(x)"
    assert XpPrinter().doprint(sech2(x)) == "_sech2(x)"
    assert XpPrinter().doprint(sp.tanh(x)) == "xp.tanh(x)"
    src = compile_cell(get_cell("lstm")).source
    assert "def _sigmoid(x):" in src and "def _sech2(x):" in src  # printed source is complete


def test_complements_of_gates_are_rewritten_from_the_derivation():
    # 1 - f -> sigmoid(-a_f), 1 - g**2 -> sech2(a_g), 1 - tanh(c_new)**2 -> sech2(c_new)
    kern = compile_cell(get_cell("lstm"))
    src = kern.source.split("def factors", 1)[1].split("def apply", 1)[0]
    assert "_sigmoid(-v_a_f)" in src and "_sigmoid(-v_a_i)" in src and "_sigmoid(-v_a_o)" in src
    assert "_sech2(v_a_g)" in src and "_sech2(v_c_new)" in src
    assert "1 - " not in src
    gru = compile_cell(get_cell("gru")).source.split("def factors", 1)[1]
    assert "_sigmoid(-v_a_z)" in gru.split("def apply", 1)[0]


def test_kernels_are_cached_per_cell_and_path():
    cell = get_cell("lstm")
    assert compile_cell(cell) is compile_cell(cell)
    assert compile_cell(cell, path="additive") is not compile_cell(cell)


def _factors(kern, cell, params, x, rng):
    q = kern.pack(params)
    B = x.shape[0]
    n = q["n"]
    s = rng.uniform(-0.9, 0.9, (B, cell.state_size(n, _p(cell, n))))
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
    P = rng.standard_normal((3, rows, cell.state_size(n, _p(cell, n))))
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
        a = params["W_ih"] @ x[t, 0] + params["W_hh"] @ states[t, 0]
        a += params["b_ih"] + params["b_hh"]
        # Published form (Pascanu et al. 2013): diag(1 - h_t^2) W_hh, with 1 - tanh(a)^2
        # evaluated as 1/cosh(a)^2: no cancellation when |h_t| is near 1. rtol: rounding of a.
        np.testing.assert_allclose(
            J[t, 0], (1 / np.cosh(a) ** 2)[:, None] * params["W_hh"], rtol=1e-14
        )


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


# -- names are data (issue 13) -------------------------------------------------------------
def test_cell_name_with_code_is_refused_and_never_reaches_generated_source():
    from gradflow.cells import Cell, Elementwise
    from gradflow.errors import CellError

    rnn = get_cell("rnn")
    payload = 'x"""; import os; os.system("touch /tmp/gradflow-pwned"); """'
    with pytest.raises(CellError, match="is not kebab-case"):
        Cell(name=payload, state=rnn.state, nodes=rnn.nodes, update=rnn.update)
    # A valid cell's source carries none of the user's text, docstrings included.
    cell = define_cell(
        "evil-name-1",
        ["h"],
        {"a": "W @ x + U @ h + b", "h_new": "tanh(a)"},
        description='"""; import os',
        reference='"""',
    )
    src = compile_cell(cell).source
    assert "evil" not in src and "import" not in src
    with pytest.raises(CellError, match="not a plain identifier"):
        Cell(
            name="t",
            state=("h",),
            nodes=(Elementwise('h_new"]; import os; q["', rnn.nodes[-1].expr),),
            update=(("h", 'h_new"]; import os; q["'),),
        )


@pytest.mark.parametrize("reserved", ["n", "d"])
def test_parameters_named_like_the_sizes_are_refused_in_one_line(reserved):
    import sympy as sp

    from gradflow.cells import Cell, Elementwise
    from gradflow.errors import CellError, EquationError

    with pytest.raises(EquationError, match=f"parameter '{reserved}' is reserved") as info:
        define_cell("t", ["h"], {"h_new": f"{reserved} * h"}, parameters=[reserved])
    assert "\n" not in str(info.value)
    h, p = sp.Symbol("h", real=True), sp.Symbol(reserved, real=True)
    with pytest.raises(CellError, match=f"parameter '{reserved}' is reserved"):
        Cell(name="t", state=("h",), nodes=(Elementwise("h_new", p * h),), update=(("h", "h_new"),))


def test_vector_parameters_named_like_kernel_variables_do_not_collide():
    # q, s, u, P, F, shape, eye and the helpers' names are kernel variables; every user name
    # reaches the kernels behind a prefix (v_, p_) or a "V:" key, so these are ordinary names.
    names = ["q", "s", "u", "P", "F", "shape", "eye", "e", "t0", "G00", "o0", "sigmoid_"]
    expr = " + ".join(f"{nm} * h" for nm in names)
    cell = define_cell(
        "clash", ["h"], {"a": "W @ x + U @ h", "h_new": f"tanh(a) + {expr}"}, parameters=names
    )
    rng = np.random.default_rng(3)
    n, d, B = 3, 2, 4
    params = _params(cell, n, d, rng)
    x = rng.standard_normal((B, d))
    kern = compile_cell(cell)
    q = kern.pack(params)
    h = rng.uniform(-0.9, 0.9, (B, n))
    h_new, V = kern.step(h, kern.input_projection(x, q), q)
    # reference: the equations in NumPy, written here by hand
    a = x @ params["W"].T + h @ params["U"].T
    want = np.tanh(a) + sum(params[nm] * h for nm in names)
    np.testing.assert_allclose(h_new, want, rtol=1e-13)  # rounding only
    J = kern.jacobian(kern.factors(V, q, (B, n)), q, (B,))
    want_J = (1 - np.tanh(a) ** 2)[:, :, None] * params["U"] + np.eye(n) * sum(
        params[nm] for nm in names
    )
    np.testing.assert_allclose(J, want_J, rtol=1e-12, atol=1e-14)  # rounding only


# -- gate tails: every elementwise function at its extremes against mpmath (issue 13) -------
mp = pytest.importorskip("mpmath")
mp.mp.dps = 50


def _mp_sigmoid(x):
    return 1 / (1 + mp.exp(-x))


# f and f' written in mpmath from their definitions, independent of SymPy and the printer.
EXTREMES = {
    "sigmoid": (
        _mp_sigmoid,
        lambda x: _mp_sigmoid(x) * _mp_sigmoid(-x),
        [-700.0, -100.0, -40.0, -37.5, -1e-9, 0.0, 3.0, 20.0, 40.0, 100.0, 700.0],
    ),
    "tanh": (
        mp.tanh,
        lambda x: mp.sech(x) ** 2,
        [-300.0, -40.0, -19.5, -1e-9, 0.0, 0.5, 19.5, 40.0, 300.0],
    ),
    "softplus": (
        lambda x: mp.log1p(mp.exp(x)),
        _mp_sigmoid,
        [-700.0, -40.0, -1e-9, 0.0, 2.0, 40.0, 700.0, 1e300],
    ),
    "exp": (mp.exp, mp.exp, [-700.0, -40.0, 0.0, 1e-9, 40.0, 700.0]),
    "log": (mp.log, lambda x: 1 / x, [1e-300, 1e-9, 0.5, 1.0 + 2**-40, 1e9, 1e300]),
    "sqrt": (mp.sqrt, lambda x: 1 / (2 * mp.sqrt(x)), [1e-300, 1e-9, 2.0, 1e300]),
    "abs": (abs, mp.sign, [-1e300, -1e-300, 0.0, 1e-300, 1e300]),
    "relu": (
        lambda x: max(x, 0),
        lambda x: 1 if x > 0 else 0,  # relu'(0) = 0 by convention
        [-1e300, -1e-300, 0.0, 1e-300, 1e300],
    ),
    "sin": (mp.sin, mp.cos, [-1e6 - 0.5, -3.0, 1e-9, 1.0, 100.0, 1e6 + 0.25]),
    "cos": (mp.cos, lambda x: -mp.sin(x), [-1e6 - 0.5, -3.0, 1e-9, 1.0, 100.0, 1e6 + 0.25]),
    # non-smooth functions: the subgradient at a kink is PyTorch's (torch 2.13 autograd:
    # torch.maximum gives 1/2 to each side of a tie, torch.clamp 1 on the closed interval,
    # hardsigmoid 0 at -3 and 3)
    "max": (
        lambda x: max(x, mp.mpf(0.25)),
        lambda x: 1 if x > 0.25 else (mp.mpf(0.5) if x == 0.25 else 0),
        [-1e300, -1.0, 0.25, 0.5, 1e300],
    ),
    "clip": (
        lambda x: min(max(x, mp.mpf(-0.5)), mp.mpf(2)),
        lambda x: 1 if -0.5 <= x <= 2 else 0,
        [-1e300, -0.75, -0.5, 0.0, 2.0, 2.5, 1e300],
    ),
    "hard_sigmoid": (
        lambda x: min(max(x / 6 + mp.mpf(0.5), 0), 1),
        lambda x: mp.mpf(1) / 6 if -3 < x < 3 else 0,
        [-1e300, -4.0, -3.0, -1.0, 0.0, 2.5, 3.0, 1e300],
    ),
}
#: how a function with more arguments is called on the unit value h
CALLS = {"max": "max(h, 0.25)", "clip": "clip(h, -0.5, 2)"}


def test_every_grammar_function_is_checked_at_its_extremes():
    from gradflow.cells import FUNCTIONS

    assert set(EXTREMES) == set(FUNCTIONS)


def _close(got, want, what):
    want = float(want)  # the float64 nearest the 50-digit value
    if want == 0.0:
        assert got == 0.0, what
    else:
        # 8 ulp: the tail-exact forms lose a few roundings, never the value itself
        assert abs(got - want) <= 8 * np.spacing(abs(want)) + 1e-300, (what, got, want)


@pytest.mark.parametrize("fname", sorted(EXTREMES))
def test_values_and_derivatives_at_the_extremes_match_mpmath(fname):
    f, df, points = EXTREMES[fname]
    cell = define_cell("one", ["h"], {"h_new": CALLS.get(fname, f"{fname}(h)")})
    kern = compile_cell(cell)
    x = np.array(points)
    B = len(points)
    q = {"n": 1, "d": 0}
    h_new, V = kern.step(x[:, None], np.zeros((B, 0)), q)
    J = kern.jacobian(kern.factors(V, q, (B, 1)), q, (B,))
    for k, p in enumerate(points):
        xm = mp.mpf(p)  # exactly the float input
        _close(float(h_new[k, 0]), f(xm), f"{fname}({p})")
        _close(float(J[k, 0, 0]), df(xm), f"{fname}'({p})")


def test_sqrt_abs_at_zero_is_a_one_line_error_not_nan():
    from gradflow.errors import NumericalError

    cell = define_cell("kink", ["h"], {"h_new": "sqrt(abs(h))"})
    kern = compile_cell(cell)
    q = {"n": 1, "d": 0}
    _, V = kern.step(np.array([[0.5], [0.0]]), np.zeros((2, 0)), q)
    with pytest.raises(NumericalError, match=r"not finite at .* = \(1, 0\)") as info:
        kern.factors(V, q, (2, 1))
    assert "\n" not in str(info.value)
    # abs alone has the subgradient sign(0) = 0 at its kink: finite
    kern = compile_cell(define_cell("kink2", ["h"], {"h_new": "abs(h)"}))
    _, V = kern.step(np.array([[0.0]]), np.zeros((1, 0)), q)
    assert float(kern.jacobian(kern.factors(V, q, (1, 1)), q, (1,))[0, 0, 0]) == 0.0


def _mp_lstm_step(s, x, P, n):
    """One nn.LSTM step in mpmath (PyTorch's documented equations, gate order i, f, g, o)."""
    h, c = s[:n], s[n:]

    def affine(g):
        return [
            sum(P[f"W_i{g}"][r][k] * x[k] for k in range(len(x)))
            + sum(P[f"W_h{g}"][r][k] * h[k] for k in range(n))
            + P[f"b_i{g}"][r]
            + P[f"b_h{g}"][r]
            for r in range(n)
        ]

    i = [_mp_sigmoid(a) for a in affine("i")]
    f = [_mp_sigmoid(a) for a in affine("f")]
    g = [mp.tanh(a) for a in affine("g")]
    o = [_mp_sigmoid(a) for a in affine("o")]
    c_new = [f[r] * c[r] + i[r] * g[r] for r in range(n)]
    h_new = [o[r] * mp.tanh(c_new[r]) for r in range(n)]
    return h_new + c_new


def test_lstm_with_gate_biases_of_minus_40_matches_mpmath_through_analyze():
    """Issue 13: input and forget biases of -40 gave an exactly-zero product; the truth is
    about -17.4 decades per step. Reference: mpmath at 50 digits, the step written from
    PyTorch's equations and its Jacobian by mpmath's numerical differentiation (independent of
    the SymPy derivation and the code generator); tolerance 1e-9 in log10 (issue 13)."""
    from gradflow.engine import analyze

    rng = np.random.default_rng(40)
    cell = get_cell("lstm")
    n, d, T = 2, 1, 4
    params = _params(cell, n, d, rng)
    for b in ("b_ii", "b_if"):
        params[b] = np.full(n, -40.0)
    for b in ("b_hi", "b_hf"):
        params[b] = np.zeros(n)
    x = rng.standard_normal((T, 1, d))
    res = analyze(cell, params, x)
    got = np.asarray(res.log10_spectral_norm)[:, 0]

    P = {
        k: mp.matrix(v.tolist()) if v.ndim == 2 else [mp.mpf(e) for e in v]
        for k, v in params.items()
    }
    P = {
        k: (
            [[v[r, c] for c in range(v.cols)] for r in range(v.rows)]
            if isinstance(v, mp.matrix)
            else v
        )
        for k, v in P.items()
    }
    s = [mp.mpf(0)] * (2 * n)
    jacobians = []
    for t in range(T):
        xt = [mp.mpf(float(e)) for e in x[t, 0]]
        J = mp.matrix(2 * n, 2 * n)
        for col in range(2 * n):

            def component(v, col=col, xt=xt, s=s):
                moved = list(s)
                moved[col] = v
                return _mp_lstm_step(moved, xt, P, n)

            for row in range(2 * n):
                J[row, col] = mp.diff(
                    lambda v, row=row, component=component: component(v)[row], s[col]
                )
        jacobians.append(J)
        s = _mp_lstm_step(s, xt, P, n)
    prod = mp.eye(2 * n)
    want = [mp.mpf(0)]
    for k in range(1, T + 1):
        prod = prod * jacobians[T - k]  # ds_T/ds_{T-k} = J_T ... J_{T-k+1}
        want.append(mp.log10(max(mp.svd_r(prod, compute_uv=False))))
    want = np.array([float(w) for w in want])
    assert want[-1] < -17 * T  # the regime of the issue: about -17.4 decades per step
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)

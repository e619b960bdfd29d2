"""F4 matrix definitions and F3 the fixed identity (docs/cells-2018-2026.md §1, docs/cell-files.md).

A matrix definition is a linear combination of weights, their transposes and the identity
``I`` (``M = "W - transpose(W) - gamma * I"``); affine lines use it like a weight. The
hypothesis tests draw random definitions and check, on random cells that use them:

* the generated step Jacobian against central finite differences of the generated step
  (FD step 1e-6 on smooth O(1) functions: truncation O(1e-12), rounding O(1e-10): atol 1e-7);
* the matrix-form Jacobian against SymPy's ``Matrix.jacobian`` of the explicitly unrolled
  step, where the matrix is written out from its weights' scalar symbols (two exact formulas
  in float64: 1e-12);
* the parameter gradient of the *trained* weight (through the transform) against finite
  differences in that weight (atol 1e-7, as above).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import define_cell, load_cell_file
from gradflow.engine import analyze, rollout, state_jacobians
from gradflow.errors import EquationError, InputsError
from gradflow.initialisers import Init, initialise
from gradflow.symbolic.explicit import explicit_step

FD = 1e-6

coefficient = st.sampled_from([-2.0, -1.0, -0.5, 0.25, 0.5, 1.0, 1.5])


@st.composite
def matrix_text(draw: st.DrawFn) -> str:
    """A random linear combination of W, transpose(W), P, transpose(P) and I."""
    parts = []
    for atom in ("W", "transpose(W)", "P", "transpose(P)", "I"):
        if draw(st.booleans()):
            parts.append(f"{draw(coefficient)} * {atom}")
    if not any("W" in p or "P" in p for p in parts):
        parts.append("W")
    return " + ".join(parts)


USES = [
    # (equations, update) using matrix M: as a recurrent weight, on the additive path, chained
    {"a": "M @ h + V @ x + b", "h_new": "h + eps * tanh(a)"},
    {"Mh": "M @ h", "a": "U @ h + V @ x + b", "h_new": "h + eps * Mh + eps * tanh(a)"},
    {"a": "V @ x + b", "g": "sigmoid(a) * h", "c": "M @ g + U @ h", "h_new": "eps * tanh(c)"},
]


def _cell(text: str, use: int):  # type: ignore[no-untyped-def]
    return define_cell(
        f"random-matrix-{use}",
        "h",
        USES[use],
        constants={"eps": 0.3},
        matrices={"M": text},
    )


def _numeric(step, cell, p, x, s):  # type: ignore[no-untyped-def]
    from scipy.special import expit

    syms, vals = [], []
    values = {cell.input: x, "h": s, **p}
    for name, entry in step.symbols.items():
        flat = [v for row in entry for v in row] if isinstance(entry[0], list) else list(entry)
        syms += flat
        vals += list(np.ravel(values[name]))
    fn = sp.lambdify(syms, step.jacobian, modules=[{"sigmoid": expit}, "numpy"])
    return np.asarray(fn(*vals), dtype=float)


@given(
    text=matrix_text(),
    use=st.integers(0, len(USES) - 1),
    n=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=20, deadline=None)
def test_random_matrix_definitions_jacobian_vs_finite_differences(
    text: str, use: int, n: int, seed: int
) -> None:
    cell = _cell(text, use)
    rng = np.random.default_rng(seed)
    d = 2
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((2, 2, d))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    for t in range(2):
        for j in range(n):
            s_plus, s_minus = states[t].copy(), states[t].copy()
            s_plus[:, j] += FD
            s_minus[:, j] -= FD
            fd = (
                rollout(cell, p, x[t : t + 1], s0=s_plus)[1]
                - rollout(cell, p, x[t : t + 1], s0=s_minus)[1]
            ) / (2 * FD)
            np.testing.assert_allclose(J[t][:, :, j], fd, rtol=0, atol=1e-7)


@pytest.mark.parametrize("use", range(len(USES)))
@pytest.mark.parametrize(
    "text", ["W - transpose(W) - 0.05 * I", "0.5 * (W + transpose(P)) + 2 * P", "-transpose(W)"]
)
def test_matrix_definitions_jacobian_vs_explicit_sympy(text: str, use: int) -> None:
    # the explicit step writes M out from the weights' scalar symbols (n = 3, d = 2)
    cell = _cell(text, use)
    rng = np.random.default_rng(use)
    n, d = 3, 2
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((2, 1, d))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    step = explicit_step(cell, n, d)
    for t in range(2):
        explicit = _numeric(step, cell, p, x[t, 0], states[t, 0])
        np.testing.assert_allclose(J[t, 0], explicit, rtol=0, atol=1e-12)


@given(text=matrix_text(), n=st.integers(2, 4), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None)
def test_parameter_gradient_goes_through_the_transform(text: str, n: int, seed: int) -> None:
    # v^T ds_t/dW for the trained W (not for M): sensitivity kernels vs central differences
    from gradflow.sensitivity_codegen import compile_sensitivity

    cell = _cell(text, 0)
    rng = np.random.default_rng(seed)
    d = 2
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((1, 1, d))
    s = rng.uniform(-0.9, 0.9, (1, n))
    v = rng.standard_normal(n)
    kern = compile_sensitivity(cell)
    q = kern.pack(p)
    grads = kern.param_vjp(v[None, :], kern.values(s, x[0], q), q)
    for name in ("W", "P"):
        if name not in p:
            continue
        fd = np.zeros_like(p[name])
        for idx in np.ndindex(*p[name].shape):
            plus = {**p, name: p[name].copy()}
            minus = {**p, name: p[name].copy()}
            plus[name][idx] += FD
            minus[name][idx] -= FD
            f = rollout(cell, plus, x, s0=s)[1, 0] @ v - rollout(cell, minus, x, s0=s)[1, 0] @ v
            fd[idx] = f / (2 * FD)
        np.testing.assert_allclose(np.asarray(grads[name])[0], fd, rtol=0, atol=1e-7)


def test_cell_file_and_python_give_the_same_cell(tmp_path: Path) -> None:
    path = tmp_path / "asym.toml"
    path.write_text(
        'state = ["h"]\nconstants = {eps = 0.3, gamma = 0.05}\n'
        '[matrices]\nM = "W - transpose(W) - gamma * I"\n'
        '[equations]\na = "M @ h + V @ x + b"\nh_new = "h + eps * tanh(a)"\n',
        "utf-8",
    )
    from_file = load_cell_file(path)
    from_python = define_cell(
        "asym",
        "h",
        {"a": "M @ h + V @ x + b", "h_new": "h + eps * tanh(a)"},
        constants={"eps": 0.3, "gamma": 0.05},
        matrices={"M": "W - transpose(W) - gamma * I"},
    )
    assert from_file == from_python
    assert [p.name for p in from_file.parameters] == ["W", "V", "b"]
    assert from_file.matrices[0].text() == "W - transpose(W) - 0.05*I"
    # the additive part is I (no activation touches it), the rest goes through tanh'(a)
    paths = from_file.jacobian().paths()
    assert str(paths.additive) == "dh_t/dh_{t-1} = I"
    assert "@ M" in str(paths.multiplicative)


def test_antisymmetric_matrix_has_eigenvalues_on_minus_gamma() -> None:
    # W - W^T - gamma I: every eigenvalue has real part -gamma (Chang et al. 2019, Sec. 3);
    # 1e-12: eigenvalues of a 6x6 matrix in float64
    cell = define_cell(
        "asym",
        "h",
        {"a": "M @ h + V @ x + b", "h_new": "h + 0.1 * tanh(a)"},
        matrices={"M": "W - transpose(W) - 0.05 * I"},
    )
    p = initialise(cell, 6, 2, Init(scheme="gaussian"), np.random.default_rng(0))
    M = cell.with_matrices(p)["M"]
    np.testing.assert_allclose(np.linalg.eigvals(M).real, -0.05, rtol=0, atol=1e-12)


def test_identity_uses_the_input_unit_by_unit() -> None:
    # F3: u = I @ x is the input itself (d = n); h_t = a h + (1 - a) x, so the rollout is an
    # exponential moving average (1e-15: the same float64 recursion)
    cell = define_cell(
        "ema",
        "h",
        {"u": "Id @ x", "h_new": "lam * h + (1 - lam) * u"},
        parameters=["lam"],
        matrices={"Id": "I"},
    )
    assert [p.name for p in cell.parameters] == ["lam"]
    lam = np.array([0.5, 0.9, 0.1])
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    states = rollout(cell, {"lam": lam}, x)
    h = np.zeros((2, 3))
    for t in range(4):
        h = lam * h + (1 - lam) * x[t]
        np.testing.assert_allclose(states[t + 1], h, rtol=0, atol=1e-15)
    with pytest.raises(InputsError, match="input size d must be the hidden size 3"):
        analyze(cell, {"lam": lam}, np.zeros((4, 2, 2)))


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        ("W @ P", "products of two matrices"),
        ("W * P", "products of two matrices"),
        ("W + 1", "a number cannot be added to a matrix"),
        ("tanh(W)", r"the only calls in a matrix definition are transpose\(M\), heads"),
        ("transpose(2)", "takes a matrix, not a number"),
        ("2 * 3", "must hold a weight or I"),
        ("W.T", "not allowed in a matrix definition"),
        ("W / 0", "division by zero"),
    ],
)
def test_bad_matrix_definitions_are_one_line_errors(matrix: str, match: str) -> None:
    with pytest.raises(EquationError, match=match) as err:
        define_cell("bad", "h", {"a": "M @ h", "h_new": "tanh(a)"}, matrices={"M": matrix})
    assert "\n" not in str(err.value) and "matrix 'M'" in str(err.value)


@pytest.mark.parametrize(
    ("equations", "matrices", "match"),
    [
        ({"a": "U @ h", "h_new": "tanh(a)"}, {"M": "W"}, "'M' is defined but not used"),
        ({"a": "M @ h", "h_new": "tanh(a)"}, {"I": "W"}, "fixed identity matrix"),
        ({"a": "M @ h + W @ x", "h_new": "tanh(a)"}, {"M": "W"}, "multiplies vectors of size"),
        ({"a": "M @ h + M @ x", "M": "tanh(a)"}, {"M": "W"}, "defined twice"),
        ({"a": "M @ h + b", "h_new": "tanh(a) + M"}, {"M": "W"}, "'M' is a matrix"),
    ],
)
def test_matrix_definitions_follow_the_cell_rules(
    equations: dict[str, str], matrices: dict[str, str], match: str
) -> None:
    with pytest.raises(EquationError, match=match) as err:
        define_cell("bad", "h", equations, matrices=matrices)
    assert "\n" not in str(err.value)


def test_constants_used_only_in_matrices_count_as_used() -> None:
    cell = define_cell(
        "c-only",
        "h",
        {"a": "M @ h", "h_new": "tanh(a)"},
        constants={"gamma": 0.5},
        matrices={"M": "W - gamma * I"},
    )
    assert cell.constants == (("gamma", 0.5),) and cell.matrices[0].identity == -0.5


# ---- F2: weights stored as heads blocks ------------------------------------------------------


@given(
    heads=st.integers(1, 3),
    size=st.integers(1, 2),
    transposed=st.booleans(),
    dense=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=20, deadline=None)
def test_random_heads_cells_jacobian_and_gradient_vs_finite_differences(
    heads: int, size: int, transposed: bool, dense: bool, seed: int
) -> None:
    # R = heads(K, H) [- 0.5 transpose(heads(K, H))] [+ 0.3 U]: J_t vs central differences
    # (atol 1e-7, as above), block-diagonal exactly when no dense weight is on the chain, and
    # v^T ds/dK (the blocks only) vs central differences in K
    from gradflow.sensitivity_codegen import compile_sensitivity

    text = f"heads(K, {heads})"
    if transposed:
        text += f" - 0.5 * transpose(heads(K, {heads}))"
    if dense:
        text += " + 0.3 * U"
    cell = define_cell(
        "random-heads",
        "h",
        {"a": "R @ h + V @ x + b", "h_new": "0.5 * h + tanh(a)"},
        matrices={"R": text},
    )
    n, d = heads * size, 2
    rng = np.random.default_rng(seed)
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    assert p["K"].shape == (heads, size, size)
    x = rng.standard_normal((2, 2, d))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    for t in range(2):
        for j in range(n):
            s_plus, s_minus = states[t].copy(), states[t].copy()
            s_plus[:, j] += FD
            s_minus[:, j] -= FD
            fd = (
                rollout(cell, p, x[t : t + 1], s0=s_plus)[1]
                - rollout(cell, p, x[t : t + 1], s0=s_minus)[1]
            ) / (2 * FD)
            np.testing.assert_allclose(J[t][:, :, j], fd, rtol=0, atol=1e-7)
    off = np.ones((n, n), bool)
    for k in range(heads):
        off[k * size : (k + 1) * size, k * size : (k + 1) * size] = False
    if not dense:
        assert np.all(J[..., off] == 0)  # exactly zero off the blocks
    kern = compile_sensitivity(cell)
    q = kern.pack(p)
    s = states[1][:1]
    v = rng.standard_normal(n)
    grad = np.asarray(kern.param_vjp(v[None, :], kern.values(s, x[1, :1], q), q)["K"])[0]
    fd_k = np.zeros_like(p["K"])
    for idx in np.ndindex(*p["K"].shape):
        plus, minus = {**p, "K": p["K"].copy()}, {**p, "K": p["K"].copy()}
        plus["K"][idx] += FD
        minus["K"][idx] -= FD
        f_plus = rollout(cell, plus, x[1:2, :1], s0=s)[1, 0] @ v
        fd_k[idx] = (f_plus - rollout(cell, minus, x[1:2, :1], s0=s)[1, 0] @ v) / (2 * FD)
    np.testing.assert_allclose(grad, fd_k, rtol=0, atol=1e-7)


def test_heads_jacobian_vs_explicit_sympy() -> None:
    # the explicit step writes blockdiag(K[0], K[1]) from K's scalar symbols (n = 4, H = 2)
    cell = define_cell(
        "heads-explicit",
        "h",
        {"a": "R @ h + V @ x + b", "h_new": "sigmoid(a) * h + tanh(a)"},
        matrices={"R": "heads(K, 2) - transpose(heads(K, 2))"},
    )
    rng = np.random.default_rng(1)
    p = initialise(cell, 4, 2, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((2, 1, 2))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    step = explicit_step(cell, 4, 2)
    for t in range(2):
        explicit = _numeric(step, cell, p, x[t, 0], states[t, 0])
        np.testing.assert_allclose(J[t, 0], explicit, rtol=0, atol=1e-12)


def test_slstm_fixture_from_xlstm_head_blocks() -> None:
    # F2 stores only the blocks: xLSTM's head-wise recurrent kernel (H, hd, 4 hd) gives each
    # gate's blocks K_g[k] = kernel[k, :, g hd:(g+1) hd]^T (docs §3.12); the sLSTM written with
    # R_g = heads(K_g, 2) reproduces the PyTorch reference to 1e-12 (as the catalogue test)
    import json

    from safetensors.numpy import load_file

    data = Path(__file__).parent / "data" / "modern_cells"
    record = json.loads((data / "slstm.json").read_text())
    tensors = load_file(data / "slstm.safetensors")
    ref = load_file(data / "slstm_reference.safetensors")
    x = np.load(data / "slstm_inputs.npy")
    n, heads = int(record["hidden_size"]), int(record["hyperparameters"]["heads"])
    hd = n // heads
    eqs = {f"a_{g}": f"W_{g} @ x + R_{g} @ h + b_{g}" for g in "ifzo"}
    eqs.update(
        {
            "i": "exp(a_i)",
            "f": "sigmoid(a_f)",
            "z": "tanh(a_z)",
            "o": "sigmoid(a_o)",
            "c_new": "f * c + i * z",
            "n_new": "f * n + i",
            "h_new": "o * c_new / n_new",
        }
    )
    cell = define_cell(
        "slstm-heads",
        ["h", "c", "n"],
        eqs,
        matrices={f"R_{g}": f"heads(K_{g}, {heads})" for g in "ifzo"},
    )
    kernel = tensors["recurrent_kernel"]
    p: dict[str, np.ndarray] = {}
    for k, g in enumerate("ifzo"):
        p[f"W_{g}"] = tensors["weight_ih"][k * n : (k + 1) * n]
        p[f"b_{g}"] = tensors["bias"][k * n : (k + 1) * n]
        p[f"K_{g}"] = np.stack([kernel[h, :, k * hd : (k + 1) * hd].T for h in range(heads)])
    np.testing.assert_allclose(rollout(cell, p, x), ref["states"], rtol=0, atol=1e-12)
    J = state_jacobians(cell, p, x)
    np.testing.assert_allclose(J, ref["step_jacobians"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("equations", "matrices", "match"),
    [
        ({"a": "K @ h + R @ h", "h_new": "tanh(a)"}, {"R": "heads(K, 2)"}, "stored as heads"),
        (
            {"a": "R @ h + S @ h", "h_new": "tanh(a)"},
            {"R": "heads(K, 2)", "S": "heads(K, 3)"},
            "stored with 2 heads",
        ),
        ({"a": "R @ h", "h_new": "tanh(a)"}, {"R": "heads(K, 2) + K"}, "heads"),
        ({"a": "R @ h", "h_new": "tanh(a)"}, {"R": "heads(K, 0)"}, "number of heads"),
        ({"a": "R @ h", "h_new": "tanh(a)"}, {"R": "heads(K, h)"}, "number of heads"),
    ],
)
def test_heads_errors_are_one_line(
    equations: dict[str, str], matrices: dict[str, str], match: str
) -> None:
    with pytest.raises(EquationError, match=match) as err:
        define_cell("bad", "h", equations, matrices=matrices)
    assert "\n" not in str(err.value)


def test_hidden_size_not_a_multiple_of_heads_is_one_line() -> None:
    from gradflow.errors import GradflowError

    cell = define_cell(
        "h3", "h", {"a": "R @ h + V @ x", "h_new": "tanh(a)"}, matrices={"R": "heads(K, 2)"}
    )
    p = {"V": np.ones((5, 2)), "K": np.ones((2, 2, 2))}
    with pytest.raises(GradflowError, match="heads blocks must have shape") as err:
        analyze(cell, p, np.zeros((2, 1, 2)))
    assert "\n" not in str(err.value)


# ---- F9: one row broadcast over the units ----------------------------------------------------


@given(n=st.integers(1, 4), on_state=st.booleans(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15, deadline=None)
def test_random_rows_cells_jacobian_and_gradient_vs_finite_differences(
    n: int, on_state: bool, seed: int
) -> None:
    # B = rows(w) = 1_n w^T: the scalar w . v reaches every unit (Mamba's B_t[j]); J_t and
    # v^T ds/dw vs central differences (atol 1e-7, as above)
    from gradflow.sensitivity_codegen import compile_sensitivity

    src = "h" if on_state else "u"
    cell = define_cell(
        "random-rows",
        "h",
        {
            "u": "V @ x + c",
            "s": f"B @ {src}",
            "a": "U @ h + W @ x + b",
            "h_new": "sigmoid(a) * h + s * tanh(u)",
        },
        matrices={"B": "rows(w)"},
    )
    rng = np.random.default_rng(seed)
    d = 2
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    assert p["w"].shape == (n,)
    x = rng.standard_normal((2, 2, d))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    for j in range(n):
        s_plus, s_minus = states[1].copy(), states[1].copy()
        s_plus[:, j] += FD
        s_minus[:, j] -= FD
        fd = (rollout(cell, p, x[1:2], s0=s_plus)[1] - rollout(cell, p, x[1:2], s0=s_minus)[1]) / (
            2 * FD
        )
        np.testing.assert_allclose(J[1][:, :, j], fd, rtol=0, atol=1e-7)
    kern = compile_sensitivity(cell)
    q = kern.pack(p)
    s = states[1][:1]
    v = rng.standard_normal(n)
    grad = np.asarray(kern.param_vjp(v[None, :], kern.values(s, x[1, :1], q), q)["w"])[0]
    fd_w = np.zeros(n)
    for i in range(n):
        plus, minus = {**p, "w": p["w"].copy()}, {**p, "w": p["w"].copy()}
        plus["w"][i] += FD
        minus["w"][i] -= FD
        f_plus = rollout(cell, plus, x[1:2, :1], s0=s)[1, 0] @ v
        fd_w[i] = (f_plus - rollout(cell, minus, x[1:2, :1], s0=s)[1, 0] @ v) / (2 * FD)
    np.testing.assert_allclose(grad, fd_w, rtol=0, atol=1e-7)


def test_rows_jacobian_vs_explicit_sympy() -> None:
    cell = define_cell(
        "rows-explicit",
        "h",
        {"s": "B @ h", "a": "U @ h + W @ x", "h_new": "tanh(a) * s"},
        matrices={"B": "rows(w) - 0.5 * I"},
    )
    rng = np.random.default_rng(2)
    p = initialise(cell, 3, 2, Init(scheme="gaussian"), rng)
    x = rng.standard_normal((2, 1, 2))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    step = explicit_step(cell, 3, 2)
    for t in range(2):
        np.testing.assert_allclose(
            J[t, 0], _numeric(step, cell, p, x[t, 0], states[t, 0]), rtol=0, atol=1e-12
        )


@pytest.mark.parametrize(
    ("equations", "matrices", "match"),
    [
        ({"a": "w @ h + B @ h", "h_new": "tanh(a)"}, {"B": "rows(w)"}, "stored as one row"),
        ({"a": "B @ h", "h_new": "tanh(a)"}, {"B": "rows(w) + w"}, "used both as rows"),
        ({"a": "B @ h", "h_new": "tanh(a)"}, {"B": "rows(w, 2)"}, "rows\\(w\\) takes one"),
    ],
)
def test_rows_errors_are_one_line(
    equations: dict[str, str], matrices: dict[str, str], match: str
) -> None:
    with pytest.raises(EquationError, match=match) as err:
        define_cell("bad", "h", equations, matrices=matrices)
    assert "\n" not in str(err.value)


def test_gated_antisymmetric_example_matches_the_torch_reference() -> None:
    # examples/cells/antisymmetric-gated.toml against the fixture antisymmetric-rnn-gated
    # (tests/reference/make_modern_reference.py, torch autograd, float64): weight_ih and bias
    # hold the rows [h; z]; states, J_t and A_t = I to 1e-12 (as the catalogue test)
    import json

    from safetensors.numpy import load_file

    root = Path(__file__).resolve().parents[1]
    cell = load_cell_file(root / "examples" / "cells" / "antisymmetric-gated.toml")
    data = root / "tests" / "data" / "modern_cells"
    record = json.loads((data / "antisymmetric-rnn-gated.json").read_text())
    assert record["hyperparameters"] == {"epsilon": 0.3, "gamma": 0.05}
    assert dict(cell.constants) == {"eps": 0.3, "gamma": 0.05}
    t = load_file(data / "antisymmetric-rnn-gated.safetensors")
    ref = load_file(data / "antisymmetric-rnn-gated_reference.safetensors")
    x = np.load(data / "antisymmetric-rnn-gated_inputs.npy")
    n = int(record["hidden_size"])
    p = {
        "W_h": t["weight_hh"],
        "V_h": t["weight_ih"][:n],
        "V_z": t["weight_ih"][n:],
        "b_h": t["bias"][:n],
        "b_z": t["bias"][n:],
    }
    np.testing.assert_allclose(rollout(cell, p, x), ref["states"], rtol=0, atol=1e-12)
    J = state_jacobians(cell, p, x)
    np.testing.assert_allclose(J, ref["step_jacobians"], rtol=0, atol=1e-12)
    A = state_jacobians(cell, p, x, path="additive")
    np.testing.assert_allclose(A, ref["additive_jacobians"], rtol=0, atol=1e-12)

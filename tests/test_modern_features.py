"""Graph features of issue 11 (docs/cells-2018-2026.md §1): nodes computed from parameters alone.

F1: an elementwise node whose symbols are all vector parameters (``beta = sigmoid(alpha)``,
``tau = 1 + softplus(rho)``, a parameter transform such as ``exp(-exp(nu))``) has no batch
axis of its own; every node must still be evaluated with one. Issue 11's repro crashed
``analyze`` with a broadcast ValueError: the regression tests below run it through the Python
API and a TOML cell file. The hypothesis test draws random cells with such nodes and checks the
generated Jacobian against central finite differences of the generated step (tolerance: FD step
1e-6 on smooth functions of O(1) values, truncation O(1e-12) and rounding O(1e-10): 1e-7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import define_cell, load_cell_file
from gradflow.engine import analyze, rollout, state_jacobians
from gradflow.initialisers import Init, initialise

ISSUE_EQUATIONS = {
    "beta": "sigmoid(alpha)",
    "tau": "1 + softplus(rho)",
    "a": "W @ x + U @ h + b",
    "h_new": "beta * h + (1 - beta) * tanh(a) / tau",
}


def _check_against_direct_numpy(p: dict[str, np.ndarray], x: np.ndarray, states: np.ndarray):
    # the cell of ISSUE_EQUATIONS in plain numpy (independent of the code generator)
    beta = 1 / (1 + np.exp(-p["alpha"]))
    tau = 1 + np.logaddexp(0, p["rho"])
    h = np.zeros((x.shape[1], p["U"].shape[0]))
    for t in range(x.shape[0]):
        a = x[t] @ p["W"].T + h @ p["U"].T + p["b"]
        h = beta * h + (1 - beta) * np.tanh(a) / tau
        # 1e-14: the same float64 formula, evaluated in another order
        np.testing.assert_allclose(states[t + 1], h, rtol=0, atol=1e-14)


def _issue_run(cell) -> None:  # type: ignore[no-untyped-def]
    p = initialise(cell, 4, 3, Init(scheme="gaussian", sigma_b=0.5), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((7, 3, 3))
    res = analyze(cell, p, x)  # crashed: ValueError (broadcast (T, n) to (T, B, n))
    assert res.log10_spectral_norm.shape == (8, 3)
    _check_against_direct_numpy(p, x, rollout(cell, p, x))
    # lag 1 of analyze is the norm of the last step Jacobian (1e-12 in log10: same numbers)
    J = state_jacobians(cell, p, x)
    want = np.log10(np.linalg.norm(J[-1], ord=2, axis=(-2, -1)))
    np.testing.assert_allclose(res.log10_spectral_norm[1], want, rtol=0, atol=1e-12)


def test_issue11_parameter_nodes_python_api() -> None:
    _issue_run(define_cell("param-nodes", "h", ISSUE_EQUATIONS, parameters=["alpha", "rho"]))


def test_issue11_parameter_nodes_cell_file(tmp_path: Path) -> None:
    lines = "\n".join(f'{k} = "{v}"' for k, v in ISSUE_EQUATIONS.items())
    path = tmp_path / "param-nodes.toml"
    path.write_text(
        f'state = ["h"]\nparameters = ["alpha", "rho"]\n[equations]\n{lines}\n', "utf-8"
    )
    _issue_run(load_cell_file(path))


#: parameter-only node expressions (a symbol ``{p}``) and where they enter the update
TRANSFORMS = [
    "sigmoid({p})",
    "1 + softplus({p})",
    "exp(-exp({p}))",  # a decay rate in (0, 1), a parameter transform (issue 11 item 1)
    "tanh({p}) ** 2",
    "0.5 * cos({p}) + 0.5 * sin({p}) ** 2",
]
USES = [
    "{v} * h + (1 - {v}) * tanh(a)",
    "h + tanh(a) * {v}",
    "tanh(a + {v} * h)",
    "{v} * tanh(a) + (1 - {v}) * sigmoid(a) * h",
]


@given(
    transform=st.sampled_from(TRANSFORMS),
    use=st.sampled_from(USES),
    chained=st.booleans(),
    n=st.integers(1, 5),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=25, deadline=None)
def test_random_parameter_node_cells_jacobian_vs_finite_differences(
    transform: str, use: str, chained: bool, n: int, batch: int, seed: int
) -> None:
    eqs = {"v0": transform.format(p="pv")}
    last = "v0"
    if chained:  # a parameter-only node built from another one
        eqs["v1"] = "sigmoid(v0 - q)"
        last = "v1"
    eqs["a"] = "W @ x + U @ h + b"
    eqs["h_new"] = use.format(v=last)
    vectors = ["pv", "q"] if chained else ["pv"]
    cell = define_cell("random-param-node", "h", eqs, parameters=vectors)
    rng = np.random.default_rng(seed)
    d = 2
    p = initialise(cell, n, d, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((3, batch, d))
    states = rollout(cell, p, x)
    assert states.shape == (4, batch, n)
    J = state_jacobians(cell, p, x)
    eps = 1e-6
    for t in range(3):
        for j in range(n):
            s_plus, s_minus = states[t].copy(), states[t].copy()
            s_plus[:, j] += eps
            s_minus[:, j] -= eps
            f_plus = rollout(cell, p, x[t : t + 1], s0=s_plus)[1]
            f_minus = rollout(cell, p, x[t : t + 1], s0=s_minus)[1]
            fd = (f_plus - f_minus) / (2 * eps)
            np.testing.assert_allclose(J[t][:, :, j], fd, rtol=0, atol=1e-7)
    res = analyze(cell, p, x)
    assert np.all(np.isfinite(res.log10_frobenius_norm))


@pytest.mark.parametrize("backend_dtype", ["float32"])
def test_parameter_nodes_in_float32(backend_dtype: str) -> None:
    cell = define_cell("param-nodes", "h", ISSUE_EQUATIONS, parameters=["alpha", "rho"])
    p = initialise(cell, 3, 2, Init(), np.random.default_rng(2))
    x = np.random.default_rng(3).standard_normal((4, 2, 2))
    r64 = analyze(cell, p, x)
    r32 = analyze(cell, p, x, dtype=backend_dtype)
    # float32 rounding over 4 steps of O(1) values: 1e-5 in log10
    np.testing.assert_allclose(r32.log10_spectral_norm, r64.log10_spectral_norm, atol=1e-5)


# -- F8: named constants (hyperparameters) ------------------------------------------------------
LEAKY = {"a": "W @ x + U @ h + b", "h_new": "h + dt * (tanh(a) - gamma * h)"}


def test_constants_from_python_and_toml_are_the_same_cell(tmp_path: Path) -> None:
    py = define_cell("leaky-const", "h", LEAKY, constants={"dt": 0.25, "gamma": 2})
    path = tmp_path / "leaky-const.toml"
    path.write_text(
        'state = ["h"]\nconstants = {dt = 0.25, gamma = 2}\n[equations]\n'
        + "\n".join(f'{k} = "{v}"' for k, v in LEAKY.items())
        + "\n",
        "utf-8",
    )
    toml = load_cell_file(path)
    assert py.nodes == toml.nodes and py.constants == toml.constants
    assert py.constants == (("dt", 0.25), ("gamma", 2.0))
    assert {p.name for p in py.parameters} == {"W", "U", "b"}  # never weight-file parameters
    # the Jacobian is I (1 - dt gamma) + dt diag(1 - tanh^2) U: the additive part is the number
    (add,) = py.jacobian().additive().block("h", "h")
    assert float(add.diags[0]) == 1 - 0.25 * 2


@pytest.mark.parametrize(
    ("constants", "match"),
    [
        ({"dt": 0.1}, "undefined symbol 'gamma'"),  # neither a constant nor a declared vector
        ({"dt": 0.1, "gamma": 1, "eta": 3}, "'eta' is given but not used"),
        ({"dt": float("nan"), "gamma": 1}, "finite"),
        ({"dt": "0.1", "gamma": 1}, "int or float"),
        ({"dt": True, "gamma": 1}, "int or float"),
        ({"h": 0.1, "dt": 1, "gamma": 1}, "defined twice"),
        ({"dt": 0.1, "gamma": 1, "tanh": 2}, "function"),
    ],
)
def test_bad_constants_are_one_line_errors(constants: dict[str, object], match: str) -> None:
    from gradflow.errors import EquationError

    with pytest.raises(EquationError, match=match):
        define_cell("leaky-const", "h", LEAKY, constants=constants)  # type: ignore[arg-type]


def test_constant_in_an_affine_line_is_refused() -> None:
    from gradflow.errors import EquationError

    with pytest.raises(EquationError, match="'b' is a constant"):
        define_cell("c", "h", {"h_new": "W @ h + b"}, constants={"b": 1.0})


@given(
    dt=st.floats(0.01, 1.0),
    gamma=st.floats(-3.0, 3.0),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=20, deadline=None)
def test_random_constants_jacobian_vs_finite_differences(
    dt: float, gamma: float, n: int, seed: int
) -> None:
    cell = define_cell("leaky-const", "h", LEAKY, constants={"dt": dt, "gamma": gamma})
    rng = np.random.default_rng(seed)
    p = initialise(cell, n, 2, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((2, 2, 2))
    states = rollout(cell, p, x)
    J = state_jacobians(cell, p, x)
    eps = 1e-6
    for j in range(n):
        s_plus, s_minus = states[1].copy(), states[1].copy()
        s_plus[:, j] += eps
        s_minus[:, j] -= eps
        fd = (rollout(cell, p, x[1:], s0=s_plus)[1] - rollout(cell, p, x[1:], s0=s_minus)[1]) / (
            2 * eps
        )
        # central differences, step 1e-6, O(1) values: 1e-7 (as above)
        np.testing.assert_allclose(J[1][:, :, j], fd, rtol=0, atol=1e-7)
    # and the closed form: J = (1 - dt gamma) I + dt diag(1 - tanh(a)^2) U (1e-13: rounding)
    a = x[1] @ p["W"].T + states[1] @ p["U"].T + p["b"]
    closed = (1 - dt * gamma) * np.eye(n) + dt * (1 - np.tanh(a) ** 2)[:, :, None] * p["U"]
    np.testing.assert_allclose(J[1], closed, rtol=0, atol=1e-13)


# -- §2: the additive/multiplicative split ------------------------------------------------------
def _sig(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-v))
    return out


OUTER = {
    "tanh": np.tanh,
    "sigmoid": _sig,
    "exp": lambda v: np.exp(-(v**2)),
    "softplus": lambda v: np.logaddexp(0.0, v),
    "sqrt": lambda v: np.sqrt(1 + v**2),  # both as written in the call below
}
#: argument -> (numpy value from a, u, h, c = tanh(h); is it a pre-activation under §2?)
ARGS = {
    "a": (lambda a, u, h, c: a, True),  # a state-dependent affine node
    "a + u * h": (lambda a, u, h, c: a + u * h, True),
    "u * h": (lambda a, u, h, c: u * h, True),  # a vector parameter times the state
    "h * h": (lambda a, u, h, c: h * h, False),  # arithmetic of the state only
    "c * h": (lambda a, u, h, c: c * h, False),  # c = tanh(h): no parameter
    "h + c": (lambda a, u, h, c: h + c, False),
}


@given(
    f=st.sampled_from(sorted(OUTER)),
    arg=st.sampled_from(sorted(ARGS)),
    mix=st.sampled_from(["h * {call}", "{call} + h", "(1 - z) * h + z * {call}"]),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_split_follows_the_pre_activation_rule(
    f: str, arg: str, mix: str, n: int, seed: int
) -> None:
    # bounded outer functions (exp of a negative square) keep the rollout finite
    call = {"sqrt": f"sqrt(1 + ({arg}) ** 2)", "exp": f"exp(-({arg}) ** 2)"}.get(f, f"{f}({arg})")
    eqs = {"a": "W @ x + U @ h + b", "c": "tanh(h)", "z": "sigmoid(a)"}
    eqs["h_new"] = mix.format(call=call)
    cell = define_cell("split-cell", "h", eqs, parameters=["u"] if "u" in arg else [])
    rng = np.random.default_rng(seed)
    p = initialise(cell, n, 2, Init(scheme="gaussian", sigma_b=0.3), rng)
    if "u" not in p:
        p["u"] = np.zeros(n)  # unused by the cell; keeps the evaluation below uniform
    x = rng.standard_normal((3, 2, 2))
    h = rollout(cell, p, x)[1]  # the state the second step starts from
    full = state_jacobians(cell, p, x)[1]
    add = state_jacobians(cell, p, x, path="additive")[1]
    mul = state_jacobians(cell, p, x, path="multiplicative")[1]
    a = x[1] @ p["W"].T + h @ p["U"].T + p["b"]
    value_fn, pre = ARGS[arg]
    value = OUTER[f](value_fn(a, p["u"], h, np.tanh(h)))
    z = _sig(a)
    eye = np.eye(n)
    # A_t is the Jacobian with every pre-activation (a, and the call's argument when it is
    # one) held fixed (docs §2); 1e-12: float64 rounding of O(1..10) entries
    if pre:
        want = {
            "h * {call}": value[:, :, None] * eye,
            "{call} + h": np.broadcast_to(eye, full.shape),
            "(1 - z) * h + z * {call}": (1 - z)[:, :, None] * eye,
        }[mix]
    elif "z" in mix:  # only the gate z = sigmoid(a) is a pre-activation: M_t is its path
        want = full - (z * (1 - z) * (value - h))[:, :, None] * p["U"]
    else:  # no pre-activation on any path: all of J_t is additive
        want = full
    np.testing.assert_allclose(add, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(add + mul, full, rtol=0, atol=1e-12)


# -- F6: non-smooth functions -------------------------------------------------------------------
NONSMOOTH = [
    ("max(a, h)", lambda a, h: np.maximum(a, h)),
    ("max(0.5 * h, tanh(a))", lambda a, h: np.maximum(0.5 * h, np.tanh(a))),
    ("clip(a + h, -0.5, 0.5)", lambda a, h: np.clip(a + h, -0.5, 0.5)),
    ("hard_sigmoid(3 * a) * h", lambda a, h: np.clip(a / 2 + 0.5, 0, 1) * h),
    (
        "clip(h, -1, 1) + hard_sigmoid(a)",
        lambda a, h: np.clip(h, -1, 1) + np.clip(a / 6 + 0.5, 0, 1),
    ),
]


@given(
    k=st.integers(0, len(NONSMOOTH) - 1),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_non_smooth_cells_jacobian_vs_finite_differences(k: int, n: int, seed: int) -> None:
    text, ref = NONSMOOTH[k]
    cell = define_cell("kinked", "h", {"a": "W @ x + U @ h + b", "h_new": text})
    rng = np.random.default_rng(seed)
    p = initialise(cell, n, 2, Init(scheme="gaussian", sigma_b=0.3), rng)
    x = rng.standard_normal((2, 3, 2))
    states = rollout(cell, p, x)
    h = states[1]
    a = x[1] @ p["W"].T + h @ p["U"].T + p["b"]
    # the rollout against the same equations in numpy (1e-14: rounding)
    np.testing.assert_allclose(states[2], ref(a, h), rtol=0, atol=1e-14)
    J = state_jacobians(cell, p, x)[1]
    eps = 1e-7
    for j in range(n):
        s_plus, s_minus = h.copy(), h.copy()
        s_plus[:, j] += eps
        s_minus[:, j] -= eps
        a_p = x[1] @ p["W"].T + s_plus @ p["U"].T + p["b"]
        a_m = x[1] @ p["W"].T + s_minus @ p["U"].T + p["b"]
        fd = (ref(a_p, s_plus) - ref(a_m, s_minus)) / (2 * eps)
        # central differences are exact for piecewise-linear parts and O(eps^2) for tanh, as
        # long as no kink lies within eps: rows with a kink that close are skipped
        far = np.ones_like(fd, dtype=bool)
        for lhs, rhs in (
            (a, h),
            (np.tanh(a), 0.5 * h),
            (a + h, -0.5),
            (a + h, 0.5),
            (3 * a, -3.0),
            (3 * a, 3.0),
            (h, -1.0),
            (h, 1.0),
            (a, -3.0),
            (a, 3.0),
        ):
            far &= np.abs(lhs - rhs) > 1e-4
        np.testing.assert_allclose(J[:, :, j][far], fd[far], rtol=0, atol=1e-6)


def test_non_smooth_grammar_errors() -> None:
    from gradflow.errors import EquationError

    bad = {
        "max(h)": "max takes exactly 2 positional arguments",
        "clip(h, 0)": "clip takes exactly 3 positional arguments",
        "clip(h, h, 1)": "constant bounds",
        "clip(h, 1, 0)": "lo <= hi",
        "hard_sigmoid(h, 1)": "exactly one positional argument",
    }
    for text, match in bad.items():
        with pytest.raises(EquationError, match=match):
            define_cell("kinked", "h", {"h_new": text})


def test_non_smooth_functions_hold_the_pre_activation_rule() -> None:
    # max(a, h): the argument a is a pre-activation, h is not; at a > h the derivative flows
    # through a (multiplicative), at a < h through h (additive), with H(0) = 1/2 at a tie
    cell = define_cell("kinked", "h", {"a": "W @ x + U @ h + b", "h_new": "max(a, h)"})
    paths = cell.jacobian().paths()
    assert str(paths.additive) == "dh_t/dh_{t-1} = diag(Heaviside(h_{t-1} - a))"
    assert str(paths.multiplicative) == "dh_t/dh_{t-1} = diag(Heaviside(a - h_{t-1})) @ U"

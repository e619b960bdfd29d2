"""Structure-aware chains (issue 11 item 4): gradflow.diagonal against the dense engine.

References: closed forms (the product of diagonal matrices is the diagonal of the products,
summed here from the materialised step Jacobians) and the dense path
(:func:`gradflow.engine.analyze`: renormalised products). Tolerances: 1e-12 in log10 between
exact computations (different summation order over <= 40 steps of O(1) logs); the dense
spectral norms are iterative estimates (see the test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import CATALOGUE, define_cell, get_cell
from gradflow.diagonal import diagonal_chain, jacobian_structure
from gradflow.engine import analyze, state_jacobians
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise

TOL = 1e-12


def test_structure_is_read_from_the_symbolic_jacobian() -> None:
    found = {
        name: (s.diagonal, s.input_only)
        for name, cell in CATALOGUE.items()
        if (s := jacobian_structure(cell)).diagonal or s.input_only
    }
    # docs/cells-2018-2026.md: minGRU/minLSTM diagonal and input-only; IndRNN diagonal with a
    # state-dependent factor relu'(a + u h); every other catalogue cell is dense
    assert found == {
        "indrnn": (True, False),
        "mingru": (True, True),
        "minlstm": (True, True),
        "rglru": (True, True),
        "mamba-s6": (True, True),
    }
    leaky = define_cell(
        "leaky-param",
        "h",
        {"beta": "sigmoid(alpha)", "a": "W @ x + b", "h_new": "beta * h + (1 - beta) * tanh(a)"},
        parameters=["alpha"],
    )
    assert jacobian_structure(leaky).diagonal and jacobian_structure(leaky).input_only


def _same(a: np.ndarray, b: np.ndarray, atol: float = TOL) -> None:
    # exact zeros (-inf) must agree as such; the finite part to atol
    assert np.array_equal(np.isneginf(a), np.isneginf(b))
    fin = np.isfinite(a)
    np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=atol)


@given(
    name=st.sampled_from(["mingru", "minlstm", "indrnn", "rglru"]),
    n=st.integers(1, 6),
    steps=st.integers(1, 40),
    batch=st.integers(1, 3),
    chunk=st.one_of(st.none(), st.integers(1, 9)),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_diagonal_chain_equals_the_dense_path(
    name: str, n: int, steps: int, batch: int, chunk: int | None, seed: int
) -> None:
    cell = get_cell(name)
    rng = np.random.default_rng(seed)
    d = n if name == "rglru" else 3  # the paper RG-LRU: W_in = I needs d = n
    p = initialise(cell, n, d, Init(scheme="paper", t_max=float(steps)), rng)
    x = rng.standard_normal((steps, batch, d))
    dense = analyze(cell, p, x, singular_lags=[steps])
    fast = diagonal_chain(cell, p, x, chunk=chunk)
    # (a) the closed form: sums of log10 |D_t| from the materialised step Jacobians
    D = np.abs(np.diagonal(state_jacobians(cell, p, x), axis1=-2, axis2=-1))  # (T, B, m)
    with np.errstate(divide="ignore"):
        logs = np.log10(D)[::-1].cumsum(axis=0)  # lag k = 1..T
    want = np.concatenate([np.zeros((1, batch)), logs.max(axis=-1)])
    _same(fast.log10_spectral_norm, want)
    # (b) the dense path: Frobenius norms are exact there too (1e-12); its spectral norms are
    # iterative estimates, measured 3.8e-12 in log10 from the exact value on a rank-one
    # product (indrnn, n = 6, seed 2713), hence 1e-10 for them
    _same(fast.log10_frobenius_norm, dense.log10_frobenius_norm)
    _same(fast.log10_spectral_norm, dense.log10_spectral_norm, atol=1e-10)
    # the exponents are the finite-time ones: ln sigma_i(ds_T/ds_0) / T, sigma sorted
    sv = np.asarray(dense.log10_singular_values[steps]) * math.log(10) / steps
    _same(fast.lyapunov_exponents, sv)
    assert fast.input_only == (name != "indrnn")


def test_long_chain_stays_in_the_log_domain() -> None:
    # minGRU with 1 - z ~ 2e-6 (b_z = 13): 3000 steps multiply to ~ 1e-16937,
    # far below float64; closed form sum_t log10(1 - sigmoid(a_z)) with a_z = b_z (W_z = 0)
    cell = get_cell("mingru")
    n, T = 3, 3000
    p = {
        "W_z": np.zeros((n, 2)),
        "b_z": np.array([13.0, 14.0, 15.0]),
        "W_h": np.ones((n, 2)),
        "b_h": np.zeros(n),
    }
    x = np.random.default_rng(0).standard_normal((T, 1, 2))
    res = diagonal_chain(cell, p, x)
    per_step = np.log10(1 / (1 + np.exp(p["b_z"])))  # log10(1 - sigmoid(b)) exactly
    # 1e-9 relative: 3000 float64 additions of O(6) values
    np.testing.assert_allclose(res.log10_spectral_norm[T, 0], T * per_step.max(), rtol=1e-9)
    assert np.all(np.isfinite(res.log10_frobenius_norm))
    assert res.log10_spectral_norm[T, 0] < -16900  # 3000 * log10(1 - sigmoid(13)) = -16937.5


def test_dead_units_give_exact_zero_only_when_every_unit_is_off() -> None:
    # IndRNN, fixture indrnn-torch-init of tests/data/modern_cells: exactly zero from lag 4
    # (sequence 0) and lag 2 (sequence 1), per the PyTorch reference's exact_zero_from_lag
    import json
    from pathlib import Path

    from safetensors.numpy import load_file

    data = Path(__file__).parent / "data" / "modern_cells"
    record = json.loads((data / "indrnn-torch-init.json").read_text())
    t = load_file(data / "indrnn-torch-init.safetensors")
    p = {"W_xh": t["weight_ih"], "u": t["weight_hh"], "b": t["bias"]}
    x = np.load(data / "indrnn-torch-init_inputs.npy")
    res = diagonal_chain(get_cell("indrnn"), p, x)
    for b, lag in enumerate(record["exact_zero_from_lag"]):
        assert np.all(np.isneginf(res.log10_spectral_norm[lag:, b]))
        assert np.all(np.isfinite(res.log10_spectral_norm[:lag, b]))
        want = np.array([v[b] for v in record["log10_spectral_norm"][:lag]], dtype=float)
        # 1e-12 in log10 against autograd (PyTorch, float64)
        np.testing.assert_allclose(res.log10_spectral_norm[:lag, b], want, rtol=0, atol=TOL)


def test_non_diagonal_cells_are_refused() -> None:
    cell = get_cell("lstm")
    p = initialise(cell, 2, 2, Init(), np.random.default_rng(0))
    with pytest.raises(UsageError, match="not diagonal"):
        diagonal_chain(cell, p, np.zeros((3, 1, 2)))
    with pytest.raises(UsageError, match=r"\(T, B, d\)"):
        diagonal_chain(
            get_cell("mingru"),
            initialise(get_cell("mingru"), 2, 2, Init(), np.random.default_rng(0)),
            np.zeros((3, 2)),
        )

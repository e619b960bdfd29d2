"""Structure-aware chains (issue 11 item 4): ``analyze`` on diagonal and block-diagonal cells.

References: closed forms (the product of diagonal matrices is the diagonal of the products,
summed here from the materialised step Jacobians of :func:`gradflow.engine.state_jacobians`;
for blocks, the explicit product of the materialised Jacobians and LAPACK's SVD of it), and
the dense path (``analyze(..., structure="dense")``: renormalised products). Tolerances:
1e-12 in log10 between exact computations (different summation order over <= 40 steps of
O(1) logs); the dense path's spectral norms are certified to ``SPECTRAL_RTOL`` relative, so
against them the tolerance is 1e-12 plus that bound in log10; singular values from a dense SVD
are accurate to ``~eps sigma_1`` absolute, so they are compared where ``sigma_i / sigma_1 >
1e-3``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import CATALOGUE, define_cell, get_cell
from gradflow.diagonal import jacobian_structure
from gradflow.engine import analyze, state_jacobians
from gradflow.errors import NumericalError, UsageError
from gradflow.initialisers import Init, initialise
from gradflow.results import AnalysisResult
from gradflow.spectral import SPECTRAL_RTOL

TOL = 1e-12
#: the dense path's spectral norms are certified to SPECTRAL_RTOL relative (gradflow.spectral)
DENSE_SPEC = TOL + SPECTRAL_RTOL / math.log(10)
DATA = Path(__file__).parent / "data" / "modern_cells"


def oscillator() -> object:
    """Two state vectors coupled unit by unit: coRNN with diagonal recurrent weights, so
    J_t is 2x2 blocks after a permutation (state-dependent through tanh)."""
    return define_cell(
        "diag-oscillator",
        ["y", "z"],
        {
            "a": "W @ x + b",
            "z_new": "z + 0.1*(tanh(w*y + v*z + a) - g*y - e*z)",
            "y_new": "y + 0.1*z_new",
        },
        parameters=["w", "v", "g", "e"],
    )


def rotation() -> object:
    """A gated rotation by an input-dependent angle: 2x2 blocks, state-free."""
    return define_cell(
        "gated-rotation",
        ["y", "z"],
        {
            "th": "W_t @ x + b_t",
            "ar": "W_r @ x + b_r",
            "r": "sigmoid(ar)",
            "y_new": "r*(cos(th)*y - sin(th)*z)",
            "z_new": "r*(sin(th)*y + cos(th)*z) + tanh(ar)",
        },
    )


def three_states() -> object:
    """Three state vectors coupled unit by unit: 3x3 blocks (the b > 2 kernel: small SVDs)."""
    return define_cell(
        "three-states",
        ["h", "y", "z"],
        {
            "a": "W @ x + b",
            "h_new": "tanh(0.9*h + 0.3*y - 0.2*z + a)",
            "y_new": "sigmoid(a)*y + 0.5*h - 0.1*z",
            "z_new": "0.8*z + 0.2*y*h",
        },
    )


def _params(cell: object, n: int, d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for p in cell.parameters:  # type: ignore[attr-defined]
        scale = 1 / math.sqrt(d) if p.kind == "weight" else 0.7
        out[p.name] = rng.standard_normal(p.numeric_shape(n, d)) * scale
    return out


def test_structure_is_read_from_the_symbolic_jacobian() -> None:
    found = {
        name: (s.pattern, s.block, s.state_free)
        for name, cell in CATALOGUE.items()
        if (s := jacobian_structure(cell)).pattern != "dense" or s.state_free
    }
    # docs/cells-2018-2026.md: minGRU/minLSTM/RG-LRU diagonal and input-only; IndRNN diagonal
    # with a state-dependent factor relu'(a + u h); every other catalogue cell is dense
    assert found == {
        "indrnn": ("diagonal", 1, False),
        "mingru": ("diagonal", 1, True),
        "minlstm": ("diagonal", 1, True),
        "rglru": ("diagonal", 1, True),
        "mamba-s6": ("diagonal", 1, True),
    }
    leaky = define_cell(
        "leaky-param",
        "h",
        {"beta": "sigmoid(alpha)", "a": "W @ x + b", "h_new": "beta * h + (1 - beta) * tanh(a)"},
        parameters=["alpha"],
    )
    assert (jacobian_structure(leaky).pattern, jacobian_structure(leaky).state_free) == (
        "diagonal",
        True,
    )
    osc, rot = jacobian_structure(oscillator()), jacobian_structure(rotation())
    assert (osc.pattern, osc.block, osc.state_free) == ("block_diagonal", 2, False)
    assert (rot.pattern, rot.block, rot.state_free) == ("block_diagonal", 2, True)
    # a linear RNN: dense, but J_t = W does not depend on the state
    linear = define_cell("linear-rnn", "h", {"h_new": "W @ h + U @ x + b"})
    assert (jacobian_structure(linear).pattern, jacobian_structure(linear).state_free) == (
        "dense",
        True,
    )


def _same(a: np.ndarray, b: np.ndarray, atol: float = TOL) -> None:
    # exact zeros (-inf) must agree as such; the finite part to atol
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.array_equal(np.isneginf(a), np.isneginf(b))
    fin = np.isfinite(a)
    np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=atol)


def _same_sv(a: np.ndarray, b: np.ndarray) -> None:
    # LAPACK's dense SVD: absolute accuracy ~eps sigma_1, so compare where sigma_i/sigma_1 >
    # 1e-3 (there 1e-12 in log10 holds with a margin of ~1e3 eps)
    keep = a >= a[..., :1] - 3
    _same(np.where(keep, a, 0.0), np.where(keep, b, 0.0))


def _agree(fast: AnalysisResult, dense: AnalysisResult, lyapunov: bool) -> None:
    """Every field of the structured result equals the dense path's."""
    assert fast.meta["structure"]["kernel"] in ("diagonal", "block")
    assert dense.meta["structure"]["kernel"] == "dense"
    _same(fast.log10_frobenius_norm, dense.log10_frobenius_norm)
    _same(fast.log10_spectral_norm, dense.log10_spectral_norm, DENSE_SPEC)
    _same(fast.log10_spectral_norm_hidden, dense.log10_spectral_norm_hidden, DENSE_SPEC)
    _same(fast.final_hidden, dense.final_hidden)
    assert fast.paths.keys() == dense.paths.keys()
    assert fast.meta.get("zero_paths") == dense.meta.get("zero_paths")
    for name, path in fast.paths.items():
        _same(path["log10_frobenius_norm"], dense.paths[name]["log10_frobenius_norm"])
        _same(path["log10_spectral_norm"], dense.paths[name]["log10_spectral_norm"], DENSE_SPEC)
    assert fast.log10_singular_values.keys() == dense.log10_singular_values.keys()
    for lag, sv in fast.log10_singular_values.items():
        _same_sv(sv, dense.log10_singular_values[lag])
    assert fast.gradient_loss == dense.gradient_loss
    if fast.log10_gradient_norm is not None:
        _same(fast.log10_gradient_norm, dense.log10_gradient_norm)
    if lyapunov:
        # the exponents are the exact finite-time ones, ln sigma_i(ds_T/ds_0) / T: the dense
        # singular values at lag T; the dense QR estimate agrees in its sum, ln |det| / T
        T = fast.steps
        lyap = np.asarray(fast.lyapunov_exponents)
        sv = np.asarray(dense.log10_singular_values[T])[:, : lyap.shape[1]] * math.log(10) / T
        _same_sv(lyap * T / math.log(10), sv * T / math.log(10))
        qr = np.asarray(dense.lyapunov_exponents)
        # (sum = ln |det| / T, where every sigma_i is accurate: within 1e-3 of sigma_1)
        full = lyap.shape[1] == qr.shape[1] == fast.log10_singular_values[T].shape[1]  # p = m
        finite = np.isfinite(lyap).all() and np.isfinite(qr).all()
        if full and finite and np.ptp(lyap, axis=-1).max() * T / math.log(10) < 3:
            np.testing.assert_allclose(lyap.sum(-1), qr.sum(-1), rtol=0, atol=TOL * lyap.shape[1])


def _both(cell: object, p: dict, x: np.ndarray, **kw: object) -> tuple:
    fast = analyze(cell, p, x, **kw)  # type: ignore[arg-type]
    dense = analyze(cell, p, x, structure="dense", **kw)  # type: ignore[arg-type]
    return fast, dense


@given(
    name=st.sampled_from(["mingru", "minlstm", "indrnn", "rglru"]),
    n=st.integers(1, 6),
    steps=st.integers(1, 40),
    batch=st.integers(1, 3),
    gradient=st.sampled_from([None, "last", "sum"]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_catalogue_diagonal_cells_equal_the_dense_path(
    name: str, n: int, steps: int, batch: int, gradient: str | None, seed: int
) -> None:
    cell = get_cell(name)
    rng = np.random.default_rng(seed)
    d = n if name == "rglru" else 3  # the paper RG-LRU: W_in = I needs d = n
    p = initialise(cell, n, d, Init(scheme="paper", t_max=float(steps)), rng)
    x = rng.standard_normal((steps, batch, d))
    kw = {"paths": True, "singular_lags": sorted({1, steps}), "lyapunov": n, "gradient": gradient}
    fast, dense = _both(cell, p, x, **kw)
    assert fast.meta["structure"] == {
        "pattern": "diagonal",
        "block": 1,
        "state_free": name != "indrnn",
        "kernel": "diagonal",
    }
    _agree(fast, dense, lyapunov=True)
    # the closed form: sums of log10 |D_t| from the materialised step Jacobians
    D = np.abs(np.diagonal(state_jacobians(cell, p, x), axis1=-2, axis2=-1))  # (T, B, m)
    with np.errstate(divide="ignore"):
        logs = np.log10(D)[::-1].cumsum(axis=0)  # lag k = 1..T
    _same(fast.log10_spectral_norm, np.concatenate([np.zeros((1, batch)), logs.max(axis=-1)]))
    _same(fast.log10_singular_values[steps], -np.sort(-logs[-1], axis=-1))
    # sums of logs of the factors: exact, so every value is marked certified
    assert fast.singular_certified is not None
    assert fast.singular_certified.keys() == fast.log10_singular_values.keys()
    assert all(np.all(c) for c in fast.singular_certified.values())


@pytest.mark.parametrize(("make", "b"), [(oscillator, 2), (rotation, 2), (three_states, 3)])
def test_block_cells_equal_the_explicit_product_and_the_dense_path(make: object, b: int) -> None:
    cell = make()  # type: ignore[operator]
    rng = np.random.default_rng(5)
    n, T, B = 4, 30, 2
    m = b * n
    p = _params(cell, n, 3, rng)
    if "g" in p:
        p["g"], p["e"] = np.abs(p["g"]), np.abs(p["e"])
    x = rng.standard_normal((T, B, 3))
    for gradient in ("last", "sum"):
        kw = {"paths": True, "singular_lags": [1, 7, T], "lyapunov": m, "gradient": gradient}
        fast, dense = _both(cell, p, x, **kw)
        assert fast.meta["structure"]["pattern"] == "block_diagonal"
        assert fast.meta["structure"]["block"] == b
        assert fast.meta["spectral"]["certificates"]["block"] == T * B * (2 + len(fast.paths))
        _agree(fast, dense, lyapunov=True)
    # the explicit product of the materialised (m x m) Jacobians, and its SVD
    J = state_jacobians(cell, p, x)
    P = np.broadcast_to(np.eye(m), (B, m, m))
    for k in range(1, T + 1):
        P = P @ J[T - k]
        sv = np.linalg.svd(P, compute_uv=False)
        _same(fast.log10_spectral_norm[k], np.log10(sv[:, 0]))
        _same(fast.log10_frobenius_norm[k], np.log10(np.linalg.norm(P, axis=(1, 2))))
        h = np.abs(np.diagonal(P[:, :n, :n], axis1=1, axis2=2)).max(-1)  # the h block: diagonal
        _same(fast.log10_spectral_norm_hidden[k], np.log10(h))


@st.composite
def diagonal_cells(draw: st.DrawFn) -> tuple[object, int]:
    """Random cells whose J_t is diagonal or (two coupled state vectors) block-diagonal."""
    gate = st.sampled_from(
        ["sigmoid(a1)", "1 - sigmoid(a1)", "exp(-softplus(u))*sigmoid(a1)", "tanh(a1)", "u"]
    )
    wrap = st.sampled_from(["{}", "tanh({})", "sin({})", "relu({}) - 0.5"])
    drive = st.sampled_from(["tanh(a2)", "a2", "sigmoid(a2)*v", "0"])
    eq = {"a1": "W1 @ x + b1", "a2": "W2 @ x + b2"}

    def used(eqs: dict[str, str]) -> list[str]:
        text = " ".join(eqs.values())
        return [p for p in ("u", "v") if f"{p})" in text or f"*{p}" in text or f"{p}*" in text]

    states = draw(st.sampled_from([1, 2, 2]))
    if states == 1:
        eq["h_new"] = draw(wrap).format(f"({draw(gate)})*h + {draw(drive)}")
        cell = define_cell("random-diagonal", "h", eq, parameters=used(eq))
    else:
        coupled = draw(st.booleans())
        other = f" + ({draw(gate)})*z" if coupled else ""
        eq["h_new"] = draw(wrap).format(f"({draw(gate)})*h{other} + {draw(drive)}")
        eq["z_new"] = f"({draw(gate)})*z + 0.5*h_new" if coupled else f"({draw(gate)})*z + a1"
        cell = define_cell("random-block", ["h", "z"], eq, parameters=used(eq))
    return cell, states


@given(
    made=diagonal_cells(),
    n=st.integers(1, 4),
    steps=st.integers(1, 25),
    gradient=st.sampled_from([None, "last", "sum"]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=25, deadline=None)
def test_random_structured_cells_equal_the_dense_path(
    made: tuple[object, int], n: int, steps: int, gradient: str | None, seed: int
) -> None:
    cell, _ = made
    s = jacobian_structure(cell)  # type: ignore[arg-type]
    assert s.pattern in ("diagonal", "block_diagonal")
    rng = np.random.default_rng(seed)
    p = _params(cell, n, 3, rng)
    x = rng.standard_normal((steps, 2, 3))
    kw = {"paths": True, "singular_lags": [steps], "lyapunov": 2, "gradient": gradient}
    fast, dense = _both(cell, p, x, **kw)
    assert fast.meta["structure"]["kernel"] == ("diagonal" if s.block == 1 else "block")
    _agree(fast, dense, lyapunov=True)


def test_meta_structure_names_the_pattern_and_the_kernel() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 3))
    mingru = get_cell("mingru")
    p = initialise(mingru, 3, 3, Init(), rng)
    want = {"pattern": "diagonal", "block": 1, "state_free": True, "kernel": "diagonal"}
    assert analyze(mingru, p, x).meta["structure"] == want
    forced = analyze(mingru, p, x, structure="dense").meta
    assert forced["structure"] == {**want, "kernel": "dense"}
    assert forced["spectral"]["certificates"].get("diagonal", 0) == 0
    lstm = get_cell("lstm")
    res = analyze(lstm, initialise(lstm, 3, 3, Init(), rng), x)
    # dense: the whole state (m = 2n) is one block
    assert res.meta["structure"] == {
        "pattern": "dense",
        "block": 6,
        "state_free": False,
        "kernel": "dense",
    }
    with pytest.raises(UsageError, match="unknown structure 'sparse'; choose one of auto, dense"):
        analyze(mingru, p, x, structure="sparse")
    with pytest.raises(UsageError, match="unknown gradient loss"):
        analyze(mingru, p, x, gradient="mean")
    with pytest.raises(UsageError, match=r"singular_lags must lie in 1\.\.5"):
        analyze(mingru, p, x, singular_lags=[6])


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
    res = analyze(cell, p, x, lyapunov=3)
    per_step = np.log10(1 / (1 + np.exp(p["b_z"])))  # log10(1 - sigmoid(b)) exactly
    # 1e-9 relative: 3000 float64 additions of O(6) values
    np.testing.assert_allclose(res.log10_spectral_norm[T, 0], T * per_step.max(), rtol=1e-9)
    np.testing.assert_allclose(
        res.lyapunov_exponents[0], per_step * math.log(10), rtol=1e-9
    )  # ln(1 - sigmoid(b)) per step, exactly, sorted (b ascending)
    assert np.all(np.isfinite(res.log10_frobenius_norm))
    assert res.log10_spectral_norm[T, 0] < -16900  # 3000 * log10(1 - sigmoid(13)) = -16937.5


def test_dead_units_give_exact_zero_from_the_lag_where_it_happens() -> None:
    # IndRNN, fixture indrnn-torch-init of tests/data/modern_cells: exactly zero from lag 4
    # (sequence 0) and lag 2 (sequence 1), per the PyTorch reference's exact_zero_from_lag
    from safetensors.numpy import load_file

    record = json.loads((DATA / "indrnn-torch-init.json").read_text())
    t = load_file(DATA / "indrnn-torch-init.safetensors")
    p = {"W_xh": t["weight_ih"], "u": t["weight_hh"], "b": t["bias"]}
    x = np.load(DATA / "indrnn-torch-init_inputs.npy")
    res, dense = _both(get_cell("indrnn"), p, x, gradient="sum", singular_lags=[1, 2])
    assert res.meta["structure"]["kernel"] == "diagonal"
    for b, lag in enumerate(record["exact_zero_from_lag"]):
        assert np.all(np.isneginf(res.log10_spectral_norm[lag:, b]))
        assert np.all(np.isneginf(res.log10_frobenius_norm[lag:, b]))
        assert np.all(np.isfinite(res.log10_spectral_norm[:lag, b]))
        want = np.array([v[b] for v in record["log10_spectral_norm"][:lag]], dtype=float)
        # 1e-12 in log10 against autograd (PyTorch, float64)
        np.testing.assert_allclose(res.log10_spectral_norm[:lag, b], want, rtol=0, atol=TOL)
    _agree(res, dense, lyapunov=False)


def test_an_unbounded_factor_is_reported_as_on_the_dense_path() -> None:
    # d sqrt|h| / dh is unbounded at h = 0, the initial state: both paths say where, in one line
    cell = define_cell("sqrt-cell", "h", {"a": "W @ x + b", "h_new": "sqrt(abs(h)) * sigmoid(a)"})
    p = {"W": np.ones((2, 3)), "b": np.zeros(2)}
    x = np.ones((4, 1, 3))
    with pytest.raises(NumericalError) as fast:
        analyze(cell, p, x)
    with pytest.raises(NumericalError) as dense:
        analyze(cell, p, x, structure="dense")
    assert str(fast.value) == str(dense.value)
    assert "is NaN or inf at step 1, sequence 0" in str(fast.value)

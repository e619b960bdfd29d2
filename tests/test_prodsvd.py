"""Product SVD (gradflow.prodsvd) against mpmath products and closed forms."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import get_cell
from gradflow.engine import state_jacobians
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise, make_inputs
from gradflow.prodsvd import log_jacobi, product_singular_values


def _jacobians(cell: str, n: int, steps: int, seed: int = 1) -> np.ndarray:
    c = get_cell(cell)
    rng = np.random.default_rng(seed)
    p = initialise(c, n, 2, Init(scheme="gaussian", sigma_w=1.0), rng)
    x = make_inputs("gaussian", steps, 1, 2, rng)
    return state_jacobians(c, p, x)


def _mp_log10_sv(J: np.ndarray, k: int, spread: float) -> np.ndarray:
    """log10 singular values of J_T ... J_{T-k+1} (sequence 0) by mpmath, with enough digits
    to resolve a spread of ``spread`` decades between the largest and smallest value."""
    with mp.workdps(int(spread) + 40):
        T = J.shape[0]
        P = mp.eye(J.shape[-1])
        for j in range(1, k + 1):
            P = P * mp.matrix(J[T - j, 0].tolist())
        s = mp.svd_r(P, compute_uv=False)
        return np.array([float(mp.log10(v)) for v in s])


def _check_vs_mpmath(cell: str, n: int, lag: int) -> None:
    J = _jacobians(cell, n, lag)
    r = product_singular_values(J, [lag])
    got = r.log10_singular_values[0, 0]
    ref = _mp_log10_sv(J, lag, got[0] - got[-1])
    assert r.certified[0, 0].all()
    # reference: mpmath product and SVD at (spread + 40) digits; tolerance 1e-8 decades
    # (issue 16; measured 1e-12 at lag 1000)
    cert = r.certified[0, 0]
    assert np.abs(got[cert] - ref[cert]).max() < 1e-8
    # the spread is far beyond one float64 SVD's reach at the longer lags
    assert got[0] - got[-1] > (2.0 if lag == 10 else 15.0)


@pytest.mark.parametrize("cell,n", [("rnn", 4), ("lstm", 3), ("gru", 5)])
@pytest.mark.parametrize("lag", [10, 100])
def test_singular_values_vs_mpmath(cell: str, n: int, lag: int) -> None:
    _check_vs_mpmath(cell, n, lag)


@pytest.mark.slow
@pytest.mark.parametrize("cell,n", [("rnn", 4), ("lstm", 3), ("gru", 5)])
def test_singular_values_vs_mpmath_lag_1000(cell: str, n: int) -> None:
    _check_vs_mpmath(cell, n, 1000)


def test_one_svd_of_the_renormalised_product_is_noise() -> None:
    # The defect this module fixes: a single float64 SVD of the normalised product misses the
    # smallest value of an LSTM product at lag 100 by many decades (reference: mpmath).
    J = _jacobians("lstm", 3, 100)
    P = np.eye(6)
    for j in range(1, 101):
        P = P @ J[100 - j, 0]
        P /= np.linalg.norm(P)
    naive = np.log10(np.linalg.svd(P, compute_uv=False))
    r = product_singular_values(J, [100])
    got = r.log10_singular_values[0, 0]
    assert abs((naive[-1] - naive[0]) - (got[-1] - got[0])) > 10.0


@settings(max_examples=25, deadline=None)
@given(
    logs=st.lists(st.floats(-3.0, 1.0), min_size=2, max_size=5),
    k=st.integers(1, 400),
    seed=st.integers(0, 2**16),
)
def test_orthogonal_times_diagonal_closed_form(logs: list[float], k: int, seed: int) -> None:
    # J = Q diag(10^l) Q^T is normal: P_k = Q diag(10^(k l)) Q^T, singular values 10^(k l)
    m = len(logs)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    J = Q @ np.diag(10.0 ** np.array(logs)) @ Q.T
    r = product_singular_values(np.broadcast_to(J, (k, 1, m, m)), [k])
    want = np.sort(k * np.array(logs))[::-1]
    got = r.log10_singular_values[0, 0]
    # reference: closed form; tolerance k * 1e-13 decades of rounding over k steps, or the
    # result's own error estimate for a value it does not certify
    cert = r.certified[0, 0]
    assert np.all(np.abs(got - want)[cert] <= 1e-12 * k + 1e-12)
    # near-equal values can lose certification; separated ones never do
    gaps = np.abs(np.subtract.outer(want, want)) + np.eye(m) * 1e9
    assert cert[gaps.min(axis=1) > 1e-3 * k].all()


def test_log_jacobi_vs_mpmath_svd() -> None:
    # reference: mpmath SVD at 80 digits of the explicitly formed column-scaled matrix (a
    # float64 SVD would not do: its small values are noise at this spread of 40 decades)
    rng = np.random.default_rng(3)
    V = rng.standard_normal((2, 5, 5))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    L = rng.uniform(-20, 20, (2, 5))
    got, _ = log_jacobi(L, V)
    with mp.workdps(80):
        for b in range(2):
            X = mp.matrix(V[b].tolist()) * mp.diag([mp.mpf(10) ** mp.mpf(v) for v in L[b]])
            want = [float(mp.log10(s)) for s in mp.svd_r(X, compute_uv=False)]
            # tolerance: m eps kappa(V) / ln 10 with kappa(V) < 1e3 here
            assert np.abs(got[b] - np.sort(want)[::-1]).max() < 1e-12


def test_exact_zero_singular_value_is_certified_as_zero() -> None:
    J = np.broadcast_to(np.diag([0.5, 0.0]), (5, 1, 2, 2))
    r = product_singular_values(J, [5])
    assert r.log10_singular_values[0, 0, 1] == -math.inf
    assert r.certified[0, 0].tolist() == [True, True]
    d = r.to_dict()
    assert d["log10_singular_values"][0][0][1] is None and d["certified"][0][0][1]


def test_rounding_noise_is_not_certified() -> None:
    # a rank-1 product that no zero pattern reveals: u v^T repeated has singular values
    # (|v.u|^(k-1) |u||v|, 0) in exact arithmetic; the computed second value is rounding
    # noise and must not be certified
    u, v = np.array([1.0, 2.0]), np.array([0.3, -0.1])
    J = np.broadcast_to(np.outer(u, v), (6, 1, 2, 2))
    r = product_singular_values(J, [6])
    assert r.certified[0, 0].tolist() == [True, False]


@pytest.mark.parametrize(
    "J,lags",
    [
        (np.zeros((3, 1, 2)), [1]),
        (np.zeros((3, 1, 2, 2)), [4]),
        (np.full((3, 1, 2, 2), np.nan), [1]),
    ],
)
def test_bad_input(J: np.ndarray, lags: list[int]) -> None:
    with pytest.raises(UsageError):
        product_singular_values(J, lags)


def test_structural_zeros_are_certified_exact() -> None:
    # diagonal Jacobians whose zeros fall on different units: the product is exactly
    # diag(0, 0, 0.5^k) -- two exact zeros (boolean pattern bound) and one value 10^(k log 0.5)
    d = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]] * 5)
    J = np.stack([np.diag(v) for v in d])[:, None]
    r = product_singular_values(J, [10])
    assert r.certified[0, 0].all()
    assert r.log10_singular_values[0, 0, 0] == pytest.approx(10 * math.log10(0.5), abs=1e-13)
    assert np.all(r.log10_singular_values[0, 0, 1:] == -math.inf)


def test_relu_rnn_dead_units_are_exact_zeros() -> None:
    # a ReLU RNN's Jacobian diag(1[a > 0]) W has a zero row per inactive unit: at least
    # (inactive units of the worst step) singular values of the product are exactly 0; the
    # others are checked against mpmath as for every cell (reference and tolerance above)
    c = get_cell("rnn-relu")
    rng = np.random.default_rng(4)
    p = initialise(c, 5, 2, Init(scheme="gaussian", sigma_w=1.0, sigma_b=0.5), rng)
    J = state_jacobians(c, p, make_inputs("gaussian", 30, 1, 2, rng))
    r = product_singular_values(J, [30])
    got = r.log10_singular_values[0, 0]
    dead = int(5 - min((np.abs(J[t, 0]).sum(-1) > 0).sum() for t in range(30)))
    assert (
        dead >= 1 and np.all(got[5 - dead :] == -math.inf) and r.certified[0, 0, 5 - dead :].all()
    )
    live = np.isfinite(got) & r.certified[0, 0]
    ref = _mp_log10_sv(J, 30, 400.0)
    assert np.abs(got[live] - ref[live]).max() < 1e-8

"""Lyapunov diagnostics (gradflow.analysis.lyapunov) against systems with known exponents."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.analysis.lyapunov import cell_lyapunov, kaplan_yorke, lyapunov_diagnostics
from gradflow.cells import get_cell
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise, make_inputs


@settings(max_examples=10, deadline=None)
@given(
    logs=st.lists(st.floats(-2.0, 1.0), min_size=2, max_size=5, unique=True),
    seed=st.integers(0, 2**16),
)
def test_orthogonal_times_diagonal(logs: list[float], seed: int) -> None:
    # J = O diag(10^l) constant: the exponents are log10 of the moduli of J's eigenvalues
    # (reference: numpy.linalg.eigvals).
    m = len(logs)
    orth, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    J = orth @ np.diag(10.0 ** np.array(logs))
    ev = np.linalg.eigvals(J)
    want = np.sort(np.log10(np.abs(ev)))[::-1]
    real = np.sort(np.log10(np.abs(ev[np.abs(ev.imag) < 1e-12])))[::-1]
    d = lyapunov_diagnostics(np.broadcast_to(J, (2000, 1, m, m)), transient=1000, blocks=4)
    # A complex pair rotates the frame: its two exponents converge like 1/T (tolerance 10/T
    # decades, with T = 1000 steps used); every other gap converges geometrically (1e-9).
    assert np.abs(d.exponents - want).max() < 1e-2
    gaps = np.abs(np.diff(want))
    if np.all(np.abs(ev.imag) < 1e-12) and (len(gaps) == 0 or gaps.min() > 0.05):
        assert np.abs(d.exponents - real).max() < 1e-9
    # the determinant identity: sum of exponents = mean log10|det J| (= sum of logs), exact
    # to rounding whatever the convergence of the individual exponents
    assert d.det_residual is not None and abs(d.det_residual) < 1e-12
    assert abs(d.log10_det_mean - sum(logs)) < 1e-12  # type: ignore[operator]


def test_separated_real_spectrum_to_rounding() -> None:
    # a fixed triangular-times-orthogonal-similarity Jacobian with real, separated
    # eigenvalues 10^0.5, 10^0, 10^-0.7: exponents to 1e-10 (reference: the eigenvalues)
    rng = np.random.default_rng(1)
    V = rng.standard_normal((3, 3))
    J = V @ np.diag(10.0 ** np.array([0.5, 0.0, -0.7])) @ np.linalg.inv(V)
    d = lyapunov_diagnostics(np.broadcast_to(J, (1500, 1, 3, 3)), transient=500, blocks=5)
    assert np.abs(d.exponents - np.array([0.5, 0.0, -0.7])).max() < 1e-10


def test_diagonal_kaplan_yorke_and_entropy() -> None:
    lam = [0.1, -0.05, -0.2]
    J = np.broadcast_to(np.diag(10.0 ** np.array(lam)), (100, 2, 3, 3))
    d = lyapunov_diagnostics(J)
    assert np.allclose(d.exponents, lam, atol=1e-14, rtol=0)  # reference: the diagonal
    assert np.allclose(d.stderr, 0.0, atol=1e-14)  # constant Jacobian: no spread
    assert abs(d.kaplan_yorke - 2.25) < 1e-12  # 2 + (0.1 - 0.05) / 0.2, by hand
    assert abs(d.entropy_rate - 0.1) < 1e-14
    assert abs(d.entropy_rate_nats - 0.1 * math.log(10)) < 1e-14


def test_kaplan_yorke_cases() -> None:
    assert kaplan_yorke([0.3, 0.1]) == (2.0, False)
    assert kaplan_yorke([0.3, 0.1], complete=False) == (2.0, True)
    assert kaplan_yorke([-0.1]) == (0.0, False)
    assert kaplan_yorke([0.2, -0.4, -1.0]) == (1.5, False)


def test_random_jacobians_error_bars_cover_the_truth() -> None:
    # i.i.d. Gaussian J with entries N(0, 1/m): the top exponent is known in closed form,
    # lambda_1 = (ln 2 + psi(m/2)) / 2 - ln(m)/2 ... in nats (Newman 1986); we check instead
    # the exact sum rule E log|det J| = sum_i lambda_i and that independent runs agree within
    # their error bars (batch means over blocks)
    rng = np.random.default_rng(5)
    m = 4
    J = rng.standard_normal((4000, 2, m, m)) / math.sqrt(m)
    d = lyapunov_diagnostics(J, transient=100, blocks=20)
    J2 = rng.standard_normal((4000, 2, m, m)) / math.sqrt(m)
    d2 = lyapunov_diagnostics(J2, transient=100, blocks=20)
    z = np.abs(d.exponents - d2.exponents) / np.hypot(d.stderr, d2.stderr)
    assert z.max() < 5.0  # two independent estimates within 5 combined standard errors
    assert np.all(d.stderr > 0) and np.all(d.stderr < 0.01)
    assert d.det_residual is not None and abs(d.det_residual) < 1e-10


def test_cell_det_identity_and_partial_spectrum() -> None:
    c = get_cell("lstm")
    rng = np.random.default_rng(0)
    p = initialise(c, 4, 2, Init(scheme="gaussian", sigma_w=2.0), rng)
    x = make_inputs("gaussian", 400, 2, 2, rng)
    d = cell_lyapunov(c, p, x, transient=50)
    # per-step identity sum log|R_ii| = log|det J_t|: rounding only (m = 8, 350 steps)
    assert d.det_residual is not None and abs(d.det_residual) < 1e-10
    part = cell_lyapunov(c, p, x, 3, transient=50)
    assert part.log10_det_mean is None and part.exponents.shape == (3,)
    # the leading exponents do not depend on the frame's size (to the error bars)
    assert np.all(np.abs(part.exponents - d.exponents[:3]) < 5 * d.stderr[:3] + 1e-3)


@pytest.mark.parametrize("kw", [{"count": 0}, {"blocks": 1}, {"transient": 100}, {"count": 9}])
def test_bad_input(kw: dict) -> None:
    J = np.zeros((20, 1, 3, 3)) + np.eye(3)
    with pytest.raises(UsageError):
        lyapunov_diagnostics(J, **kw)


@pytest.mark.parametrize(("cell", "sigma_w"), [("rnn", 1.5), ("lstm", 3.0)])
def test_long_lag_slope_approaches_the_top_exponent(cell: str, sigma_w: float) -> None:
    # the slope of log10 ||ds_T/ds_{T-k}||_2 over long lags (engine, least squares over
    # k = 200..800) estimates the same number as the top Lyapunov exponent (QR, forward);
    # reference: each other; tolerance 5 standard errors of the exponent plus 0.01 decades
    # for the finite window (measured differences 0.001 and 0.006)
    from gradflow.engine import analyze

    c = get_cell(cell)
    rng = np.random.default_rng(1)
    p = initialise(c, 8, 2, Init(scheme="gaussian", sigma_w=sigma_w), rng)
    x = make_inputs("gaussian", 800, 1, 2, rng)
    spec = np.asarray(analyze(c, p, x).log10_spectral_norm)[:, 0]
    k = np.arange(200, 801)
    slope = np.polyfit(k, spec[200:801], 1)[0]
    d = cell_lyapunov(c, p, x, 1, transient=50, blocks=10)
    assert abs(slope - d.exponents[0]) < 5 * d.stderr[0] + 0.01

"""Frobenius norms without overflow or underflow (gradflow.norms) against mpmath at 50 digits."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.backend import to_numpy
from gradflow.norms import frobenius, normalise


def _mp_log10_norm(A: np.ndarray) -> float:
    """log10 ||A||_F from the exact binary values of the entries, at 50 digits."""
    mpmath.mp.dps = 50
    total = mpmath.fsum(mpmath.mpf(float(v)) ** 2 for v in A.ravel())
    return float(mpmath.log10(mpmath.sqrt(total))) if total > 0 else -np.inf


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    # Norms from 1e-300 to 1e300; a subnormal norm cannot be represented to full precision
    # (the engine never forms one: each step's product has unit norm before J applies).
    exponent=st.integers(-300, 300),
    spread=st.integers(0, 30),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**32 - 1),
)
def test_frobenius_is_exact_at_every_scale(xp, shape, exponent, spread, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        exponent = int(np.clip(exponent, -30, 30))  # keep every entry a normal float32
        spread = min(spread, 6)
    scales = 10.0 ** (exponent + rng.integers(-spread, 1, shape))
    A = (rng.standard_normal(shape) * scales).astype(dtype)
    got = to_numpy(frobenius(xp, xp.asarray(A))).astype(float)
    ref = np.array([_mp_log10_norm(a) for a in A])
    # A few float64 (float32) roundings of the norm: 1e-14 (1e-6) in log10.
    # Plus one rounding of log10 itself: its ulp is 5.7e-14 at |log10| ~ 300 (CuPy's reduction
    # order differs from NumPy's by that much).
    tol = 1e-14 if dtype == np.float64 else 1e-6
    rtol = 4 * np.finfo(np.float64).eps
    np.testing.assert_allclose(np.log10(got), ref, atol=tol, rtol=rtol)
    B = xp.asarray(A.copy())
    s, finite = normalise(xp, B)
    assert finite
    np.testing.assert_allclose(np.log10(to_numpy(s).astype(float)), ref, atol=tol, rtol=rtol)
    B = to_numpy(B).astype(float)
    # Every normalised matrix has unit norm (to rounding).
    np.testing.assert_allclose(np.linalg.norm(B, axis=(1, 2)), 1.0, rtol=10 * np.finfo(dtype).eps)


def test_zero_and_non_finite_matrices(xp):
    A = np.zeros((3, 2, 2))
    A[1] = 1e-200
    A[2, 0, 0] = np.inf
    s = to_numpy(frobenius(xp, xp.asarray(A)))
    assert s[0] == 0.0 and s[1] == pytest.approx(2e-200, rel=1e-15) and np.isinf(s[2])
    B = xp.asarray(A[:2].copy())
    s, finite = normalise(xp, B)
    assert finite and to_numpy(s)[0] == 0.0
    assert np.all(to_numpy(B)[0] == 0.0)  # a zero matrix stays zero
    C = xp.asarray(A.copy())
    _, finite = normalise(xp, C)
    assert not finite
    nan = xp.asarray(np.full((1, 2, 2), np.nan))
    assert np.isnan(to_numpy(frobenius(xp, nan))[0])

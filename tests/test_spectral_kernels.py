"""The compiled Krylov kernel of the spectral norms (gradflow.spectral_kernels, extra ``fast``).

The kernel runs the block Krylov iteration of :meth:`gradflow.spectral.Spectral._krylov` one
sequence at a time; every value it accepts must carry the same certificates. References: the
exact top singular value from ``numpy.linalg.svd`` (LAPACK divide and conquer, ~1e-15
relative), and the NumPy reference path itself (both values are certified lower bounds within
``SPECTRAL_RTOL`` of the norm, so they agree to ``SPECTRAL_RTOL`` relative).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow import spectral as spectral_mod
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.spectral import SPECTRAL_RTOL, Spectral, compiled_wanted

pytest.importorskip("numba")

#: Rounding allowed on top of the certified gap: the certificates hold up to O(m eps).
ROUND = 1e-13


def _run(P, compiled, lags=3):
    B, m, _ = P.shape
    sp = Spectral(np, B, m, m, P.dtype, lags, compiled=compiled)
    assert (sp.kernel is not None) == compiled
    sp.start_chunk(lags, B, P.dtype)
    for j in range(lags):
        sp.step(j, P, j + 1)
    return sp, sp.finish(lags), np.asarray(sp.gap[:lags], dtype=float)


def _check(P, values, gaps):
    """Every lag's value is a lower bound of the exact norm and within its certified gap."""
    top = np.linalg.svd(P, compute_uv=False)[..., 0]
    assert np.all(gaps <= SPECTRAL_RTOL + 1e-16), gaps.max()
    for v, g in zip(values, gaps, strict=True):
        assert np.all(v <= top * (1 + ROUND)), (v, top)
        assert np.all(top <= v * (1 + g) * (1 + ROUND) + 1e-300), (v, g, top)


def _unit(P):
    norms = np.linalg.norm(P, axis=(1, 2), keepdims=True)
    return np.where(norms > 0, P / np.where(norms > 0, norms, 1), 0.0)


def _with_spectrum(rng, sigma):
    m = len(sigma)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((m, m)))
    return (U * sigma) @ V.T


@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 90), batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_random_products_are_certified(m, batch, seed):
    rng = np.random.default_rng(seed)
    P = _unit(rng.standard_normal((batch, m, m)))
    sp, values, gaps = _run(P, True)
    _check(P, values, gaps)
    assert sum(sp.counts.values()) == 3 * batch
    ref = _run(P, False)[1]  # the NumPy reference path: both certified to SPECTRAL_RTOL
    np.testing.assert_allclose(values, ref, rtol=2 * SPECTRAL_RTOL)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(3, 70),
    rank=st.integers(0, 6),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank_deficient_products_are_certified(m, rank, batch, seed):
    # Dependent Krylov vectors: the basis must stay orthonormal (else Ritz values overshoot).
    rng = np.random.default_rng(seed)
    r = min(rank, m - 1)
    P = _unit(rng.standard_normal((batch, m, r)) @ rng.standard_normal((batch, r, m)))
    sp, values, gaps = _run(P, True)
    _check(P, values, gaps)
    if r == 0:
        assert np.all(values == 0)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(8, 80),
    crowd=st.integers(2, 8),
    spread=st.floats(1e-12, 1e-2),
    seed=st.integers(0, 2**32 - 1),
)
def test_crowded_spectra_are_certified(m, crowd, spread, seed):
    rng = np.random.default_rng(seed)
    sigma = np.concatenate([1 - spread * rng.random(crowd), rng.uniform(0, 0.5, m - crowd)])
    P = _unit(np.stack([_with_spectrum(rng, sigma) for _ in range(2)]))
    sp, values, gaps = _run(P, True)
    _check(P, values, gaps)


def test_certificate_kinds_of_the_kernel():
    rng = np.random.default_rng(4)
    u, v = rng.standard_normal((2, 40, 1)), rng.standard_normal((2, 1, 40))
    sp = _run(_unit(u @ v), True)[0]
    assert sp.counts["bracket"] == 6  # rank 1: all the mass in the first block
    P = _unit(np.stack([_with_spectrum(rng, 0.7 ** np.arange(50)) for _ in range(2)]))
    sp, values, gaps = _run(P, True)
    assert sp.counts["residual"] + sp.counts["bracket"] == 6  # a clear top gap
    _check(P, values, gaps)
    sigma = np.concatenate([[1.0, 1 - 1e-6], np.full(78, 0.9)])  # flat: Cholesky or exact
    P = _unit(np.stack([_with_spectrum(rng, sigma) for _ in range(2)]))
    sp, values, gaps = _run(P, True)
    assert sp.counts["cholesky"] + sp.counts["exact"] == 6
    _check(P, values, gaps)


@pytest.mark.parametrize(("name", "n"), [("lstm", 24), ("gru", 40), ("rnn", 70)])
def test_analyze_with_the_kernel_matches_the_reference(monkeypatch, name, n):
    rng = np.random.default_rng(8)
    cell = get_cell(name)
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, 3))
        * (1.3 / np.sqrt(n) if p.kind == "weight" else 0.3)
        for p in cell.parameters
    }
    x = rng.standard_normal((120, 3, 3))
    ref = analyze(cell, params, x, compiled=False)
    monkeypatch.setattr(spectral_mod, "COMPILED_FROM", 1)
    monkeypatch.setattr(spectral_mod, "COMPILED_WORK", 0)
    res = analyze(cell, params, x)
    assert "compiled" not in res.meta  # the NumPy chain, with the compiled Krylov kernel
    # Both certified within SPECTRAL_RTOL = 1e-11 relative: log10 within 4.4e-12 (+ rounding).
    tol = np.log10(1 + 2 * SPECTRAL_RTOL)
    np.testing.assert_allclose(res.log10_spectral_norm, ref.log10_spectral_norm, rtol=0, atol=tol)
    np.testing.assert_allclose(
        res.log10_spectral_norm_hidden, ref.log10_spectral_norm_hidden, rtol=0, atol=tol
    )
    # The chain itself is the same code: Frobenius norms identical.
    np.testing.assert_array_equal(res.log10_frobenius_norm, ref.log10_frobenius_norm)
    meta = res.meta["spectral"]
    assert meta["krylov_kernel"] is True
    assert ref.meta["spectral"]["krylov_kernel"] is False
    assert sum(meta["certificates"].values()) == 120 * 3 * (2 if name == "lstm" else 1)
    assert 0 <= meta["worst_relative_gap"] <= SPECTRAL_RTOL + 1e-16


def test_when_the_kernel_is_used(monkeypatch):
    work = spectral_mod.COMPILED_WORK
    rows = spectral_mod.COMPILED_FROM
    pairs = work // rows + 1
    assert compiled_wanted(np, np.float64, rows, pairs, None)
    assert not compiled_wanted(np, np.float64, rows - 1, 10 * pairs, None)  # small products
    assert not compiled_wanted(np, np.float64, rows, pairs // 2, None)  # too little work
    assert not compiled_wanted(np, np.float32, rows, pairs, None)
    assert not compiled_wanted(np, np.float64, rows, pairs, False)
    monkeypatch.setenv("GRADFLOW_COMPILED", "0")
    assert not compiled_wanted(np, np.float64, rows, pairs, None)


def test_compiled_backend_reports_no_krylov_kernel():
    """The compiled backend (n <= 64) certifies with its own kernel: krylov_kernel False."""
    cell = get_cell("rnn")
    rng = np.random.default_rng(0)
    params = {p.name: rng.standard_normal(p.numeric_shape(8, 3)) / 3 for p in cell.parameters}
    res = analyze(cell, params, rng.standard_normal((20, 2, 3)), compiled=True)
    assert "compiled" in res.meta
    assert res.meta["spectral"]["krylov_kernel"] is False


def test_block_width_with_the_kernel_and_large_products_are_certified():
    # The kernel keeps the narrow block up to WIDE_FROM_KERNEL rows (each sequence to its own
    # depth); the NumPy path widens it from WIDE_FROM. Both widths are certified against the
    # exact SVD (LAPACK, ~1e-15 relative) on random and crowded products of those sizes.
    rng = np.random.default_rng(11)
    for m, kernel_block in ((spectral_mod.WIDE_FROM, 4), (spectral_mod.WIDE_FROM_KERNEL, 8)):
        assert Spectral(np, 1, m, m, np.float64, 1, compiled=True).block == kernel_block
        assert Spectral(np, 1, m, m, np.float64, 1, compiled=False).block == 8
        sigma = np.concatenate([[1.0, 0.97, 0.96], rng.uniform(0, 0.9, m - 3)])
        P = _unit(np.stack([rng.standard_normal((m, m)), _with_spectrum(rng, sigma)]))
        _, values, gaps = _run(P, True, lags=2)
        _check(P, values, gaps)

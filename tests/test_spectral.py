"""Certified spectral norms (gradflow.spectral) against exact SVDs.

Every accepted value must carry a certificate: a lower bound ``s`` (a Ritz value) and a proven
relative gap ``g`` with ``s <= ||P||_2 <= s (1 + g)`` and ``g <= rtol``. The tests feed random,
rank-deficient and crowded-spectrum matrices (hypothesis) and check both inequalities against
``numpy.linalg.svd`` (LAPACK's divide and conquer: relative accuracy ~1e-15 for the top
singular value), and that every certificate kind is reached and counted.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow import spectral as spectral_mod
from gradflow.backend import to_numpy
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.spectral import CERTIFICATES, SPECTRAL_RTOL, Spectral

#: Rounding allowed on top of the certified gap: the certificates hold up to O(m eps).
ROUND = 1e-13


def _run(xp, P, lags=1):
    """Values and certified gaps of Spectral on the batch P (unit Frobenius norm)."""
    B, m, _ = P.shape
    sp = Spectral(xp, B, m, m, P.dtype, lags)
    sp.start_chunk(lags, B, P.dtype)
    for j in range(lags):
        sp.step(j, P, j + 1)
    values = sp.finish(lags)
    return sp, values, to_numpy(sp.gap[:lags]).astype(float)


def _check(P, values, gaps):
    top = np.linalg.svd(P, compute_uv=False)[..., 0]
    assert np.all(gaps <= SPECTRAL_RTOL + 1e-16), gaps.max()  # the gap itself is rounded
    for v, g in zip(values, gaps, strict=True):
        assert np.all(v <= top * (1 + ROUND)), (v, top)  # a lower bound
        assert np.all(top <= v * (1 + g) * (1 + ROUND) + 1e-300), (v, g, top)  # proven gap


def _unit(P):
    return P / np.linalg.norm(P, axis=(1, 2), keepdims=True)


def _with_spectrum(rng, sigma):
    m = len(sigma)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((m, m)))
    return (U * sigma) @ V.T


@settings(max_examples=30, deadline=None)
@given(m=st.integers(2, 70), batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_random_products_are_certified(xp, m, batch, seed):
    rng = np.random.default_rng(seed)
    P = _unit(rng.standard_normal((batch, m, m)))
    sp, values, gaps = _run(xp, xp.asarray(P))
    _check(P, values, gaps)
    assert sum(sp.counts.values()) == batch


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(3, 60),
    rank=st.integers(0, 6),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank_deficient_products_are_certified(xp, m, rank, batch, seed):
    rng = np.random.default_rng(seed)
    r = min(rank, m - 1)
    A = rng.standard_normal((batch, m, r)) @ rng.standard_normal((batch, r, m))
    norms = np.linalg.norm(A, axis=(1, 2), keepdims=True)
    P = np.where(norms > 0, A / np.where(norms > 0, norms, 1), 0.0)  # rank 0: exactly zero
    sp, values, gaps = _run(xp, xp.asarray(P))
    _check(P, values, gaps)
    if r == 0:
        assert np.all(values == 0)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(8, 64),
    crowd=st.integers(2, 8),
    spread=st.floats(1e-12, 1e-2),
    seed=st.integers(0, 2**32 - 1),
)
def test_crowded_spectra_are_certified(xp, m, crowd, spread, seed):
    # The top `crowd` singular values within `spread` of each other: Ritz values converge
    # slowly and Kato-Temple's estimated gap is useless; the certificate must still hold.
    rng = np.random.default_rng(seed)
    sigma = np.concatenate([1 - spread * rng.random(crowd), rng.uniform(0, 0.5, m - crowd)])
    P = _unit(np.stack([_with_spectrum(rng, sigma) for _ in range(2)]))
    sp, values, gaps = _run(xp, xp.asarray(P))
    _check(P, values, gaps)


def test_every_certificate_kind_is_reached_and_counted(monkeypatch):
    rng = np.random.default_rng(4)
    # full_basis: a 3 x 3 product is spanned by the first Krylov block (4 columns, clipped).
    sp, values, gaps = _run(np, _unit(rng.standard_normal((2, 3, 3))))
    assert sp.counts["full_basis"] == 2
    # bracket: a rank-1 product puts all its Frobenius mass in the first block.
    u, v = rng.standard_normal((2, 40, 1)), rng.standard_normal((2, 1, 40))
    sp, values, gaps = _run(np, _unit(u @ v))
    assert sp.counts["bracket"] == 2
    # residual: a decaying spectrum with a clear top gap.
    P = _unit(np.stack([_with_spectrum(rng, 0.7 ** np.arange(50)) for _ in range(2)]))
    sp, values, gaps = _run(np, P)
    assert sp.counts["residual"] + sp.counts["bracket"] == 2
    _check(P, values, gaps)
    # cholesky: a flat spectrum (all mass outside any small basis) with a tiny top gap.
    sigma = np.concatenate([[1.0, 1 - 1e-6], np.full(78, 0.9)])
    P = _unit(np.stack([_with_spectrum(rng, sigma) for _ in range(2)]))
    sp, values, gaps = _run(np, P)
    assert sp.counts["cholesky"] + sp.counts["exact"] == 2
    _check(P, values, gaps)
    # exact: no Krylov depth at all, so the candidate misses and the Cholesky test fails.
    monkeypatch.setattr(spectral_mod, "MAX_DEPTH", 0)
    sigma = np.concatenate([1 - 1e-3 * np.arange(30), np.full(50, 0.5)])  # 30 crowded values
    P = _unit(np.stack([_with_spectrum(rng, sigma) for _ in range(2)]))
    sp, values, gaps = _run(np, P)
    assert sp.counts["exact"] == 2
    _check(P, values, gaps)
    # An exact eigenvalue of the Gram matrix: to 1e-14 relative of the SVD's.
    top = np.linalg.svd(P, compute_uv=False)[:, 0]
    np.testing.assert_allclose(values[0], top, rtol=1e-14)


@pytest.mark.parametrize(("name", "n"), [("lstm", 24), ("gru", 40), ("rnn", 70)])
def test_analyze_counts_one_certificate_per_lag_and_sequence(name, n):
    rng = np.random.default_rng(8)
    cell = get_cell(name)
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, 3))
        * (1.3 / np.sqrt(n) if p.kind == "weight" else 0.3)
        for p in cell.parameters
    }
    T, B = 120, 3
    res = analyze(cell, params, rng.standard_normal((T, B, 3)))
    meta = res.meta["spectral"]
    estimators = 2 if len(cell.state) > 1 else 1  # the h block has its own
    assert sum(meta["certificates"].values()) == T * B * estimators
    assert set(meta["certificates"]) == set(CERTIFICATES)
    assert 0 <= meta["worst_relative_gap"] <= SPECTRAL_RTOL + 1e-16


def test_large_products_certify_at_the_first_depth(monkeypatch):
    # From RITZ_FIRST_FROM rows the NumPy path tries the residual certificate on the warm
    # start block itself: a product whose leading direction the chain has settled then costs
    # one pass through L per lag (depth 0) instead of two. The values stay certified against
    # LAPACK's SVD (_check: lower bound, proven gap <= SPECTRAL_RTOL, rounding 1e-13).
    rng = np.random.default_rng(11)
    m, lags = spectral_mod.RITZ_FIRST_FROM, 6
    P = _unit(np.stack([_with_spectrum(rng, 0.3 ** np.arange(m)) for _ in range(2)]))

    def depths(first_from):
        monkeypatch.setattr(spectral_mod, "RITZ_FIRST_FROM", first_from)
        sp = Spectral(np, 2, m, m, P.dtype, lags)
        sp.start_chunk(lags, 2, P.dtype)
        per_lag = []
        for j in range(lags):
            before = sp.depth
            sp.step(j, P, j + 1)
            per_lag.append(sp.depth - before)
        _check(P, sp.finish(lags), to_numpy(sp.gap[:lags]).astype(float))
        return per_lag

    new, old = depths(m), depths(m + 1)
    assert min(old) >= 2  # without the rule every lag extends the basis at least once
    assert new[-1] == 1 and sum(new) < sum(old)  # a warm lag: certified at the first depth

"""Path expansion (gradflow.decomposition) against direct products and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradflow.analysis.exact import path_decomposition
from gradflow.cells import get_cell
from gradflow.decomposition import path_expansion
from gradflow.engine import state_jacobians
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise, make_inputs


def _parts(cell: str, n: int, steps: int, sigma_w: float = 1.0, seed: int = 2):
    c = get_cell(cell)
    rng = np.random.default_rng(seed)
    p = initialise(c, n, 3, Init(scheme="gaussian", sigma_w=sigma_w), rng)
    x = make_inputs("gaussian", steps, 2, 3, rng)
    J = state_jacobians(c, p, x)
    A = state_jacobians(c, p, x, path="additive")
    M = state_jacobians(c, p, x, path="multiplicative")
    return c, p, x, J, A, M


def _chain(X: np.ndarray, k: int) -> np.ndarray:
    T = X.shape[0]
    P = np.broadcast_to(np.eye(X.shape[-1]), X.shape[1:]).copy()
    for j in range(1, k + 1):
        P = P @ X[T - j]
    return P


def _terms(e, k: int) -> np.ndarray:
    S, scale = e.terms[k]
    return S * 10.0 ** scale[:, :, None, None]


@pytest.mark.parametrize("cell", ["lstm", "gru", "mgu"])
@pytest.mark.parametrize("radius", [1.0, None])
def test_terms_sum_to_full_product(cell: str, radius: float | None) -> None:
    _, _, _, J, A, M = _parts(cell, 3, 12)
    # the generated additive and multiplicative kernels sum to the full Jacobian
    # (reference: the full kernels; rounding only)
    assert np.abs(A + M - J).max() <= 1e-14 * np.abs(J).max()
    # radius 1, or the default radii with each j from the radius that resolves it best
    e = path_expansion(
        A, M, [5, 12], radii=None if radius is None else [radius], keep_terms=[5, 12]
    )
    for k in (5, 12):
        P = _chain(J, k)
        S = _terms(e, k)
        # reference: the direct float64 product; tolerance 1e-10 relative (issue 16)
        err = np.linalg.norm(S.sum(axis=1) - P, axis=(-2, -1)) / np.linalg.norm(P, axis=(-2, -1))
        assert err.max() < 1e-10
        # S_0 is the pure additive chain, S_k the pure multiplicative chain (direct products)
        for j, X in ((0, A), (k, M)):
            Pj = _chain(X, k)
            rel = np.linalg.norm(S[:, j] - Pj, axis=(-2, -1)) / np.linalg.norm(P, axis=(-2, -1))
            assert rel.max() < 1e-10


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_brute_force_expansion_over_subsets(cell: str) -> None:
    _, _, _, J, A, M = _parts(cell, 2, 6)
    k = 6
    T = J.shape[0]
    want = np.zeros((2, k + 1, *J.shape[2:]))
    for mask in itertools.product((0, 1), repeat=k):  # all 2^k choices of A_t or M_t
        P = np.broadcast_to(np.eye(J.shape[-1]), J.shape[1:]).copy()
        for j in range(k):
            P = P @ (M if mask[j] else A)[T - 1 - j]
        want[:, sum(mask)] += P
    e = path_expansion(A, M, [k], radii=[1.0], keep_terms=[k])
    got = _terms(e, k)
    scale = np.linalg.norm(want.sum(axis=1), axis=(-2, -1))[:, None]
    # reference: explicit sum over the 64 subsets; tolerance 1e-11 relative to ||P_k||
    assert (np.linalg.norm(got - want, axis=(-2, -1)) / scale).max() < 1e-11
    # the norms reported agree with the brute-force terms
    ref = np.log10(np.linalg.norm(want, axis=(-2, -1)))
    assert np.abs(e.log10_term_norm[0] - ref).max() < 1e-9


def test_long_lag_norms_in_the_log_domain() -> None:
    # LSTM at lag 120: the terms span many decades; each resolved term norm is checked
    # against its value at another radius (two independent DFTs) to 1e-6 relative
    c, p, x, J, A, M = _parts("lstm", 4, 120)
    e = path_expansion(A, M, [120], state=("h", "c"))
    e1 = path_expansion(A, M, [120], radii=[e.radii[1]])
    e2 = path_expansion(A, M, [120], radii=[e.radii[2]])
    both = e1.resolved & e2.resolved
    assert both.sum() >= 10
    d = np.abs(e1.log10_term_norm - e2.log10_term_norm)[both]
    assert d.max() < 1e-6 / np.log(10) * 2
    # S_0 from the DFT agrees with the direct pure additive chain
    assert abs(e.log10_term_norm[0, 0, 0] - e.log10_additive_norm[0, 0]) < 1e-6
    # full norm agrees with the engine's chain (same product), blocks below the full norm
    assert np.all(e.blocks["dc_T/dc_{T-k}"] <= e.log10_full_norm + 1e-12)
    tot = np.log10(sum(10.0 ** (v - e.log10_full_norm) for v in e.blocks.values()) ** 0.5)
    # ||P||_F^2 = sum of the blocks' squared norms; reference: direct
    assert np.allclose(
        np.log10(sum(10.0 ** (2 * (v - e.log10_full_norm)) for v in e.blocks.values())) / 2,
        0.0,
        atol=1e-12,
    )
    assert tot.shape == (1, 2)
    assert 0.99 < float(np.nansum(e.share_by_j()[0, 0])) < 1.01


def test_cell_wrapper_and_rnn_has_no_additive_path() -> None:
    c = get_cell("rnn")
    rng = np.random.default_rng(0)
    p = initialise(c, 3, 2, Init(scheme="gaussian"), rng)
    x = rng.standard_normal((8, 1, 2))
    e = path_decomposition(c, p, x, [8])
    assert e.log10_additive_norm[0, 0] == -np.inf  # S_0 = 0: no weight-free term
    assert abs(e.log10_multiplicative_norm[0, 0] - e.log10_full_norm[0, 0]) < 1e-12
    assert list(e.blocks) == ["dh_T/dh_{T-k}"]


def test_bad_input() -> None:
    A = np.zeros((3, 1, 2, 2))
    with pytest.raises(UsageError):
        path_expansion(A, np.zeros((3, 1, 3, 3)), [1])
    with pytest.raises(UsageError):
        path_expansion(A, A, [4])
    with pytest.raises(UsageError):
        path_expansion(A, A, [1], radii=[0.0])

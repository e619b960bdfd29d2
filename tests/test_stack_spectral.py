"""The stack's joint product as blocks (gradflow.stack_spectral.BlockProduct).

References: the dense block lower-triangular matrix assembled with NumPy by the test itself
(products to 1e-12 relative: float64 rounding of sums of at most ``L`` terms of unit-norm
blocks), and ``numpy.linalg.svd`` of that matrix for the certified spectral norm
(1e-10 relative: the certificate proves 1e-11, ``SPECTRAL_RTOL``, plus rounding).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.spectral import Spectral
from gradflow.stack_spectral import BlockProduct, ColumnProduct


def _blocks(rng: np.random.Generator, sizes: list[int], B: int, spread: float):
    blocks, dense = [], np.zeros((B, sum(sizes), sum(sizes)))
    o = np.cumsum([0, *sizes])
    for i in range(len(sizes)):
        for j in range(i + 1):
            a = rng.standard_normal((B, sizes[i], sizes[j]))
            a /= np.linalg.norm(a, axis=(1, 2), keepdims=True)
            f = 10.0 ** rng.uniform(-spread, 0.0, B)
            if i == 1 and j == 0:
                f[0] = 0.0  # an exactly-zero block for one sequence
            blocks.append((i, j, a, f))
            dense[:, o[i] : o[i + 1], o[j] : o[j + 1]] = a * f[:, None, None]
    return blocks, dense


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_block_product_is_the_dense_matrix(sizes: list[int], k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    B = 3
    blocks, dense = _blocks(rng, sizes, B, 3.0)
    op = BlockProduct(np, blocks, sizes, sizes, np.float64)
    M = sum(sizes)
    X = rng.standard_normal((B, M, k))
    assert op.shape == (B, M, M)
    # reference: NumPy's product of the assembled matrix; 1e-12 relative (rounding)
    np.testing.assert_allclose(op @ X, dense @ X, rtol=1e-12, atol=1e-12)
    opt = np.swapaxes(op, -1, -2)
    np.testing.assert_allclose(opt @ X, np.swapaxes(dense, -1, -2) @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(op), dense)
    np.testing.assert_array_equal(op[np.array([0, 2])], dense[[0, 2]])
    np.testing.assert_array_equal(np.asarray(opt), np.swapaxes(dense, -1, -2))


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_column_product_is_the_dense_matrix(sizes: list[int], k: int, seed: int) -> None:
    """The same blocks held by columns (rows of a column stacked, factors per row)."""
    rng = np.random.default_rng(seed)
    B = 3
    blocks, dense = _blocks(rng, sizes, B, 3.0)
    o = np.cumsum([0, *sizes])
    columns, factors = [], []
    for j in range(len(sizes)):
        mine = [(a, f) for i, jj, a, f in blocks if jj == j]  # rows i = j, j+1, ... in order
        columns.append(np.concatenate([a for a, _ in mine], axis=1))
        factors.append(
            np.concatenate(
                [np.repeat(f[:, None, None], a.shape[1], axis=1) for a, f in mine], axis=1
            )
        )
    op = ColumnProduct(np, columns, factors, sizes, np.float64)
    X = rng.standard_normal((B, int(o[-1]), k))
    # reference: NumPy's product of the assembled matrix; 1e-12 relative (rounding)
    np.testing.assert_allclose(op @ X, dense @ X, rtol=1e-12, atol=1e-12)
    opt = np.swapaxes(op, -1, -2)
    assert isinstance(opt, ColumnProduct) and opt.shape == dense.shape
    np.testing.assert_allclose(opt @ X, np.swapaxes(dense, -1, -2) @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(op), dense, rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.asarray(opt), np.swapaxes(dense, -1, -2), rtol=1e-15, atol=0)


def test_spectral_on_a_block_product_is_certified_and_exact() -> None:
    """The estimator on the unassembled product gives the dense SVD's norm, every lag."""
    rng = np.random.default_rng(7)
    sizes, B, K = [6, 5, 6], 4, 40
    spec = Spectral(np, B, sum(sizes), sum(sizes), np.float64, K)
    spec.start_chunk(K, B, np.float64)
    ref = np.empty((K, B))
    blocks, dense = _blocks(rng, sizes, B, 2.0)
    for lag in range(K):
        # a slowly drifting product, as along a chain: warm starts and settled bases matter
        blocks = [(i, j, a + 0.05 * rng.standard_normal(a.shape), f) for i, j, a, f in blocks]
        op = BlockProduct(np, blocks, sizes, sizes, np.float64)
        dense = np.asarray(op)
        fro = np.linalg.norm(dense, axis=(1, 2))
        spec.step(lag, op, lag + 1, fro)
        ref[lag] = np.linalg.svd(dense, compute_uv=False)[:, 0]
    got = spec.finish(K)
    # reference: numpy.linalg.svd of the assembled product; 1e-10 relative (certificate 1e-11)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert spec.worst_gap <= 1e-11 * (1 + 1e-6)
    assert sum(spec.counts.values()) == K * B


def test_namespaces_without_block_products_get_the_dense_product(monkeypatch) -> None:
    """A namespace whose ``swapaxes`` wants its own arrays is detected, and the stack then
    hands its estimators the dense product: the same norms (reference: the block path, equal
    to 1e-12 in log10: the same certified estimator on the same matrix)."""
    import types

    from gradflow import stack as stack_mod
    from gradflow.stack import Layer, analyze_stack
    from gradflow.stack_spectral import block_products_supported

    assert block_products_supported(np)
    strict = types.SimpleNamespace(
        zeros=np.zeros, asarray=np.asarray, swapaxes=lambda a, i, j: np.asarray(a).swapaxes(i, j)
    )
    assert not block_products_supported(strict)
    rng = np.random.default_rng(3)
    n, d = 3, 2
    layers = [
        Layer("lstm", {p.name: 0.5 * rng.standard_normal(p.numeric_shape(n, w)) for p in ps})
        for w, ps in ((d, _lstm_params()), (n, _lstm_params()))
    ]
    x = rng.standard_normal((30, 2, d))
    fast = analyze_stack(layers, x, gradient=None)
    monkeypatch.setattr(stack_mod, "block_products_supported", lambda xp: False)
    dense = analyze_stack(layers, x, gradient=None)
    for key in ("log10_spectral_norm", "log10_spectral_norm_hidden"):
        np.testing.assert_allclose(getattr(fast, key), getattr(dense, key), atol=1e-12)


def _lstm_params():
    from gradflow.cells import get_cell

    return get_cell("lstm").parameters

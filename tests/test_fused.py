"""Fused apply kernels (gradflow.fused) against codegen's ``apply``, for every catalogue cell,
every path and user cells that reach the other branches; the buffers are reused, not grown."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from gradflow.cells import CATALOGUE, get_cell
from gradflow.cells.parse import define_cell
from gradflow.codegen import PATHS, compile_cell
from gradflow.fused import fused_apply

_numba = importlib.util.find_spec("numba") is not None


def _factors(cell, path, n, B, rng):
    full = compile_cell(cell)
    kern = compile_cell(cell, path=path)
    d = 3
    params = {p.name: rng.standard_normal(p.numeric_shape(n, d)) for p in cell.parameters}
    q = full.pack(params)
    s = rng.uniform(-0.9, 0.9, (B, cell.state_size(n)))
    u = full.input_projection(rng.standard_normal((1, B, d)), q)
    _, V = full.step(s, u[0], q)
    by_name = dict(zip(full.layout.needed, V, strict=True))
    F = kern.factors([by_name[v][None] for v in kern.layout.needed], q, (1, B, n))
    return kern, q, tuple(f[0] for f in F)


def _check(cell, path, rng, n=5, B=3, rows=None):
    kern, q, F = _factors(cell, path, n, B, rng)
    m = cell.state_size(n)
    fused = fused_apply(kern).apply_into
    ws: dict = {}
    out = np.empty((B, rows or m, m))
    for _ in range(2):  # the second call reuses the workspace
        P = rng.standard_normal((B, rows or m, m))
        ref = kern.apply(P, F, q)
        got = fused(P, F, q, out, ws)
        assert got is out
        # Same sums of the same products in another order: 1e-12 relative and absolute.
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    kept = {k: id(v) for k, v in ws.items()}
    fused(P, F, q, out, ws)
    assert {k: id(v) for k, v in ws.items()} == kept
    if _numba:
        # The compiled variant (gradflow.fused_kernels.diag_sum for columns of diagonal terms)
        # does the same products and sums in the same order: bitwise equal to the NumPy one.
        compiled = fused_apply(kern, compiled=True).apply_into
        np.testing.assert_array_equal(compiled(P, F, q, np.empty_like(out), {}), out)


@pytest.mark.parametrize("path", PATHS)
# lstm-proj (two sizes, n and p) never takes the fused kernel: gradflow.chains keeps it on apply
@pytest.mark.parametrize("name", sorted(c for c in CATALOGUE if not CATALOGUE[c].sizes))
def test_fused_apply_matches_apply_for_the_catalogue(name, path):
    rng = np.random.default_rng(len(name) + 7 * PATHS.index(path))
    _check(get_cell(name), path, rng)
    _check(get_cell(name), path, rng, rows=2)  # a few rows, as for gradient vectors


@pytest.mark.parametrize(
    "h_new",
    [
        "tanh(a) * c",  # two affine nodes of the same source: two weights in one block
        "a + c",  # weights with no row scaling at all
        "tanh(a) + h",  # a diagonal term folded into the materialised block
        "tanh(a) + sigmoid(a) * c + h",  # one weight twice in a block, two weights, a diagonal
    ],
)
def test_fused_apply_matches_apply_for_user_cells(h_new):
    cell = define_cell(
        "fusedcheck",
        ["h"],
        {"a": "W_a @ x + U_a @ h + b_a", "c": "W_c @ x + U_c @ h + b_c", "h_new": h_new},
    )
    for path in PATHS:
        _check(cell, path, np.random.default_rng(1))


def test_fused_apply_with_non_adjacent_row_blocks():
    # Three state vectors where only the first and the last feed the middle block's weights:
    # the rows of G are not adjacent in P, so the kernel multiplies row block by row block.
    cell = define_cell(
        "threestate",
        ["h", "c", "e"],
        {
            "a": "W_a @ x + U_a @ h + b_a",
            "h_new": "tanh(a)",
            "c_new": "0.5 * c + 0.25 * e",
            "e_new": "sigmoid(a) * e",
        },
    )
    assert "xp.matmul(P0, G0[..., 0*n:1*n, :]" in fused_apply(compile_cell(cell)).source
    for path in PATHS:
        _check(cell, path, np.random.default_rng(2))


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_fused_apply_builds_the_block_in_one_product(name):
    # Several row-scaled weights in a column: the block comes from one batched product of the
    # stacked weights (not a pass per term), and no n x n temporary is allocated for it.
    source = fused_apply(compile_cell(get_cell(name))).source
    assert "xp.matmul(Fs0, S0, out=Gt0)" in source
    assert "W2" not in source
    assert not fused_apply(compile_cell(get_cell("rnn"))).stacked  # one weight: no stack


def test_compiled_variant_sums_diagonal_columns_in_one_call():
    # The LSTM's c column (dh/dc and dc/dc, both diagonal) is one compiled pass, and a column
    # with a single diagonal term stays a NumPy multiply (already one pass).
    lstm = fused_apply(compile_cell(get_cell("lstm")), compiled=True).source
    assert "_diag_sum(P, out, 1, n, _R1, xp.stack((F[4], F[8],)), False)" in lstm
    assert "_diag_sum" not in fused_apply(compile_cell(get_cell("lstm"))).source
    assert "_diag_sum" not in fused_apply(compile_cell(get_cell("gru")), compiled=True).source


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_analyze_with_the_fused_chain_matches_the_plain_chain(name, monkeypatch):
    # The whole analysis at n = FUSED_FROM through the fused kernel against the same analysis
    # through codegen's apply (the reference path): the same products in another order, so
    # every norm agrees to 1e-12 in log10 (rounding only; the Krylov path is the same).
    import gradflow.chains as chains
    from gradflow.engine import analyze

    n = chains.FUSED_FROM
    cell = get_cell(name)
    rng = np.random.default_rng(3)
    d = 4
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, d)) / np.sqrt(n) for p in cell.parameters
    }
    x = rng.standard_normal((6, 2, d))
    assert fused_apply(compile_cell(cell)).stacked  # the chain takes the fused kernel
    fused = analyze(cell, params, x, threads=1)
    monkeypatch.setattr(chains, "FUSED_FROM", n + 1)
    plain = analyze(cell, params, x, threads=1)
    for field in ("log10_spectral_norm", "log10_frobenius_norm", "log10_spectral_norm_hidden"):
        np.testing.assert_allclose(getattr(fused, field), getattr(plain, field), rtol=0, atol=1e-12)

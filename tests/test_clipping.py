"""The lag split of the parameter gradient and gradient clipping (gradflow.analysis.clipping)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.analysis.clipping import (
    batch_log10_norm,
    clip_log10_scale,
    lag_split_gradient,
    tail_share,
)
from gradflow.cells import get_cell
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise
from gradflow.stack import Layer, analyze_stack

T, B, N, D = 25, 3, 5, 2


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    params = initialise(get_cell("lstm"), N, D, Init(scheme="gaussian", sigma_w=6.0), rng)
    x = rng.standard_normal((T, B, D))
    return params, x, lag_split_gradient("lstm", params, x, range(T))


def test_total_matches_the_stack_engine_and_finite_differences(case):
    params, x, split = case
    res = analyze_stack([Layer("lstm", params)], x)
    ref = np.concatenate([res.parameter_gradient[f"l0.{k}"].reshape(B, -1) for k in split.keys], 1)
    # Reference 1: analyze_stack's sum_k G_k (itself checked against PyTorch autograd to
    # 1e-10 relative in tests/test_stack_reference.py); same kernels, another code path.
    np.testing.assert_allclose(split.gradient(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    # Reference 2: central differences of L = sum h_T (the stack's forward rollout) with
    # respect to a few entries of W_hf; step 1e-6, error O(h^2) ~ 1e-9 relative.
    off = sum(params[k].size for k in split.keys[: split.keys.index("W_hf")])
    for flat in (0, 7, 23):
        idx = np.unravel_index(flat, params["W_hf"].shape)
        h = 1e-6
        vals = []
        for sgn in (1, -1):
            p = {k: v.copy() for k, v in params.items()}
            p["W_hf"][idx] += sgn * h
            vals.append(analyze_stack([Layer("lstm", p)], x, gradient=None).final_hidden.sum(1))
        fd = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(split.gradient()[:, off + flat], fd, rtol=1e-6, atol=1e-7)


def test_lag_split_sums_to_the_total(case):
    _, _, split = case
    g, R = split.gradient(), split.tail()
    scale = np.abs(g).max()
    # R_{T-1} = 0 exactly (no lag beyond the last); R_{k-1} - R_k = G_k, whose norm the split
    # records separately; and G_0 + R_0 = dL/dθ. Tolerance 1e-10 relative to ||dL/dθ||.
    assert np.all(R[-1] == 0.0) and np.all(np.isneginf(split.log10_tail_norm[-1]))
    G = np.concatenate([(g - R[0])[None], R[:-1] - R[1:]])  # (T, B, P): G_0 .. G_{T-1}
    np.testing.assert_allclose(G.sum(axis=0), g, rtol=0, atol=1e-10 * scale)
    logs = np.log10(np.linalg.norm(G, axis=-1))
    big = split.log10_lag_norm > np.log10(scale) - 6  # differences of tails lose digits below
    np.testing.assert_allclose(logs[big], split.log10_lag_norm[big], atol=1e-8)


def _direct_share(split, c, mode):
    g, R = split.gradient(), split.tail()
    f = np.ones(B)
    if mode == "sequence":
        f = np.minimum(1.0, c / np.linalg.norm(g, axis=1))
    elif mode == "batch":
        f[:] = min(1.0, c / np.linalg.norm(g.mean(axis=0)))
    return np.linalg.norm((f[None, :, None] * R).mean(axis=1), axis=-1) / np.linalg.norm(
        (f[:, None] * g).mean(axis=0)
    )


@pytest.mark.parametrize("mode", ["none", "batch", "sequence"])
@pytest.mark.parametrize("c", [1e-3, 1.0, 1e6])
def test_clipped_share_against_a_direct_computation(case, mode, c):
    _, _, split = case
    # Reference: the plain-float formula ||mean_b f_b R_b|| / ||mean_b f_b g_b|| with the
    # clipping factors f_b = min(1, c/||g_b||) (or one factor for the batch mean), at these
    # moderate norms (no overflow); agreement to 1e-12 relative.
    ours = tail_share(split, c, mode)
    ref = _direct_share(split, c, mode)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_batch_clipping_keeps_the_share_and_sequence_clipping_moves_it(case):
    _, _, split = case
    none = tail_share(split, 1.0, "none")
    np.testing.assert_allclose(tail_share(split, 1.0, "batch"), none, rtol=1e-13)
    # every sequence is clipped at c = 0.1 here (norms above 0.1): the mean is reweighted
    assert np.all(split.log10_norm > -1)
    assert np.max(np.abs(tail_share(split, 0.1, "sequence") - none)) > 1e-3
    # a threshold above every norm clips nothing
    np.testing.assert_allclose(tail_share(split, 1e9, "sequence"), none, rtol=1e-13)
    assert batch_log10_norm(split) == pytest.approx(
        np.log10(np.linalg.norm(split.gradient().mean(0))), abs=1e-12
    )


@settings(max_examples=50, deadline=None)
@given(st.floats(-300, 300), st.floats(1e-6, 1e6))
def test_clip_scale_is_min_one_c_over_norm(log_norm, c):
    # Reference: log10 min(1, c / 10^x), to 1e-12 decades.
    got = float(clip_log10_scale(log_norm, c))
    assert got <= 0.0
    assert got == pytest.approx(min(0.0, np.log10(c) - log_norm), abs=1e-12)


def test_bad_arguments_are_refused(case):
    params, x, split = case
    with pytest.raises(UsageError, match="lags"):
        lag_split_gradient("lstm", params, x, [T])
    with pytest.raises(UsageError, match="mode"):
        tail_share(split, 1.0, "layer")
    with pytest.raises(UsageError, match="threshold"):
        tail_share(split, 0.0, "sequence")
    with pytest.raises(UsageError, match="shape"):
        lag_split_gradient("lstm", params, x[0], [0])

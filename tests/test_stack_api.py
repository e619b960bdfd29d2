"""gradflow.stack_api: a layer's weight gradient of L = sum h_T, one lag at a time."""

from __future__ import annotations

import numpy as np
import pytest

from gradflow.cells import get_cell
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise
from gradflow.stack import Layer, analyze_stack
from gradflow.stack_api import lag_gradients, parameter_names

T, B, N, D = 12, 2, 3, 2


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_lag_gradients_match_the_stack_analysis_and_finite_differences(cell):
    rng = np.random.default_rng(3)
    params = initialise(get_cell(cell), N, D, Init(scheme="gaussian", sigma_w=2.0), rng)
    x = rng.standard_normal((T, B, D))
    keys = parameter_names(cell)
    assert keys == tuple(p.name for p in get_cell(cell).parameters)
    steps = list(lag_gradients(cell, params, x))
    assert [j for j, _ in steps] == list(range(T))
    res = analyze_stack([Layer(cell, params)], x)
    sizes = np.cumsum([0] + [params[k].size for k in keys])
    total = sum(G.a * 10.0 ** G.l[:, None] for _, G in steps)
    for i, k in enumerate(keys):
        block = slice(sizes[i], sizes[i + 1])
        # Reference 1: the stack analysis' back-substitution (stack_vectors, another code path
        # over the same kernels, itself checked against PyTorch autograd): log10 ||G_j|| per
        # parameter to 1e-9 decades, and sum_j G_j = dL/dθ to 1e-10 relative.
        ref_lag = res.log10_lag_gradient_norm[f"l0.{k}"]
        for j, G in steps:
            with np.errstate(divide="ignore"):
                got = np.log10(np.linalg.norm(G.a[:, block], axis=1)) + G.l
            fin = np.isfinite(ref_lag[j])
            np.testing.assert_array_equal(np.isfinite(got), fin)
            np.testing.assert_allclose(got[fin], ref_lag[j][fin], atol=1e-9)
        ref = res.parameter_gradient[f"l0.{k}"].reshape(B, -1)
        np.testing.assert_allclose(total[:, block], ref, rtol=1e-10, atol=1e-12)
    # Reference 2: central differences of L = sum h_T for one entry of the first parameter;
    # step 1e-6, error O(h^2) ~ 1e-9 relative
    h = 1e-6
    vals = []
    for sgn in (1, -1):
        p = {k: v.copy() for k, v in params.items()}
        p[keys[0]].flat[1] += sgn * h
        vals.append(analyze_stack([Layer(cell, p)], x, gradient=None).final_hidden.sum(1))
    np.testing.assert_allclose(total[:, 1], (vals[0] - vals[1]) / (2 * h), rtol=1e-6, atol=1e-8)


def test_bad_inputs_are_refused():
    params = initialise(get_cell("rnn"), N, D, Init(), np.random.default_rng(0))
    with pytest.raises(UsageError, match=r"inputs must have shape \(T, B, d\)"):
        next(lag_gradients("rnn", params, np.zeros((4, D))))

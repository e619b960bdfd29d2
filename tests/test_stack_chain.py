"""The stack's joint product by column blocks (gradflow.stack_chain) and its estimators.

References: exact linearity (a ReLU RNN whose pre-activations stay positive is linear, so the
cross-layer block scales exactly with the upper layer's input weight), and the NumPy Krylov
path of gradflow.spectral against the compiled kernel (both certified to 1e-11 relative).
"""

from __future__ import annotations

import numpy as np
import pytest

import gradflow.spectral as spectral
from gradflow.cells import get_cell
from gradflow.stack import Layer, analyze_stack
from gradflow.stack_chain import SHARE


def _relu_params(n: int, d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Non-negative weights and biases of 2.5: with non-negative inputs every pre-activation
    is at least 5, so the ReLU is the identity and the layer is linear."""
    out = {}
    for p in get_cell("rnn-relu").parameters:
        shape = p.numeric_shape(n, d)
        if p.kind == "weight":
            out[p.name] = rng.uniform(0.0, 0.5, shape) / np.sqrt(shape[-1])
        else:
            out[p.name] = np.full(shape, 2.5)
    return out


@pytest.mark.parametrize("c", [1e-3, 1e-40, 1e-120])
def test_cross_blocks_scale_exactly_with_the_coupling(c: float) -> None:
    """Two linear layers: ``ds^2_T/ds^1_{T-k}`` is linear in layer 2's input weight, so its
    log10 norms shift by exactly ``log10 c`` while every layer's own chain is unchanged
    (reference: the same model with ``c = 1``; 1e-9 in log10 for certified spectral norms,
    1e-12 for Frobenius norms). At ``c = 1e-40`` and below the back-substituted term is more
    than ``SHARE`` decades below the block it reaches, so the block is rescaled (the branch
    this test is about); ``1e-120`` would underflow a product's squares without it."""
    rng = np.random.default_rng(3)
    n, d, T, B = 3, 2, 40, 2
    p0 = _relu_params(n, d, rng)
    p1 = _relu_params(n, n, rng)
    x = rng.uniform(0.0, 1.0, (T, B, d))
    ref = analyze_stack([Layer("rnn-relu", p0), Layer("rnn-relu", p1)], x, gradient=None)
    scaled = {**p1, "W_ih": c * p1["W_ih"]}
    res = analyze_stack([Layer("rnn-relu", p0), Layer("rnn-relu", scaled)], x, gradient=None)
    assert c > 10.0**-SHARE or -np.log10(c) > SHARE + 5  # both branches of the back-substitution
    np.testing.assert_allclose(
        res.cross_log10_frobenius_norm[0, 1:],
        ref.cross_log10_frobenius_norm[0, 1:] + np.log10(c),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        res.cross_log10_spectral_norm[0, 1:],
        ref.cross_log10_spectral_norm[0, 1:] + np.log10(c),
        atol=1e-9,
    )
    np.testing.assert_allclose(
        res.layer_log10_spectral_norm, ref.layer_log10_spectral_norm, atol=1e-9
    )
    assert np.isneginf(res.cross_log10_frobenius_norm[0, 0]).all()  # lag 0: an exact zero


def test_the_compiled_krylov_kernel_gives_the_numpy_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every estimator of a 3-layer stack on the compiled kernel (the fast extra) agrees with
    the NumPy path: both certify 1e-11 relative, so 1e-11 in log10 with rounding (reference:
    the NumPy path of gradflow.spectral); the chain's compiled applies give the same products."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    layers = []
    for d in (3, 5, 5):
        params = {}
        for p in get_cell("lstm").parameters:
            shape = p.numeric_shape(5, d)
            params[p.name] = rng.standard_normal(shape) / np.sqrt(shape[-1])
        layers.append(Layer("lstm", params))
    x = rng.standard_normal((60, 2, 3))
    monkeypatch.setenv("GRADFLOW_COMPILED", "0")
    ref = analyze_stack(layers, x, gradient=None, input_sensitivity=False)
    monkeypatch.setenv("GRADFLOW_COMPILED", "1")
    monkeypatch.setattr(spectral, "COMPILED_WORK", 0)
    monkeypatch.setattr(spectral, "COMPILED_FROM", 0)
    res = analyze_stack(layers, x, gradient=None, input_sensitivity=False)
    for key in ("log10_spectral_norm", "layer_log10_spectral_norm", "cross_log10_spectral_norm"):
        np.testing.assert_allclose(getattr(res, key), getattr(ref, key), atol=1e-11, err_msg=key)
    # The chain takes the fused applies' compiled diagonal kernel there (gradflow.fused:
    # bitwise the NumPy passes' result), so the products, and their Frobenius norms, are equal.
    for key in ("log10_frobenius_norm", "layer_log10_frobenius_norm", "cross_log10_frobenius_norm"):
        np.testing.assert_array_equal(getattr(res, key), getattr(ref, key), err_msg=key)
    assert res.meta["spectral"]["worst_relative_gap"] <= spectral.SPECTRAL_RTOL * (1 + 1e-6)

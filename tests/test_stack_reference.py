"""The stack reference fixtures (tests/data/stacks) against what gradflow computes today.

The fixtures were made by ``tests/reference/make_stack_reference.py`` with PyTorch autograd
(float64); their definitions are in that script's docstring. Beside the stack engine's own
tests against them (tests/test_stack.py), these tests check parts that gradflow computes
independently of the stack engine:

* the loaded model (``gradflow.formats.load_model``) reproduces torch's outputs (1e-10 abs);
* each layer's own chain (the diagonal block of the joint product) equals the single-layer
  engine run on that layer with the layer below's outputs as inputs (1e-8 in log10, the
  engine's agreement bar with autograd in DESIGN.md);
* internal identities of the fixtures: lag 0 is the identity, the top cross block is the top
  chain, and ``sum_k G_k`` equals the autograd gradient (1e-12 relative, float64 rounding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_formats import model_outputs

from gradflow.engine import analyze
from gradflow.formats import Model, load_model

DATA = Path(__file__).parent / "data" / "stacks"
NAMES = ["lstm2", "lstm3", "gru2", "gru_bi", "lstm_proj", "rnn_nobias"]


def _load(name: str) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    config = json.loads((DATA / f"stack_{name}.json").read_text())
    x = np.load(DATA / f"stack_{name}_inputs.npy")
    ref = dict(np.load(DATA / f"stack_{name}_ref.npz"))
    return config, x, ref


@pytest.mark.parametrize("name", NAMES)
def test_loaded_stack_reproduces_torch_outputs(name: str) -> None:
    config, x, ref = _load(name)
    model = load_model(DATA / f"stack_{name}.safetensors")
    assert len(model.layers) == config["num_layers"]
    assert model.layers[0].proj_size == config["proj_size"]
    assert model.layers[0].bias == config["bias"]
    assert model.bidirectional == config["bidirectional"]
    # reference: torch's own outputs, float64
    np.testing.assert_allclose(model_outputs(model, x), ref["outputs"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_each_layers_own_chain_matches_the_single_layer_engine(name: str) -> None:
    config, x, ref = _load(name)
    model = load_model(DATA / f"stack_{name}.safetensors")
    inputs = x
    for k, layer in enumerate(model.layers):
        for d in layer.directions:
            xi = inputs[::-1].copy() if d.reverse else inputs
            res = analyze(layer.cell, d.params, xi)
            key = f"chain_log10_spectral_l{k}{'_reverse' if d.reverse else ''}"
            # reference: torch autograd Jacobian blocks; bar 1e-8 in log10 (DESIGN.md)
            np.testing.assert_allclose(res.log10_spectral_norm, ref[key], rtol=0, atol=1e-8)
            fro = key.replace("spectral", "frobenius")
            np.testing.assert_allclose(res.log10_frobenius_norm, ref[fro], rtol=0, atol=1e-8)
        inputs = model_outputs(Model((layer,)), inputs)  # this layer's outputs feed the next


@pytest.mark.parametrize("name", NAMES)
def test_fixture_identities(name: str) -> None:
    config, x, ref = _load(name)
    L = config["num_layers"]
    if not config["bidirectional"]:
        n, p = config["hidden_size"], config["proj_size"] or config["hidden_size"]
        m = L * (p + n if config["cell"] == "lstm" else n)
        # lag 0 is the identity of the joint state (size m): exact up to float64 rounding
        np.testing.assert_allclose(ref["joint_log10_spectral"][0], 0.0, atol=1e-14)
        np.testing.assert_allclose(
            ref["joint_log10_frobenius"][0], np.log10(np.sqrt(m)), atol=1e-14
        )
        np.testing.assert_array_equal(
            ref[f"cross_log10_spectral_l{L - 1}"], ref[f"chain_log10_spectral_l{L - 1}"]
        )
        assert np.all(np.isneginf(ref["cross_log10_spectral_l0"][0]))  # exactly zero at lag 0
        # the joint norm bounds every block from above (a block of a matrix)
        for key in [
            k for k in ref if k.startswith(("chain_log10_spectral", "cross_log10_spectral"))
        ]:
            assert np.all(ref[key] <= ref["joint_log10_spectral"] + 1e-12), key
    for key in [k for k in ref if k.startswith("grad/")]:
        tensor = key[len("grad/") :]
        total = ref[key]
        split = ref[f"lag_grad/{tensor}"].sum(axis=0)
        # sum_k G_k = dL/dtheta; float64 rounding over T terms
        np.testing.assert_allclose(split, total, rtol=1e-12, atol=1e-12 * np.abs(total).max())
    assert ref["grad_norm_input"].shape == (config["steps"], config["batch"])

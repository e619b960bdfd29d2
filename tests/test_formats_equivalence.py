"""Keras and ONNX files give the numbers of the equivalent PyTorch model.

Reference: ``tests/data/formats/equiv_{keras,onnx}_*.json``, made by
``tests/reference/make_format_equivalence.py`` with torch autograd (float64) on the PyTorch
model the script builds from each file's weights (read with Keras / ``onnx.numpy_helper``, not
with gradflow, and checked there to reproduce the outputs the fixture stores). gradflow loads
each file itself (:func:`gradflow.formats.load_model`) and analyses it as a stack
(:func:`gradflow.formats.select.analyze_model`). Tolerances (the issue's bar for formats):
1e-10 absolute on log10 norms, 1e-10 relative on gradient vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradflow.formats import load_model
from gradflow.formats.select import analyze_model

DATA = Path(__file__).parent / "data" / "formats"
LOG_TOL = 1e-10  # absolute, log10 norms, against torch autograd
REL_TOL = 1e-10  # relative, gradient vectors, against torch autograd
CASES = [
    *(("keras", n) for n in ("lstm_stack", "gru_after", "simple_relu", "lstm_nobias")),
    ("keras", "bi_gru_rnn"),
    *(("onnx", n) for n in ("lstm", "lstm_nobias", "lstm_bi", "gru_lbr1", "rnn_reverse")),
    ("onnx", "rnn_relu"),
    ("onnx", "stack"),
]


def _arr(value: object) -> np.ndarray:
    """JSON lists with ``null`` for ``-inf`` (an exact zero) -> float arrays."""
    a = np.array(value, dtype=float)
    return np.where(np.isnan(a), -np.inf, a)


def _inputs(fmt: str, name: str) -> np.ndarray:
    x = np.load(DATA / f"{fmt}_{name}_io.npz")["inputs"]
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if fmt == "keras" else x


@pytest.mark.parametrize(("fmt", "name"), CASES, ids=[f"{f}_{n}" for f, n in CASES])
def test_file_gives_the_numbers_of_the_equivalent_torch_model(fmt: str, name: str) -> None:
    ref = json.loads((DATA / f"equiv_{fmt}_{name}.json").read_text())
    model = load_model(DATA / f"{fmt}_{name}.{'keras' if fmt == 'keras' else 'onnx'}")
    x = _inputs(fmt, name)
    T = x.shape[0]
    last = analyze_model(model, x, gradient="last")
    total = analyze_model(model, x, gradient="sum", lag_split=False)
    assert [layer["name"] for layer in last.to_dict()["layers"]] == ref["layers"]
    close = {"rtol": 0, "atol": LOG_TOL}
    np.testing.assert_allclose(last.final_hidden, _arr(ref["final_hidden"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(last.layer_log10_spectral_norm, _arr(ref["layer_spectral"]), **close)
    np.testing.assert_allclose(
        last.layer_log10_frobenius_norm, _arr(ref["layer_frobenius"]), **close
    )
    if "joint_spectral" in ref:  # unidirectional: the joint product and the top row
        np.testing.assert_allclose(last.log10_spectral_norm, _arr(ref["joint_spectral"]), **close)
        np.testing.assert_allclose(last.log10_frobenius_norm, _arr(ref["joint_frobenius"]), **close)
        np.testing.assert_allclose(
            last.cross_log10_spectral_norm, _arr(ref["cross_spectral"]), **close
        )
        np.testing.assert_allclose(
            last.cross_log10_frobenius_norm, _arr(ref["cross_frobenius"]), **close
        )
    for res, loss in ((last, "last"), (total, "sum")):
        np.testing.assert_allclose(
            res.log10_input_gradient_norm, _arr(ref[f"input_grad_{loss}"]), **close
        )
        # positions T..1 (a unidirectional stack also reports its initial state, row T)
        np.testing.assert_allclose(
            res.layer_log10_gradient_norm[:, :T], _arr(ref[f"layer_grad_{loss}"]), **close
        )
    got = last.parameter_gradient
    assert got is not None and sorted(got) == sorted(ref["parameter_gradient"])
    for key, want in ref["parameter_gradient"].items():
        w = np.array(want)
        np.testing.assert_allclose(got[key], w, rtol=REL_TOL, atol=REL_TOL * np.abs(w).max())

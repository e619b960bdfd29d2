"""``gradflow analyze`` against an independent PyTorch autograd computation.

The reference numbers in ``tests/data/ref_<cell>_<regime>.json`` were made by
``tests/reference/make_torch_reference.py`` with torch 2.13 (``torch.nn.RNN/LSTM/GRU`` and
their ``*Cell`` twins, ``torch.autograd.functional.jacobian`` for ``ds_T/ds_{T-k}`` at every lag,
``torch.linalg.matrix_norm`` for the norms, ``torch.autograd.grad`` for ``dL/ds_{T-k}``), in
float64, with nothing from gradflow. torch is not a gradflow dependency, so the numbers are
stored; the weights (``.safetensors``, PyTorch names) and inputs (``.npy``) beside them are the
exact files torch used.

Tolerances: 1e-8 absolute in log10 for norms (DESIGN.md's quality bar for agreement with an
independent autodiff computation), 1e-12 absolute for ``h_T``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

DATA = Path(__file__).parent / "data"
REFERENCES = sorted(DATA.glob("ref_*.json"))
NORM_KEYS = ("log10_spectral_norm", "log10_frobenius_norm", "log10_spectral_norm_hidden")
LOG10_TOL = 1e-8  # DESIGN.md: engine vs independent autodiff, in log10
HIDDEN_TOL = 1e-12  # h_T from a float64 rollout of T <= 40 steps


def _files(ref_path: Path) -> tuple[dict, Path, Path]:
    ref = json.loads(ref_path.read_text())
    weights = ref_path.with_suffix(".safetensors")
    inputs = ref_path.with_name(ref_path.stem + "_inputs.npy")
    return ref, weights, inputs


def test_reference_files_present() -> None:
    # three cells x two regimes, made by tests/reference/make_torch_reference.py
    assert [p.stem for p in REFERENCES] == [
        f"ref_{c}_{r}" for c in ("gru", "lstm", "rnn") for r in ("moderate", "vanishing")
    ]
    for ref_path in REFERENCES:
        ref, weights, inputs = _files(ref_path)
        assert weights.is_file() and inputs.is_file()
        assert ref["generator"]["script"] == "tests/reference/make_torch_reference.py"


@pytest.mark.parametrize("extra", [[], ["--gradient", "last"]], ids=["contract", "gradient"])
@pytest.mark.parametrize("ref_path", REFERENCES, ids=lambda p: p.stem)
def test_cli_analyze_matches_torch_autograd(
    ref_path: Path, extra: list[str], tmp_path: Path
) -> None:
    from gradflow.cli import cli

    ref, weights, inputs = _files(ref_path)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli,
        [
            "analyze",
            "--cell",
            ref["cell"],
            "--weights",
            str(weights),
            "--inputs",
            str(inputs),
            "--output",
            str(out),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    for key in ("cell", "hidden_size", "input_size", "steps", "batch", "lags"):
        assert got[key] == ref[key], key
    for key in NORM_KEYS:
        # torch autograd reference; 1e-8 absolute in log10
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=LOG10_TOL, err_msg=key)
    # h_T from torch's own forward pass; 1e-12 absolute
    np.testing.assert_allclose(got["final_hidden"], ref["final_hidden"], rtol=0, atol=HIDDEN_TOL)
    if extra:
        assert got["gradient_loss"] == "last"
        # torch.autograd.grad of L = sum(h_T) w.r.t. s_{T-k}; 1e-8 absolute in log10
        np.testing.assert_allclose(
            got["log10_gradient_norm"], ref["log10_gradient_norm"], rtol=0, atol=LOG10_TOL
        )


@pytest.mark.parametrize("ref_path", REFERENCES, ids=lambda p: p.stem)
def test_engine_gradient_norm_matches_torch_autograd(ref_path: Path) -> None:
    from gradflow.engine import analyze
    from gradflow.weights import load_inputs, load_weights

    ref, weights, inputs = _files(ref_path)
    params = load_weights(weights, ref["cell"])
    x = load_inputs(inputs, input_size=params.input_size)
    res = analyze(ref["cell"], params.params, x, gradient="last")
    # torch.autograd.grad of L = sum(h_T) w.r.t. s_{T-k}; 1e-8 absolute in log10
    np.testing.assert_allclose(
        res.log10_gradient_norm, ref["log10_gradient_norm"], rtol=0, atol=LOG10_TOL
    )
    np.testing.assert_allclose(
        res.log10_spectral_norm, ref["log10_spectral_norm"], rtol=0, atol=LOG10_TOL
    )
    np.testing.assert_allclose(res.final_hidden, ref["final_hidden"], rtol=0, atol=HIDDEN_TOL)

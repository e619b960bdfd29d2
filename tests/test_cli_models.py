"""``gradflow analyze`` on whole models (PyTorch, Keras 3, ONNX files) against references.

* The command line ``gradflow inspect FILE`` prints works as printed, for every fixture in
  ``tests/data/formats/`` and ``tests/data/stacks/``; the result's ``final_hidden`` equals the
  last output the framework itself computed (``*_io.npz``: torch, Keras and the ONNX reference
  evaluator in float64, made by the scripts in ``tests/reference/``), to 1e-10 absolute (the
  bar of tests/test_formats.py, test_keras.py and test_onnx.py; the two ONNX fixtures with only
  ONNX Runtime float32 outputs to 1e-6, as there).
* The numbers: ``tests/data/stacks/<model>.json`` are PyTorch autograd references made by
  ``tests/reference/make_stack_engine_reference.py`` (torch, float64, nothing from gradflow).
  Through the CLI they agree to 1e-8 in log10 for norms (DESIGN.md's bar for an independent
  autodiff computation), 1e-10 relative for gradient vectors, 1e-10 absolute for tail
  fractions; the same tolerances as tests/test_stack.py, which checks the library call.
"""

from __future__ import annotations

import json
import shlex
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from gradflow.cli import cli
from gradflow.results import AnalysisResult, StackResult, load_result

FORMATS = Path(__file__).parent / "data" / "formats"
STACKS = Path(__file__).parent / "data" / "stacks"
LOG10_TOL = 1e-8
REL_TOL = 1e-10


def _arr(value: Any) -> np.ndarray:
    a = np.array(value, dtype=float)
    a[np.isnan(a)] = -np.inf  # the reference script stores log10(0) = -inf as null
    return a


def _close_log(got: np.ndarray | None, want: Any) -> None:
    assert got is not None
    want = _arr(want)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=0, atol=LOG10_TOL)


def _invoke(args: list[str]) -> Any:
    res = CliRunner().invoke(cli, args)
    return res


def _inspect_command(path: Path) -> list[str]:
    """The ``analyse:`` command line ``gradflow inspect PATH`` prints, split as a shell would."""
    res = _invoke(["inspect", str(path)])
    assert res.exit_code == 0, res.output
    lines = [ln.split("analyse: ", 1)[1] for ln in res.output.splitlines() if "analyse: " in ln]
    assert len(lines) == 1, res.output
    argv = shlex.split(lines[0])
    assert argv[:2] == ["gradflow", "analyze"]
    return argv[1:]


def _run_printed(path: Path, inputs: np.ndarray, tmp: Path, extra: tuple[str, ...] = ()) -> Any:
    np.save(tmp / "inputs.npy", inputs)
    argv = [
        {"INPUTS.npy": str(tmp / "inputs.npy"), "result.json": str(tmp / "result.json")}.get(a, a)
        for a in _inspect_command(path)
    ]
    res = _invoke([*argv, *extra])
    assert res.exit_code == 0, res.output
    assert (tmp / "result.run.json").exists()  # timings apart from the data
    return load_result(tmp / "result.json")


def _io(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Inputs ``(T, B, d)``, the framework's outputs ``(T, B, width)`` and the tolerance."""
    io = np.load(FORMATS / f"{name}_io.npz")
    if name.startswith("keras"):  # Keras is batch first
        return io["inputs"].transpose(1, 0, 2), io["outputs"].transpose(1, 0, 2), 1e-10
    if name.startswith("onnx"):  # Y is (T, directions, B, n)
        key, tol = ("ref64", 1e-10) if "ref64" in io.files else ("ort", 1e-6)
        y = io[key]
        return io["inputs"], y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1), tol
    return io["inputs"], io["outputs"], 1e-10


FORMAT_FILES = sorted(
    p.name for p in FORMATS.iterdir() if p.suffix in (".safetensors", ".keras", ".onnx")
)


@pytest.mark.parametrize("name", FORMAT_FILES)
def test_the_printed_command_runs_on_every_format_fixture(name: str, tmp_path: Path) -> None:
    path = FORMATS / name
    if path.suffix == ".keras":
        pytest.importorskip("h5py")
    if path.suffix == ".onnx":
        pytest.importorskip("onnx")
    x, outputs, tol = _io(name.split(".")[0])
    # nn.RNN's nonlinearity is not in a state_dict: inspect's note says to add this option
    extra = ("--nonlinearity", "relu") if name == "torch_rnn_relu.safetensors" else ()
    res = _run_printed(path, x, tmp_path, extra)
    assert res.steps == x.shape[0] and res.batch == x.shape[1]
    np.testing.assert_allclose(res.final_hidden, outputs[-1], rtol=0, atol=tol)
    one_forward = isinstance(res, AnalysisResult)
    if one_forward:  # the analyze contract, exactly as for a single-layer file before
        assert set(res.to_dict()) >= {"log10_spectral_norm", "final_hidden", "lags"}
    else:
        assert isinstance(res, StackResult) and res.meta["weights"] == str(path)


def test_weights_h5_with_config(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    with zipfile.ZipFile(FORMATS / "keras_bi_gru_rnn.keras") as zf:
        (tmp_path / "config.json").write_bytes(zf.read("config.json"))
    x, outputs, tol = _io("keras_bi_gru_rnn")
    np.save(tmp_path / "x.npy", x)
    weights = str(FORMATS / "keras_bi_gru_rnn.weights.h5")
    out = tmp_path / "o.json"
    args = ["analyze", "--weights", weights, "--inputs", str(tmp_path / "x.npy")]
    res = _invoke([*args, "--output", str(out), "--config", str(tmp_path / "config.json")])
    assert res.exit_code == 0, res.output
    got = load_result(out)
    assert isinstance(got, StackResult)
    assert [la["name"] for la in got.layers] == ["l0", "l0_reverse", "l1"]
    np.testing.assert_allclose(got.final_hidden, outputs[-1], rtol=0, atol=tol)
    res = _invoke([*args, "--output", str(tmp_path / "p.json")])  # no config: one line
    assert res.exit_code != 0 and "--config" in res.output and len(res.output.splitlines()) == 1


UNI = ("lstm2", "lstm3", "gru2", "rnn_nobias")


@pytest.mark.parametrize("name", UNI)
def test_stacks_through_the_cli_match_torch_autograd(name: str, tmp_path: Path) -> None:
    ref = json.loads((STACKS / f"{name}.json").read_text())
    res = _run_printed(
        STACKS / f"{name}.safetensors", np.load(STACKS / f"{name}_inputs.npy"), tmp_path
    )
    assert isinstance(res, StackResult) and res.gradient_loss == "last"
    assert len(res.layers) == ref["layers"]
    pairs = {
        "joint_spectral": res.log10_spectral_norm,
        "joint_frobenius": res.log10_frobenius_norm,
        "joint_hidden": res.log10_spectral_norm_hidden,
        "layer_spectral": res.layer_log10_spectral_norm,
        "cross_spectral": res.cross_log10_spectral_norm,
        "input_spectral": res.log10_input_spectral_norm,
        "layer_input_spectral": res.layer_log10_input_spectral_norm,
        "grad_last": res.log10_gradient_norm,
        "layer_grad_last": res.layer_log10_gradient_norm,
        "input_grad_last": res.log10_input_gradient_norm,
    }
    for key, got in pairs.items():
        _close_log(got, ref[key])
    for key in ref["lag_norm"]:
        _close_log(res.log10_lag_gradient_norm[key], ref["lag_norm"][key])
        np.testing.assert_allclose(
            res.lag_tail_fraction[key], ref["tail_fraction"][key], rtol=0, atol=1e-10
        )
    for key, want in ref["parameter_gradient"].items():
        want = np.array(want)
        scale = np.abs(want).max()
        np.testing.assert_allclose(res.parameter_gradient[key], want, rtol=0, atol=REL_TOL * scale)
    np.testing.assert_allclose(res.final_hidden, ref["final_hidden"], rtol=0, atol=1e-12)


def test_gradient_sum_through_the_cli(tmp_path: Path) -> None:
    ref = json.loads((STACKS / "lstm2.json").read_text())
    res = _run_printed(
        STACKS / "lstm2.safetensors",
        np.load(STACKS / "lstm2_inputs.npy"),
        tmp_path,
        ("--gradient", "sum"),
    )
    assert isinstance(res, StackResult) and res.gradient_loss == "sum"
    _close_log(res.log10_gradient_norm, ref["grad_sum"])
    _close_log(res.layer_log10_gradient_norm, ref["layer_grad_sum"])
    assert not res.log10_lag_gradient_norm  # the lag split is defined for the last step only


def test_bidirectional_stack_through_the_cli(tmp_path: Path) -> None:
    ref = json.loads((STACKS / "gru_bi.json").read_text())
    x = np.load(STACKS / "gru_bi_inputs.npy")
    res = _run_printed(STACKS / "gru_bi.safetensors", x, tmp_path)
    assert isinstance(res, StackResult) and res.log10_spectral_norm is None
    _close_log(res.layer_log10_spectral_norm, ref["chain_spectral"])
    _close_log(res.layer_log10_frobenius_norm, ref["chain_frobenius"])
    _close_log(res.layer_log10_gradient_norm, ref["layer_grad_last"])
    _close_log(res.log10_input_gradient_norm, ref["input_grad_last"])


def _analyze(tmp: Path, weights: Path, x: np.ndarray, *args: str) -> Any:
    np.save(tmp / "x.npy", x)
    out = tmp / "o.json"
    base = ["analyze", "--weights", str(weights), "--inputs", str(tmp / "x.npy")]
    return _invoke([*base, "--output", str(out), *args]), out


def test_layers_and_direction_select_one_layer(tmp_path: Path) -> None:
    """``--layers 1`` on a 2-layer LSTM is layer 0 alone: the analyze contract (an analysis
    result) with the torch reference's layer-0 chain; ``--direction reverse --layers 1`` on a
    bidirectional GRU is the reverse direction's own chain (both to 1e-8 in log10)."""
    ref = json.loads((STACKS / "lstm2.json").read_text())
    res, out = _analyze(
        tmp_path,
        STACKS / "lstm2.safetensors",
        np.load(STACKS / "lstm2_inputs.npy"),
        "--layers",
        "1",
    )
    assert res.exit_code == 0, res.output
    one = load_result(out)
    assert isinstance(one, AnalysisResult)
    _close_log(one.log10_spectral_norm, ref["layer_spectral"][0])
    ref = json.loads((STACKS / "gru_bi.json").read_text())
    x = np.load(STACKS / "gru_bi_inputs.npy")
    res, out = _analyze(
        tmp_path, STACKS / "gru_bi.safetensors", x, "--layers", "1", "--direction", "reverse"
    )
    assert res.exit_code == 0, res.output
    rev = load_result(out)
    assert isinstance(rev, StackResult) and rev.layer_names == ["l0_reverse"]
    _close_log(rev.layer_log10_spectral_norm, [ref["chain_spectral"][1]])


def test_single_layer_file_keeps_the_analyze_json(tmp_path: Path) -> None:
    """A one-layer PyTorch file gives the same data file through the model loader as
    gradflow.engine.analyze on load_weights (the single-layer path before this change)."""
    from dataclasses import replace

    from gradflow.engine import analyze
    from gradflow.weights import load_weights

    weights = Path(__file__).parent / "data" / "ref_lstm_moderate.safetensors"
    x = np.load(Path(__file__).parent / "data" / "ref_lstm_moderate_inputs.npy")
    res, out = _analyze(tmp_path, weights, x, "--cell", "lstm")
    assert res.exit_code == 0, res.output
    want = analyze("lstm", load_weights(weights, "lstm"), x)
    want = replace(
        want, meta={**want.meta, "weights": str(weights), "inputs": str(tmp_path / "x.npy")}
    )
    want.save(tmp_path / "want.json")
    assert out.read_bytes() == (tmp_path / "want.json").read_bytes()


def _two_modules(tmp: Path) -> Path:
    tensors = load_file(str(STACKS / "gru2.safetensors"))
    both = {f"enc.{k}": v for k, v in tensors.items()} | {f"dec.{k}": v for k, v in tensors.items()}
    save_file(both, str(tmp / "two.safetensors"))
    return tmp / "two.safetensors"


def test_prefix_picks_one_of_two_modules(tmp_path: Path) -> None:
    ref = json.loads((STACKS / "gru2.json").read_text())
    x = np.load(STACKS / "gru2_inputs.npy")
    res, out = _analyze(tmp_path, _two_modules(tmp_path), x, "--prefix", "dec")
    assert res.exit_code == 0, res.output
    got = load_result(out)
    assert isinstance(got, StackResult) and got.meta["prefix"] == "dec."
    _close_log(got.log10_spectral_norm, ref["joint_spectral"])


def _mismatched(tmp: Path) -> Path:
    tensors = load_file(str(STACKS / "lstm2.safetensors"))
    tensors["weight_ih_l1"] = np.zeros((20, 4))
    save_file(tensors, str(tmp / "bad.safetensors"))
    return tmp / "bad.safetensors"


REFUSALS = [
    ("two modules, no --prefix", "two", (), "holds 2 recurrent modules"),
    ("mismatched layer sizes", "mismatched", (), "weight_ih_l1"),
    ("--cell against the file", "lstm2", ("--cell", "gru"), "--cell gru does not match"),
    ("one direction of a stacked bi", "gru_bi", ("--direction", "forward"), "reads both"),
    ("both on a unidirectional", "lstm2", ("--direction", "both"), "no bidirectional layer"),
    ("too many layers", "lstm2", ("--layers", "3"), "choose 1 to 2"),
    ("layers not a number", "lstm2", ("--layers", "two"), "'all' or a number"),
    ("paths on a stack", "lstm2", ("--paths",), "apply to one-layer models"),
    ("nonlinearity on an lstm", "lstm2", ("--nonlinearity", "relu"), "applies to nn.RNN only"),
    ("model options with a cell file", "cellfile", ("--layers", "2"), "applies to model files"),
    ("--config on a state_dict", "lstm2", ("--config", "c.json"), "does not take one"),
]


@pytest.mark.parametrize(
    ("what", "model", "args", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusals_are_one_line(
    what: str, model: str, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    x = np.load(STACKS / "lstm2_inputs.npy")
    if model == "two":
        weights = _two_modules(tmp_path)
    elif model == "mismatched":
        weights = _mismatched(tmp_path)
    elif model == "cellfile":
        shutil.copy(STACKS / "lstm2.safetensors", tmp_path / "w.safetensors")
        (tmp_path / "c.toml").write_text("")
        weights = tmp_path / "w.safetensors"
        args = ("--cell-file", str(tmp_path / "c.toml"), *args)
    else:
        weights = STACKS / f"{model}.safetensors"
    res, out = _analyze(tmp_path, weights, x, *args)
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert message in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("name", ["lstm2", "lstm3", "gru2", "rnn_nobias", "gru_bi", "lstm_proj"])
def test_printed_command_matches_the_second_torch_reference(name: str, tmp_path: Path) -> None:
    """``tests/data/stacks/stack_*``: a second, independent set of torch autograd references
    (``tests/reference/make_stack_reference.py``, float64). Through the command ``inspect``
    prints: torch's outputs (1e-10 absolute), the joint, per-layer and cross-layer chains and
    the joint memory curve (1e-8 in log10), and for unidirectional stacks the weight
    gradient of ``L = sum(h_T)`` over the batch, mapped back to PyTorch's tensors with
    ``to_torch_tensors`` (1e-10 relative)."""
    from gradflow.weights import to_torch_tensors

    ref = dict(np.load(STACKS / f"stack_{name}_ref.npz"))
    x = np.load(STACKS / f"stack_{name}_inputs.npy")
    res = _run_printed(STACKS / f"stack_{name}.safetensors", x, tmp_path)
    assert isinstance(res, StackResult)
    np.testing.assert_allclose(res.final_hidden, ref["outputs"][-1], rtol=0, atol=1e-10)
    assert res.layer_log10_spectral_norm is not None
    for i, layer in enumerate(res.layer_names):
        _close_log(res.layer_log10_spectral_norm[i], ref[f"chain_log10_spectral_{layer}"])
    if res.log10_spectral_norm is None:  # bidirectional: chains only (docs/stacks.md)
        return
    _close_log(res.log10_spectral_norm, ref["joint_log10_spectral"])
    _close_log(res.log10_input_spectral_norm, ref["input_log10_spectral_joint"])
    assert res.cross_log10_spectral_norm is not None
    for i, layer in enumerate(res.layer_names):
        _close_log(res.cross_log10_spectral_norm[i], ref[f"cross_log10_spectral_{layer}"])
        cell = str(res.layers[i]["cell"])
        own = {
            key.split(".", 1)[1]: value.sum(axis=0)  # the fixture's loss sums the batch
            for key, value in res.parameter_gradient.items()
            if key.split(".", 1)[0] == layer
        }
        for tensor, got in to_torch_tensors(cell, own).items():
            key = "grad/" + tensor.replace("_l0", f"_{layer}")
            if key in ref:  # bias=False: the module has no bias tensors
                scale = np.abs(ref[key]).max()
                np.testing.assert_allclose(got, ref[key], rtol=0, atol=REL_TOL * scale)


def test_analyze_model_is_the_python_entry_point() -> None:
    """``analyze_model(load_model(FILE), x)`` is what the command computes: the torch
    reference of the 3-layer LSTM to 1e-8 in log10 (as above)."""
    from gradflow.formats import load_model
    from gradflow.formats.select import analyze_model

    ref = json.loads((STACKS / "lstm3.json").read_text())
    x = np.load(STACKS / "lstm3_inputs.npy")
    res = analyze_model(load_model(STACKS / "lstm3.safetensors"), x, gradient="last")
    _close_log(res.log10_spectral_norm, ref["joint_spectral"])
    _close_log(res.cross_log10_spectral_norm, ref["cross_spectral"])
    two = analyze_model(load_model(STACKS / "lstm3.safetensors"), x, layers=2, gradient=None)
    assert two.layer_names == ["l0", "l1"]
    _close_log(two.layer_log10_spectral_norm, ref["layer_spectral"][:2])

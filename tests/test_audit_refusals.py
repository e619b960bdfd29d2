"""Issue 15's refusals, tried from the command line as a user would, and ``inspect`` on them.

Each refusal is one line on stderr naming the tensor, node, layer or attribute and what to do,
with a non-zero exit, no traceback and no output file. Where a file holds several candidate
recurrent modules, ``gradflow inspect`` lists every one with the command that analyses it, and
that command runs. References for the numbers of those commands:

* ONNX ``RNN`` nodes: the specification's equation ``h_t = tanh(W x_t + R h_{t-1} + Wb + Rb)``
  (https://onnx.ai/onnx/operators/onnx__RNN.html) evaluated here in NumPy, 1e-12 absolute (a
  dozen float64 operations per entry);
* a 2-layer ``nn.LSTM`` whose upper layer is broken: layer 0's own chain in the PyTorch
  autograd reference ``tests/data/stacks/lstm2.json`` (made by
  ``tests/reference/make_stack_engine_reference.py``), 1e-8 in log10 (DESIGN.md's bar for an
  independent autodiff computation);
* a Keras 3 stack with a ``Dense`` layer between its LSTMs: the Keras outputs of the unchanged
  archive (``tests/data/formats/keras_lstm_stack_io.npz``, made by Keras at development time
  by ``tests/reference/make_keras_fixtures.py``) for its lower layer, 1e-10 absolute (the bar of
  tests/test_keras.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from gradflow.cli import cli
from gradflow.results import AnalysisResult, load_result

ROOT = Path(__file__).resolve().parents[1]
STACKS = Path(__file__).parent / "data" / "stacks"
FORMATS = Path(__file__).parent / "data" / "formats"


def _one_line_refusal(res: Any, out: Path, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def _analyze(tmp: Path, weights: Path, x: np.ndarray, *args: str) -> tuple[Any, Path]:
    np.save(tmp / "x.npy", x)
    out = tmp / "o.json"
    argv = ["analyze", "--weights", str(weights), "--inputs", str(tmp / "x.npy")]
    return CliRunner().invoke(cli, [*argv, "--output", str(out), *args]), out


def _printed_commands(path: Path) -> list[list[str]]:
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    lines = [ln.split("analyse: ", 1)[1] for ln in res.output.splitlines() if "analyse: " in ln]
    return [shlex.split(line)[1:] for line in lines]


def _run(argv: list[str], tmp: Path, x: np.ndarray) -> Any:
    np.save(tmp / "inputs.npy", x)
    subst = {"INPUTS.npy": str(tmp / "inputs.npy"), "result.json": str(tmp / "result.json")}
    res = CliRunner().invoke(cli, [subst.get(a, a) for a in argv])
    assert res.exit_code == 0, res.output
    return load_result(tmp / "result.json")


# ---- ONNX ----------------------------------------------------------------------------------


def _onnx_rnns(path: Path, *, attrs: dict[str, Any], chained: bool) -> dict[str, np.ndarray]:
    """Two ONNX ``RNN`` nodes (n = 2, d = 3): stacked through a Squeeze, or both reading X."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    n, d = 2, 3
    w = {
        "Wa": rng.normal(size=(1, n, d)),
        "Ra": rng.normal(size=(1, n, n)),
        "Ba": rng.normal(size=(1, 2 * n)),
        "Wb": rng.normal(size=(1, n, n if chained else d)),
        "Rb": rng.normal(size=(1, n, n)),
        "Bb": rng.normal(size=(1, 2 * n)),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"))
    nodes = [helper.make_node("RNN", ["X", "Wa", "Ra", "Ba"], ["Ya"], name="a", hidden_size=n)]
    below = "X"
    if chained:
        nodes.append(helper.make_node("Squeeze", ["Ya", "axis"], ["Xb"], name="squeeze"))
        below = "Xb"
    nodes.append(
        helper.make_node("RNN", [below, "Wb", "Rb", "Bb"], ["Yb"], name="b", hidden_size=n, **attrs)
    )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [5, 2, d])],
        [helper.make_tensor_value_info("Yb", TensorProto.DOUBLE, None)]
        + ([] if chained else [helper.make_tensor_value_info("Ya", TensorProto.DOUBLE, None)]),
        inits,
    )
    onnx.save(helper.make_model(graph), str(path))
    return w


def _onnx_rnn_final(W: np.ndarray, R: np.ndarray, B: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``h_T`` of the ONNX RNN specification's equation, zero initial state."""
    n = R.shape[1]
    h = np.zeros((x.shape[1], n))
    for t in range(x.shape[0]):
        h = np.tanh(x[t] @ W[0].T + h @ R[0].T + B[0, :n] + B[0, n:])
    return h


@pytest.mark.parametrize(
    ("attrs", "fragments"),
    [
        ({"foo": 1}, ("node 'b' (RNN): attribute foo=1 is not defined by the ONNX RNN", "export")),
        ({"clip": 2.0}, ("node 'b' (RNN): attribute clip=2.0", "export the operator without")),
        ({"activations": ["Sigmoid"]}, ("node 'b' (RNN): attribute activations=['Sigmoid']",)),
    ],
    ids=["unknown attribute", "clip", "activation"],
)
def test_onnx_attribute_refusals_from_the_cli(
    attrs: dict[str, Any], fragments: tuple[str, ...], tmp_path: Path
) -> None:
    path = tmp_path / "m.onnx"
    _onnx_rnns(path, attrs=attrs, chained=True)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    res, out = _analyze(tmp_path, path, x)
    _one_line_refusal(res, out, str(path), *fragments)
    res = CliRunner().invoke(cli, ["inspect", str(path)])  # inspect refuses alike
    _one_line_refusal(res, out, *fragments)


def test_onnx_mismatched_layers_name_the_node(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = tmp_path / "m.onnx"
    _onnx_rnns(path, attrs={}, chained=True)
    model = onnx.load(str(path))
    for k, init in enumerate(model.graph.initializer):  # layer b reads 4 inputs, a gives 2
        if init.name == "Wb":
            model.graph.initializer[k].CopyFrom(numpy_helper.from_array(np.ones((1, 2, 4)), "Wb"))
    onnx.save(model, str(path))
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    res, out = _analyze(tmp_path, path, x)
    _one_line_refusal(
        res, out, "node 'b': layer 1 has input size 4, but layer 0 outputs 2", "--layers 1"
    )


def test_two_onnx_candidates_are_refused_and_inspect_lists_both(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    w = _onnx_rnns(path, attrs={}, chained=False)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    res, out = _analyze(tmp_path, path, x)
    _one_line_refusal(res, out, "operators ('a', 'b') are not one direct stack", "--prefix NODE")
    commands = _printed_commands(path)
    assert [c[c.index("--prefix") + 1] for c in commands] == ["a", "b"]
    for argv, node in zip(commands, "ab", strict=True):
        got = _run(argv, tmp_path, x)
        assert isinstance(got, AnalysisResult)
        want = _onnx_rnn_final(w[f"W{node}"], w[f"R{node}"], w[f"B{node}"], x)
        np.testing.assert_allclose(got.final_hidden, want, rtol=0, atol=1e-12)


# ---- Keras ---------------------------------------------------------------------------------


def test_keras_layers_not_one_stack_are_listed_by_inspect(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    src = FORMATS / "keras_lstm_stack.keras"
    path = tmp_path / "mixed.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":  # a Dense layer between the two LSTMs
                cfg = json.loads(data)
                layers = cfg["config"]["layers"]
                dense = {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "config": {"name": "mix", "units": 4},
                    "name": "mix",
                }
                layers.insert(2, dense)
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    io = np.load(FORMATS / "keras_lstm_stack_io.npz")
    x = io["inputs"].transpose(1, 0, 2)  # Keras is batch first
    res, out = _analyze(tmp_path, path, x)
    _one_line_refusal(res, out, "layer 'mix' (Dense) sits between recurrent layers", "--prefix")
    commands = _printed_commands(path)
    prefixes = [c[c.index("--prefix") + 1] for c in commands]
    assert len(prefixes) == 2 and prefixes[0] == "enc1"
    got = _run(commands[0], tmp_path, x)
    assert isinstance(got, AnalysisResult) and (got.input_size, got.hidden_size) == (3, 4)
    np.testing.assert_allclose(got.final_hidden, _keras_lstm_final(src, x), rtol=0, atol=1e-10)


def test_keras_generic_rnn_wrappers_are_named(tmp_path: Path) -> None:
    """``keras.layers.RNN(LSTMCell(...))`` is not read; the refusal names the layers."""
    pytest.importorskip("h5py")
    src = FORMATS / "keras_lstm_stack.keras"
    path = tmp_path / "wrapped.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                cfg = json.loads(data)
                for layer in cfg["config"]["layers"]:
                    if layer["class_name"] == "LSTM":
                        layer["class_name"] = "RNN"
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    x = np.load(FORMATS / "keras_lstm_stack_io.npz")["inputs"].transpose(1, 0, 2)
    res, out = _analyze(tmp_path, path, x)
    _one_line_refusal(
        res,
        out,
        "no LSTM, GRU, SimpleRNN or Bidirectional layer; 'enc1' (RNN), 'enc2' (RNN) are not read",
        "rebuild it as keras.layers.LSTM, GRU or SimpleRNN with the same weights",
    )


def _keras_lstm_final(archive: Path, x: np.ndarray) -> np.ndarray:
    """``h_T`` of the archive's first LSTM by Keras 3's equations (kernel ``(d, 4n)`` and
    recurrent kernel ``(n, 4n)`` in gate order i, f, c, o; one bias; sigmoid and tanh)."""
    import io

    import h5py

    with zipfile.ZipFile(archive) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
        kernel, recurrent, bias = (h5[f"layers/lstm/cell/vars/{k}"][()] for k in "012")
    n = recurrent.shape[0]
    h = np.zeros((x.shape[1], n))
    c = np.zeros_like(h)
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    for t in range(x.shape[0]):
        i, f, g, o = np.split(x[t] @ kernel + h @ recurrent + bias, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return h


# ---- PyTorch -------------------------------------------------------------------------------


def test_mismatched_pytorch_layers_inspect_tells_the_file_sizes(tmp_path: Path) -> None:
    """``inspect`` reads each layer's input size from the file (it used to print the size the
    layer below outputs, and a command that failed); its command analyses the layers that
    stack, and gives layer 0's chain of the autograd reference."""
    tensors = load_file(str(STACKS / "lstm2.safetensors"))
    tensors["weight_ih_l1"] = np.zeros((20, 4))
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert "layer 1: lstm forward, n=5, d=4" in res.output
    assert "weight_ih_l1: layer 1 reads 4 inputs, but layer 0 outputs 5" in res.output
    (argv,) = _printed_commands(path)
    assert argv[argv.index("--layers") + 1] == "1"
    x = np.load(STACKS / "lstm2_inputs.npy")
    got = _run(argv, tmp_path, x)
    assert isinstance(got, AnalysisResult)
    ref = json.loads((STACKS / "lstm2.json").read_text())
    want = np.array(ref["layer_spectral"], dtype=float)[0]  # (T + 1, B), layer 0's own chain
    np.testing.assert_allclose(got.log10_spectral_norm, want, rtol=0, atol=1e-8)
    res, out = _analyze(tmp_path, path, x)  # the whole file: refused, naming the tensor
    _one_line_refusal(res, out, "weight_ih_l1: layer 1 has input size 4", "--layers 1")


def test_two_modules_without_prefix_through_a_real_process(tmp_path: Path) -> None:
    """The installed entry point (not click's test runner): exit code 2, one line on stderr,
    nothing on stdout, no traceback, no output file."""
    tensors = load_file(str(STACKS / "gru2.safetensors"))
    two = {f"enc.{k}": v for k, v in tensors.items()} | {f"dec.{k}": v for k, v in tensors.items()}
    save_file(two, str(tmp_path / "two.safetensors"))
    np.save(tmp_path / "x.npy", np.load(STACKS / "gru2_inputs.npy"))
    out = tmp_path / "o.json"
    argv = ["analyze", "--weights", str(tmp_path / "two.safetensors")]
    argv += ["--inputs", str(tmp_path / "x.npy"), "--output", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", "from gradflow.cli import main; main()", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert (
        "holds 2 recurrent modules (prefixes 'dec.', 'enc.'); choose one with --prefix"
        in (lines[0])
    )
    assert not out.exists()

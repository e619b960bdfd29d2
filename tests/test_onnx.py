"""ONNX operators: each maps to the catalogue cell that computes the same function.

Reference: ``tests/data/formats/onnx_*`` were written by ``tests/reference/make_onnx_fixtures.py``
from known weights (multiples of 1/64, exact in float32 and float64). ``ref64`` is the ONNX
reference evaluator in float64 (checked there against ONNX Runtime to 2e-6); gradflow's rollout
of the loaded model must match it to 1e-10 absolute. ``lstm_cifg`` and ``rnn_relu`` have only
ONNX Runtime's float32 outputs (the reference evaluator lacks ``input_forget`` and ``Relu``):
matched to 1e-6 absolute (float32 rounding over 6 steps is ~2e-7; a wrong gate coupling is off
by ~1e-1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gradflow.errors import WeightsError
from gradflow.formats import describe_weights, load_model

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from test_formats import model_outputs  # noqa: E402

DATA = Path(__file__).parent / "data" / "formats"

CASES = {
    # name: (cells per layer, directions per layer, bias)
    "lstm": (["lstm"], [1], True),
    "lstm_nobias": (["lstm"], [1], False),
    "lstm_peephole": (["lstm-peephole"], [1], True),
    "lstm_cifg": (["lstm-cifg"], [1], True),
    "lstm_bi": (["lstm"], [2], True),
    "gru_lbr1": (["gru"], [1], True),
    "gru_lbr0": (["gru-reset-before"], [1], True),
    "rnn_reverse": (["rnn"], [1], True),
    "rnn_relu": (["rnn-relu"], [1], True),
    "stack": (["lstm", "gru", "rnn"], [1, 1, 1], True),
    "bi_stack": (["gru-reset-before", "lstm"], [2, 1], True),  # linear_before_reset=0
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_operator_computes_what_the_reference_computed(name: str) -> None:
    cells, dirs, bias = CASES[name]
    model = load_model(DATA / f"onnx_{name}.onnx")
    assert [layer.cell for layer in model.layers] == cells
    assert [len(layer.directions) for layer in model.layers] == dirs
    assert model.layers[0].bias == bias and model.format == "onnx"
    io = np.load(DATA / f"onnx_{name}_io.npz")
    got = model_outputs(model, io["inputs"])
    key, tol = ("ref64", 1e-10) if "ref64" in io.files else ("ort", 1e-6)  # see module doc
    y = io[key]  # (T, dirs, B, n) -> (T, B, dirs * n)
    want = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def test_reverse_only_operator_runs_in_reversed_time() -> None:
    model = load_model(DATA / "onnx_rnn_reverse.onnx")
    assert [d.reverse for d in model.layers[0].directions] == [True]


def test_prefix_picks_one_operator() -> None:
    model = load_model(DATA / "onnx_stack.onnx", prefix="mid")
    assert [layer.cell for layer in model.layers] == ["gru"]
    assert model.unrelated == ("enc", "top")
    with pytest.raises(WeightsError, match="no LSTM/GRU/RNN node named 'nope'"):
        load_model(DATA / "onnx_stack.onnx", prefix="nope")


def _model(tmp_path: Path, op: str = "LSTM", extra_inputs: tuple = (), **attrs: object) -> Path:
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    n, d = 2, 3
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(1, g * n, d)), "W"),
        numpy_helper.from_array(rng.normal(size=(1, g * n, n)), "R"),
        numpy_helper.from_array(rng.normal(size=(1, 2 * g * n)), "B"),
    ]
    names = ["X", "W", "R", "B", *extra_inputs]
    if "P" in extra_inputs:
        inits.append(numpy_helper.from_array(np.ones((1, 3 * n)), "P"))
    node = helper.make_node(op, names, ["Y"], name="rnn", hidden_size=n, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [4, 1, d])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [4, 1, 1, n])],
        inits,
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.mark.parametrize(
    ("op", "extra", "attrs", "expected"),
    [
        (
            "LSTM",
            (),
            {"clip": 3.0},
            "node 'rnn' (LSTM): attribute clip=3.0 clips the pre-activations; no catalogue cell "
            "computes that: export the operator without clip",
        ),
        (
            "GRU",
            (),
            {"activations": ["HardSigmoid", "Tanh"]},
            "attribute activations=['HardSigmoid', 'Tanh']; only ['Sigmoid', 'Tanh'] have a "
            "catalogue cell: export the operator with those activations",
        ),
        (
            "LSTM",
            ("", "", "", "P"),
            {"input_forget": 1},
            "input_forget=1 with peepholes P has no catalogue cell (lstm-cifg has no peepholes): "
            "export it without P or without input_forget",
        ),
        ("RNN", (), {"hidden_size": 5}, "hidden_size=5 but R has 2 columns"),
        ("RNN", (), {"direction": "sideways"}, "unknown direction 'sideways'; ONNX defines"),
    ],
)
def test_unsupported_attributes_are_refused(
    op: str, extra: tuple, attrs: dict, expected: str, tmp_path: Path
) -> None:
    path = _model(tmp_path, op, extra, **{k: v for k, v in attrs.items() if k != "hidden_size"})
    if "hidden_size" in attrs:  # rewrite the attribute the helper set
        m = onnx.load(path)
        for a in m.graph.node[0].attribute:
            if a.name == "hidden_size":
                a.i = attrs["hidden_size"]
        onnx.save(m, path)
    with pytest.raises(WeightsError) as info:
        load_model(path)
    assert "\n" not in str(info.value) and expected in str(info.value)


def test_weights_from_a_graph_input_are_refused(tmp_path: Path) -> None:
    path = _model(tmp_path, "RNN")
    m = onnx.load(path)
    del m.graph.initializer[0]  # W becomes an unknown (runtime) tensor
    onnx.save(m, path)
    with pytest.raises(WeightsError, match="input W \\('W'\\) is not a constant initializer"):
        load_model(path)


def test_operators_that_do_not_stack_need_a_prefix(tmp_path: Path) -> None:
    m = onnx.load(DATA / "onnx_stack.onnx")
    m.graph.node[2].input[0] = "X"  # the GRU now reads the graph input, not the LSTM
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(WeightsError, match="node 'mid' does not read the Y output.*--prefix NODE"):
        load_model(tmp_path / "m.onnx")


def test_corrupt_onnx(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(WeightsError, match="m.onnx"):
        load_model(tmp_path / "m.onnx")


def test_describe_onnx() -> None:
    desc = describe_weights(DATA / "onnx_bi_stack.onnx")
    text = str(desc)
    assert "layer 0 (bi): gru-reset-before forward+reverse, n=3, d=3" in text
    assert "layer 1 (top): lstm forward, n=2, d=6" in text
    assert "--cell" not in desc.modules[0].command  # two cells: the file says which
    assert "--layers all --direction both" in desc.modules[0].command


def test_no_runtime_is_imported() -> None:
    load_model(DATA / "onnx_stack.onnx")
    assert "onnxruntime" not in sys.modules


def test_zero_peepholes_are_plain_lstm_and_input_forget_maps_to_cifg(tmp_path: Path) -> None:
    path = _model(tmp_path, "LSTM", ("", "", "", "P"))
    m = onnx.load(path)
    for t in m.graph.initializer:
        if t.name == "P":
            t.CopyFrom(numpy_helper.from_array(np.zeros((1, 6)), "P"))
    onnx.save(m, path)
    assert load_model(path).layers[0].cell == "lstm"  # P = 0 computes the plain LSTM
    path = _model(tmp_path, "LSTM", (), input_forget=1)
    model = load_model(path)
    p = model.layers[0].directions[0].params
    raw = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    # f' = sigmoid(-a_i) = 1 - sigmoid(a_i): the input gate's weights with the sign flipped
    assert model.layers[0].cell == "lstm-cifg"
    np.testing.assert_array_equal(p["W_xf"], -raw["W"][0][:2])
    np.testing.assert_array_equal(p["b_f"], -(raw["B"][0][:2] + raw["B"][0][8:10]))

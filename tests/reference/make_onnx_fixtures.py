"""Make the ONNX fixtures of ``tests/test_onnx.py`` (tests/data/formats/onnx_*).

Development time only (the runtime is not a gradflow dependency)::

    pip install onnx onnxruntime
    python tests/reference/make_onnx_fixtures.py

Each model is built with ``onnx.helper`` from known weights: multiples of 1/64 in [-0.75, 0.75]
(exact in float32 and float64), inputs multiples of 1/64 too, ``T = 6``, ``B = 2``, ``d = 3``.
The ``.onnx`` files are float32 graphs (ONNX Runtime implements ``LSTM``/``GRU``/``RNN`` for
float32 only). Stored outputs ``Y`` of the last operator, shape ``(T, dirs, B, n)``:

* ``ort``: ONNX Runtime 1.32 (CPU, float32);
* ``ref64``: ``onnx.reference.ReferenceEvaluator`` (the spec's NumPy implementation) on the
  same graph with float64 tensors: the float64 reference the tests compare to 1e-10. The script
  asserts that ``ref64`` and ``ort`` agree to 2e-6 (float32 rounding), which ties the float64
  reference to the runtime. The reference evaluator ignores ``input_forget`` and has no
  ``Relu`` for ``RNN``, so for ``lstm_cifg`` and ``rnn_relu`` only ``ort`` is stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "formats"
T, B, D = 6, 2, 3
INTS = ("axes", "shape")  # integer constants of the shape nodes
#: The reference evaluator ignores input_forget and lacks the RNN's Relu: ORT outputs only.
ORT_ONLY = ("lstm_cifg", "rnn_relu")


def main() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(77)

    def known(*shape: int) -> np.ndarray:
        return rng.integers(-48, 49, size=shape) / 64.0

    def rnn_node(
        op: str, x: str, y: str, n: int, d: int, dirs: int, name: str, inits: list, **attrs: object
    ) -> onnx.NodeProto:
        g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
        names = [x]
        for slot, shape in (("W", (dirs, g * n, d)), ("R", (dirs, g * n, n))):
            inits.append((f"{name}_{slot}", known(*shape)))
            names.append(f"{name}_{slot}")
        if attrs.pop("bias", True):
            inits.append((f"{name}_B", known(dirs, 2 * g * n)))
            names.append(f"{name}_B")
        else:
            names.append("")
        if attrs.pop("peepholes", False):
            names += ["", "", "", f"{name}_P"]
            inits.append((f"{name}_P", known(dirs, 3 * n)))
        return helper.make_node(op, names, [y], name=name, hidden_size=n, **attrs)

    def build(nodes: list, inits: list, out: str, dtype: type) -> onnx.ModelProto:
        tp = TensorProto.FLOAT if dtype is np.float32 else TensorProto.DOUBLE
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("X", tp, [T, B, D])],
            [helper.make_tensor_value_info(out, tp, [T, None, B, None])],
            [
                numpy_helper.from_array(v.astype(np.int64 if k in INTS else dtype), k)
                for k, v in inits
            ],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    def single(op: str, n: int, dirs: int = 1, **attrs: object):  # type: ignore[no-untyped-def]
        def make(inits: list) -> tuple[list, str]:
            return [rnn_node(op, "X", "Y", n, D, dirs, op.lower(), inits, **attrs)], "Y"

        return make

    def stack(inits: list) -> tuple[list, str]:
        axes = "axes"
        inits.append((axes, np.array([1])))
        nodes = [
            rnn_node("LSTM", "X", "Y1", 4, D, 1, "enc", inits),
            helper.make_node("Squeeze", ["Y1", axes], ["X2"]),
            rnn_node("GRU", "X2", "Y2", 3, 4, 1, "mid", inits, linear_before_reset=1),
            helper.make_node("Squeeze", ["Y2", axes], ["X3"]),
            rnn_node("RNN", "X3", "Y", 2, 3, 1, "top", inits),
        ]
        return nodes, "Y"

    def bi_stack(inits: list) -> tuple[list, str]:
        shape = "shape"
        inits.append((shape, np.array([0, 0, -1])))
        nodes = [
            rnn_node("GRU", "X", "Y1", 3, D, 2, "bi", inits, direction="bidirectional"),
            helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["Y1t", shape], ["X2"]),
            rnn_node("LSTM", "X2", "Y", 2, 6, 1, "top", inits),
        ]
        return nodes, "Y"

    cases = {
        "lstm": single("LSTM", 4),
        "lstm_nobias": single("LSTM", 4, bias=False),
        "lstm_peephole": single("LSTM", 4, peepholes=True),
        "lstm_cifg": single("LSTM", 4, input_forget=1),
        "lstm_bi": single("LSTM", 3, dirs=2, direction="bidirectional"),
        "gru_lbr1": single("GRU", 4, linear_before_reset=1),
        "gru_lbr0": single("GRU", 4),
        "rnn_reverse": single("RNN", 4, direction="reverse"),
        "rnn_relu": single("RNN", 4, activations=["Relu"]),
        "stack": stack,
        "bi_stack": bi_stack,
    }
    for name, make in cases.items():
        inits: list = []
        nodes, out = make(inits)
        x = rng.integers(-64, 65, size=(T, B, D)) / 64.0
        m32 = build(nodes, inits, out, np.float32)
        onnx.checker.check_model(m32)
        sess = ort.InferenceSession(m32.SerializeToString(), providers=["CPUExecutionProvider"])
        y_ort = sess.run(None, {"X": x.astype(np.float32)})[0].astype(np.float64)
        data = {"inputs": x, "ort": y_ort}
        if name not in ORT_ONLY:
            m64 = build(nodes, inits, out, np.float64)
            y64 = ReferenceEvaluator(m64).run(None, {"X": x})[0]
            gap = float(np.abs(y64 - y_ort).max())
            assert gap < 2e-6, (name, gap)
            data["ref64"] = y64
            print(f"{name}: ORT float32 vs reference float64 max gap {gap:.1e}")
        onnx.save(m32, OUT / f"onnx_{name}.onnx")
        np.savez(OUT / f"onnx_{name}_io.npz", **data)


if __name__ == "__main__":
    main()

r"""ONNX ``LSTM``/``GRU``/``RNN`` operators as catalogue cells (``onnx`` extra; nothing is run).

The ``onnx`` package only parses the protobuf; weights come from initializers or ``Constant``
nodes (external data is refused: it would read other files). Each operator maps to the
catalogue cell that computes the same function (ONNX operator specification, opset 14+):

* ``LSTM``: ``W (dirs, 4n, d)``, ``R (dirs, 4n, n)`` in gate order ``i, o, f, c``,
  ``B (dirs, 8n) = [Wb; Rb]``. Without peepholes: ``lstm`` (PyTorch's ``i, f, g, o``, both
  biases kept). With peepholes ``P (dirs, 3n) = [p_i, p_o, p_f]`` (not all zero):
  ``lstm-peephole`` (``i, f`` see ``c_{t-1}``, ``o`` sees ``c_t``, as the spec's equations).
  ``input_forget=1`` couples the gates as ``f = 1 - i`` (ONNX Runtime's reading): that is
  ``lstm-cifg`` with ``f' = sigmoid(-a_i)`` (``W_xf = -W_i``, ``W_hf = -R_i``,
  ``b_f = -(Wb_i + Rb_i)``), refused together with peepholes.
* ``GRU``: gate order ``z, r, h``. ``linear_before_reset=1``: ``gru`` (PyTorch's);
  ``linear_before_reset=0`` (the default): ``gru-reset-before`` with ``b_n = Wb_h + Rb_h``.
* ``RNN``: ``Tanh`` -> ``rnn``, ``Relu`` -> ``rnn-relu``.
* ``direction``: ``forward``, ``reverse`` (a reverse-only layer) or ``bidirectional``.
* Several operators form a stack when each one's ``X`` is the previous one's ``Y`` through
  shape-only nodes (``Squeeze``, ``Transpose``, ``Reshape`` ...); otherwise pick one with
  ``prefix`` (the node's name).

Refused, one line naming the node and attribute: ``clip`` (no catalogue cell clips),
activations other than the defaults, ``input_forget`` with peepholes, weights that are not
constants, and any attribute the operator's specification does not define (its meaning is
unknown). ``activation_alpha``/``activation_beta`` are accepted: the activations that have a
catalogue cell (``Sigmoid``, ``Tanh``, ``Relu``) take no parameter; ``layout`` only orders
``X``/``Y``, not the weights.

References:
    [onnx-ops] ONNX operator specification, ``LSTM``, ``GRU`` and ``RNN``
    (https://onnx.ai/onnx/operators/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightsError
from ..tensorfile import MAX_TENSOR_BYTES
from .model import Direction, Layer, Model, NotOneStack, make_params

OPS = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "RNN": ["Tanh"],
}
#: The attributes each operator's specification defines (opset 22); any other is refused.
COMMON_ATTRIBUTES = (
    "activation_alpha",
    "activation_beta",
    "activations",
    "clip",
    "direction",
    "hidden_size",
    "layout",
)
ATTRIBUTES = {
    "LSTM": (*COMMON_ATTRIBUTES, "input_forget"),
    "GRU": (*COMMON_ATTRIBUTES, "linear_before_reset"),
    "RNN": COMMON_ATTRIBUTES,
}
#: Nodes that only reshape a tensor: an operator's Y may reach the next one's X through them.
SHAPE_ONLY = (
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Reshape",
    "Identity",
    "Flatten",
    "Dropout",
    "Cast",
)


def _onnx(path: Path) -> Any:
    try:
        import onnx
    except ImportError:
        raise WeightsError(
            f"{path}: reading ONNX files needs the onnx package: pip install 'gradflow[onnx]'"
        ) from None
    return onnx


def _constants(graph: Any, onnx: Any, path: Path) -> dict[str, Any]:
    """Name -> TensorProto of every initializer and Constant node output."""
    out = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    out[node.output[0]] = attr.t
    return out


def _array(tensor: Any, onnx: Any, where: str) -> np.ndarray:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise WeightsError(
            f"{where}: stored as external data, which is not read; "
            "save the model with its weights inside (onnx.save(model))"
        )
    nbytes = int(np.prod(list(tensor.dims), dtype=np.float64)) * 8
    if nbytes > MAX_TENSOR_BYTES:
        raise WeightsError(f"{where}: above the size limit for one tensor; it is not read")
    from onnx import numpy_helper

    arr = numpy_helper.to_array(tensor)
    if arr.dtype.kind != "f":
        raise WeightsError(f"{where}: has dtype {arr.dtype}; weights must be floating point")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise WeightsError(f"{where}: has non-finite values")
    return arr


def _attrs(node: Any, onnx: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _node_name(node: Any, k: int) -> str:
    return node.name or f"{node.op_type}#{k}"


def _convert(
    op: str,
    attrs: dict[str, Any],
    W: np.ndarray,
    R: np.ndarray,
    B: np.ndarray,
    P: np.ndarray | None,
    where: str,
) -> tuple[str, dict[str, np.ndarray]]:
    """One direction's ONNX tensors -> (catalogue cell, canonical parameters)."""
    params: dict[str, np.ndarray] = {}
    blocks_w, blocks_r = np.split(W, OPS[op]), np.split(R, OPS[op])
    wb, rb = np.split(B, 2)
    blocks_wb, blocks_rb = np.split(wb, OPS[op]), np.split(rb, OPS[op])
    if op == "RNN":
        act = attrs.get("activations", ["Tanh"])[0]
        cell = {"Tanh": "rnn", "Relu": "rnn-relu"}[act]
        return cell, {"W_ih": W, "W_hh": R, "b_ih": wb, "b_hh": rb}
    if op == "GRU":
        w, r, bw, br = (
            dict(zip("zrh", x, strict=True)) for x in (blocks_w, blocks_r, blocks_wb, blocks_rb)
        )
        if int(attrs.get("linear_before_reset", 0)):
            for gate, key in (("z", "z"), ("r", "r"), ("n", "h")):
                params |= {
                    f"W_i{gate}": w[key],
                    f"W_h{gate}": r[key],
                    f"b_i{gate}": bw[key],
                    f"b_h{gate}": br[key],
                }
            return "gru", params
        for gate, key in (("z", "z"), ("r", "r"), ("n", "h")):
            params |= {f"W_x{gate}": w[key], f"W_h{gate}": r[key], f"b_{gate}": bw[key] + br[key]}
        return "gru-reset-before", params
    w, r, bw, br = (
        dict(zip("iofc", x, strict=True)) for x in (blocks_w, blocks_r, blocks_wb, blocks_rb)
    )
    peep = P is not None and bool(np.any(P != 0))
    if int(attrs.get("input_forget", 0)):
        if peep:
            raise WeightsError(
                f"{where}: input_forget=1 with peepholes P has no catalogue cell "
                "(lstm-cifg has no peepholes): export it without P or without input_forget"
            )
        params = {"W_xf": -w["i"], "W_hf": -r["i"], "b_f": -(bw["i"] + br["i"])}
        for gate, key in (("g", "c"), ("o", "o")):
            params |= {f"W_x{gate}": w[key], f"W_h{gate}": r[key], f"b_{gate}": bw[key] + br[key]}
        return "lstm-cifg", params
    if peep:
        assert P is not None
        p_i, p_o, p_f = np.split(P, 3)
        params = {"p_i": p_i, "p_f": p_f, "p_o": p_o}
        for gate, key in (("i", "i"), ("f", "f"), ("g", "c"), ("o", "o")):
            params |= {f"W_x{gate}": w[key], f"W_h{gate}": r[key], f"b_{gate}": bw[key] + br[key]}
        return "lstm-peephole", params
    for gate, key in (("i", "i"), ("f", "f"), ("g", "c"), ("o", "o")):
        params |= {
            f"W_i{gate}": w[key],
            f"W_h{gate}": r[key],
            f"b_i{gate}": bw[key],
            f"b_h{gate}": br[key],
        }
    return "lstm", params


def _layer(
    node: Any, k: int, consts: dict[str, Any], onnx: Any, path: Path, notes: list[str]
) -> Layer:
    op = node.op_type
    name = _node_name(node, k)
    where = f"{path}: node {name!r} ({op})"
    attrs = {key: _decode(v) for key, v in _attrs(node, onnx).items()}
    unknown = sorted(set(attrs) - set(ATTRIBUTES[op]))
    if unknown:
        shown = " ".join(repr(attrs[unknown[0]]).split())
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise WeightsError(
            f"{where}: attribute {unknown[0]}={shown} is not defined by the ONNX "
            f"{op} operator (it defines {', '.join(ATTRIBUTES[op])}), so what the node computes "
            "is unknown: export the operator without it"
        )
    if "clip" in attrs:
        raise WeightsError(
            f"{where}: attribute clip={attrs['clip']} clips the pre-activations; "
            "no catalogue cell computes that: export the operator without clip"
        )
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise WeightsError(
            f"{where}: unknown direction {direction!r}; ONNX defines forward, reverse and "
            "bidirectional"
        )
    dirs = 2 if direction == "bidirectional" else 1
    acts = attrs.get("activations")
    if acts is not None:
        per = len(DEFAULT_ACTIVATIONS[op])
        allowed = [DEFAULT_ACTIVATIONS[op]] + ([["Relu"]] if op == "RNN" else [])
        chunks = [acts[j * per : (j + 1) * per] for j in range(dirs)]
        if len(acts) != per * dirs or any(c not in allowed for c in chunks):
            raise WeightsError(
                f"{where}: attribute activations={acts}; only {DEFAULT_ACTIVATIONS[op]}"
                + (" or ['Relu']" if op == "RNN" else "")
                + " have a catalogue cell: export the operator with those activations"
            )
    inputs = list(node.input) + [""] * 8
    tensors: dict[str, np.ndarray | None] = {}
    for slot, idx in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
        if slot == "P" and op != "LSTM":
            continue
        ref = inputs[idx]
        if not ref:
            tensors[slot] = None
            continue
        if ref not in consts:
            raise WeightsError(
                f"{where}: input {slot} ({ref!r}) is not a constant initializer; "
                "gradflow reads weights stored in the file only"
            )
        tensors[slot] = _array(consts[ref], onnx, f"{where}: {slot} ({ref!r})")
    if inputs[5] or (op == "LSTM" and inputs[6]):
        notes.append(f"node {name!r}: initial_h/initial_c given; gradflow starts from zero states")
    W, R = tensors["W"], tensors["R"]
    if W is None or R is None or W.ndim != 3 or R.ndim != 3:
        raise WeightsError(f"{where}: W and R must be given as (directions, G*n, ...) tensors")
    G = OPS[op]
    n = R.shape[2]
    d = W.shape[2]
    if R.shape != (dirs, G * n, n) or W.shape != (dirs, G * n, d):
        raise WeightsError(
            f"{where}: W {W.shape} and R {R.shape} do not fit {dirs} direction(s) "
            f"of {op} with hidden size {n}"
        )
    if "hidden_size" in attrs and int(attrs["hidden_size"]) != n:
        raise WeightsError(f"{where}: hidden_size={attrs['hidden_size']} but R has {n} columns")
    B = tensors["B"]
    bias = B is not None
    if B is None:
        B = np.zeros((dirs, 2 * G * n))
    if B.shape != (dirs, 2 * G * n):
        raise WeightsError(f"{where}: B has shape {B.shape}; expected ({dirs}, {2 * G * n})")
    P = tensors.get("P")
    if P is not None and P.shape != (dirs, 3 * n):
        raise WeightsError(f"{where}: P has shape {P.shape}; expected ({dirs}, {3 * n})")
    directions = []
    cells = []
    for j in range(dirs):
        rev = direction == "reverse" or j == 1
        cell, params = _convert(op, attrs, W[j], R[j], B[j], None if P is None else P[j], where)
        cells.append(cell)
        directions.append((rev, make_params(cell, params, d, n, str(path))))
    if len(set(cells)) > 1:  # e.g. peepholes in one direction only
        raise WeightsError(
            f"{where}: the two directions map to different cells {cells}; export both "
            "directions with the same attributes and peepholes"
        )
    srcs = {key: f"node {name!r}" for key in directions[0][1]}
    dirs_out = tuple(Direction(rev, p, sources=srcs) for rev, p in directions)
    return Layer(cells[0], n, d, dirs_out, bias=bias, name=name)


def _producer(graph: Any) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output}


def _comes_from(graph: Any, x: str, y: str) -> bool:
    """Whether tensor ``x`` is tensor ``y`` reshaped by shape-only nodes."""
    producers = _producer(graph)
    seen = 0
    while x != y and seen < 64:
        node = producers.get(x)
        if node is None or node.op_type not in SHAPE_ONLY:
            return False
        x = node.input[0]
        seen += 1
    return x == y


def load_onnx(path: Path, *, prefix: str | None = None) -> Model:
    """Read the ``LSTM``/``GRU``/``RNN`` operators of an ONNX model into a Model.

    Args:
        path: an ``.onnx`` file with its weights inside.
        prefix: one operator's node name (otherwise every operator, which must form a
            direct stack).

    Raises:
        WeightsError: one line naming the file, the node and the attribute.
    """
    onnx = _onnx(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError types
        raise WeightsError(f"{path}: truncated or corrupt ONNX file ({str(exc)[:120]})") from None
    graph = model.graph
    consts = _constants(graph, onnx, path)
    ops = [(k, node) for k, node in enumerate(graph.node) if node.op_type in OPS]
    if not ops:
        raise WeightsError(f"{path}: no LSTM, GRU or RNN operator")
    names = [_node_name(node, k) for k, node in ops]
    if prefix is not None:
        ops = [(k, node) for k, node in ops if _node_name(node, k) == prefix]
        if not ops:
            raise WeightsError(
                f"{path}: no LSTM/GRU/RNN node named {prefix!r} (nodes: "
                + ", ".join(repr(n) for n in names)
                + ")"
            )
    else:
        for (_, below), (k, node) in zip(ops, ops[1:], strict=False):
            if not _comes_from(graph, node.input[0], below.output[0]):
                raise NotOneStack(
                    f"{path}: node {_node_name(node, k)!r} does not read the Y output of the "
                    f"node below it; the operators ({', '.join(repr(n) for n in names)}) are "
                    "not one direct stack: choose one with --prefix NODE",
                    tuple(names),
                )
    notes: list[str] = []
    layers = tuple(_layer(node, k, consts, onnx, path, notes) for k, node in ops)
    chosen = {_node_name(node, k) for k, node in ops}
    unrelated = tuple(sorted(set(names) - chosen))
    try:
        return Model(layers, "onnx", str(path), prefix or "", unrelated, tuple(notes))
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None

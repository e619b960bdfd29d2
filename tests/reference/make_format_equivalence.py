"""PyTorch autograd references for the Keras and ONNX fixtures (tests/data/formats/equiv_*.json).

Development time only (torch and Keras are not gradflow dependencies)::

    pip install torch keras h5py onnx
    KERAS_BACKEND=torch PYTHONPATH=. python tests/reference/make_format_equivalence.py

For every Keras and ONNX fixture of ``make_keras_fixtures.py`` / ``make_onnx_fixtures.py`` whose
cells PyTorch has (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``), the file's weights are read with Keras
(``keras.saving.load_model(...).get_weights()``) or with ``onnx.numpy_helper`` -- never with
gradflow -- and converted into the EQUIVALENT PyTorch model, one ``nn.LSTM/GRU/RNN`` per depth
(float64):

* Keras: kernels transposed (``x @ kernel`` -> ``W x``); LSTM gates i, f, c, o = PyTorch i, f,
  g, o; GRU (``reset_after=True``) gates z, r, h -> PyTorch r, z, n, bias ``(2, 3n)`` = (input,
  recurrent); the single LSTM/SimpleRNN bias is ``bias_ih`` (``bias_hh = 0``); ``use_bias=False``
  is ``bias=False``; ``Bidirectional`` is ``bidirectional=True`` (forward, then backward).
* ONNX: LSTM gates i, o, f, c -> i, f, g, o; GRU gates z, r, h -> r, z, n
  (``linear_before_reset=1`` is PyTorch's GRU); ``B`` = ``[Wb; Rb]``; a ``direction="reverse"``
  operator is the module run on the time-reversed sequence (PyTorch has no reverse-only module).

The script asserts that each PyTorch model reproduces the outputs the fixture stores (Keras'
``model.predict`` to 1e-12; the ONNX float64 reference evaluator to 1e-12, or ONNX Runtime's
float32 outputs to 2e-6 where only those exist), which ties the conversion to the other
framework. Then, per sequence, with torch autograd on ``nn.*Cell`` twins of each layer
(``torch.func.functional_call``), and nothing from gradflow:

* every layer's and direction's own chain ``ds_T/ds_{T-k}`` in its own time (a reverse
  direction reads its input reversed), driven by its true inputs: log10 spectral and Frobenius
  norms per lag ``k = 0..T`` (``s = [h; c]`` for an LSTM);
* for a unidirectional stack, the joint product ``dS_T/dS_{T-k}`` (``S = [s^1; ...; s^L]``) and
  the top row's blocks ``ds^L_T/ds^l_{T-k}``: log10 spectral and Frobenius norms;
* for ``L = sum y_T`` and ``L = sum_t sum y_t`` (``y_t`` the top layer's output, both
  directions): ``||dL/dx_t||`` (row ``k`` is ``x_{T-k}``) and the total derivatives
  ``||dL/ds_t||`` of every layer's and direction's state at positions ``T..1``;
* the parameter gradient ``dL/dθ`` of ``L = sum y_T``, per sequence, split into gradflow's
  parameter names (``l0.W_ii``, ``l0_reverse.b_hn``, ...).

Cells that PyTorch does not have (Keras ``GRU(reset_after=False)``, ONNX peepholes,
``input_forget``, ``linear_before_reset=0``) have no equivalent PyTorch model and no reference
here. Norms are log10, lag (and layer) first, batch last; ``-inf`` is stored as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "formats"
KERAS = ["lstm_stack", "gru_after", "simple_relu", "lstm_nobias", "bi_gru_rnn"]
ONNX = ["lstm", "lstm_nobias", "lstm_bi", "gru_lbr1", "rnn_reverse", "rnn_relu", "stack"]
GATES = {"lstm": "ifgo", "gru": "rzn"}


@dataclass
class Direction:
    """One layer direction in PyTorch layout (``bias_*`` zeros where the file has none)."""

    name: str  # l0, l0_reverse, ...
    kind: str  # lstm, gru, rnn, rnn-relu
    reverse: bool
    params: dict[str, np.ndarray]  # weight_ih, weight_hh, bias_ih, bias_hh
    bias: bool

    @property
    def n(self) -> int:
        return int(self.params["weight_hh"].shape[1])

    @property
    def m(self) -> int:
        return 2 * self.n if self.kind == "lstm" else self.n


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def _blocks(a: np.ndarray, order: list[int], g: int) -> np.ndarray:
    return np.concatenate([np.split(a, g, axis=0)[i] for i in order], axis=0)


# ---- reading the files (Keras, ONNX), converting to PyTorch layout -------------------------


def keras_model(name: str) -> tuple[list[list[Direction]], np.ndarray, np.ndarray]:
    import keras

    keras.config.set_floatx("float64")
    model = keras.saving.load_model(DATA / f"keras_{name}.keras")
    depths = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "Bidirectional":
            w = layer.get_weights()
            half = len(w) // 2
            inner = layer.forward_layer
            pair = [(inner, w[:half], False), (layer.backward_layer, w[half:], True)]
        elif cls in ("LSTM", "GRU", "SimpleRNN"):
            pair = [(layer, layer.get_weights(), False)]
        else:
            continue
        k = len(depths)
        dirs = []
        for lay, w, rev in pair:
            kind = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}[type(lay).__name__]
            if kind == "rnn" and lay.activation.__name__ == "relu":
                kind = "rnn-relu"
            if kind == "gru":
                assert lay.reset_after
            bias = bool(lay.use_bias)
            kern, rec = np.asarray(w[0]).T, np.asarray(w[1]).T
            n = rec.shape[1]
            b = np.asarray(w[2]) if bias else None
            if kind == "gru":  # z, r, h -> r, z, n
                order = [1, 0, 2]
                kern, rec = _blocks(kern, order, 3), _blocks(rec, order, 3)
                bi = _blocks(b[0], order, 3) if bias else np.zeros(3 * n)
                bh = _blocks(b[1], order, 3) if bias else np.zeros(3 * n)
            else:
                bi = b if bias else np.zeros(rec.shape[0])
                bh = np.zeros(rec.shape[0])
            params = {"weight_ih": kern, "weight_hh": rec, "bias_ih": bi, "bias_hh": bh}
            dirs.append(Direction(f"l{k}{'_reverse' if rev else ''}", kind, rev, params, bias))
        depths.append(dirs)
    io = np.load(DATA / f"keras_{name}_io.npz")
    x = np.ascontiguousarray(io["inputs"].transpose(1, 0, 2))  # Keras is batch first
    return depths, x, np.ascontiguousarray(io["outputs"].transpose(1, 0, 2))


def onnx_model(name: str) -> tuple[list[list[Direction]], np.ndarray, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(DATA / f"onnx_{name}.onnx").graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    depths = []
    for node in graph.node:
        if node.op_type not in ("LSTM", "GRU", "RNN"):
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        W, R = inits[node.input[1]], inits[node.input[2]]
        bias = len(node.input) > 3 and node.input[3] != ""
        Bv = inits[node.input[3]] if bias else np.zeros((W.shape[0], 2 * W.shape[1]))
        kind = node.op_type.lower()
        if kind == "rnn" and [a.decode() for a in attrs.get("activations", [b"Tanh"])] == ["Relu"]:
            kind = "rnn-relu"
        if kind == "gru":
            assert attrs.get("linear_before_reset", 0) == 1
        assert len(node.input) < 8 or not node.input[7], "peepholes: no PyTorch equivalent"
        assert not attrs.get("input_forget", 0), "coupled gates: no PyTorch equivalent"
        g = {"lstm": 4, "gru": 3}.get(kind, 1)
        order = {"lstm": [0, 2, 3, 1], "gru": [1, 0, 2]}.get(kind, [0])  # iofc->ifgo, zrh->rzn
        k = len(depths)
        revs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
        dirs = []
        for i, rev in enumerate(revs):
            wb, rb = np.split(Bv[i], 2)
            params = {
                "weight_ih": _blocks(W[i], order, g),
                "weight_hh": _blocks(R[i], order, g),
                "bias_ih": _blocks(wb, order, g),
                "bias_hh": _blocks(rb, order, g),
            }
            dirs.append(Direction(f"l{k}{'_reverse' if rev else ''}", kind, rev, params, bias))
        depths.append(dirs)
    io = np.load(DATA / f"onnx_{name}_io.npz")
    key = "ref64" if "ref64" in io.files else "ort"
    y = io[key]  # (T, dirs, B, n) -> (T, B, dirs * n)
    want = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return depths, io["inputs"], want


# ---- the equivalent PyTorch model ----------------------------------------------------------


def module_outputs(depths: list[list[Direction]], x: np.ndarray) -> np.ndarray:
    """The stack run with ``nn.LSTM/GRU/RNN`` modules (one per depth), outputs ``(T, B, w)``."""
    import torch

    inp = torch.from_numpy(x)
    for dirs in depths:
        d0 = dirs[0]
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(d0.kind, torch.nn.RNN)
        extra = {"nonlinearity": "relu"} if d0.kind == "rnn-relu" else {}
        bidir = len(dirs) == 2
        mod = cls(
            inp.shape[-1], d0.n, bias=d0.bias, bidirectional=bidir, dtype=torch.float64, **extra
        )
        with torch.no_grad():
            for dr, suffix in zip(dirs, ("", "_reverse"), strict=False):
                for p, v in dr.params.items():
                    if p.startswith("weight") or dr.bias:
                        getattr(mod, f"{p}_l0{suffix}").copy_(torch.from_numpy(v))
            if not bidir and d0.reverse:  # reverse-only: the module on reversed time
                inp = mod(inp.flip(0))[0].flip(0)
            else:
                inp = mod(inp)[0]
    return inp.numpy()


def _cell(dr: Direction):
    import torch

    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}.get(dr.kind, torch.nn.RNNCell)
    extra = {"nonlinearity": "relu"} if dr.kind == "rnn-relu" else {}
    return cls(dr.params["weight_ih"].shape[1], dr.n, dtype=torch.float64, **extra)


class Stack:
    """The stack unrolled with ``nn.*Cell`` twins; parameters passed explicitly."""

    def __init__(self, depths: list[list[Direction]]) -> None:
        import torch

        self.depths = depths
        self.dirs = [dr for dirs in depths for dr in dirs]
        self.cells = {dr.name: _cell(dr) for dr in self.dirs}
        self.params = {
            dr.name: {p: torch.from_numpy(v.copy()) for p, v in dr.params.items()}
            for dr in self.dirs
        }

    def step(self, dr: Direction, x, s, params=None):
        import torch
        from torch.func import functional_call

        p = self.params[dr.name] if params is None else params[dr.name]
        cell = self.cells[dr.name]
        if dr.kind == "lstm":
            h, c = functional_call(cell, p, (x[None], (s[None, : dr.n], s[None, dr.n :])))
            return torch.cat([h[0], c[0]])
        return functional_call(cell, p, (x[None], s[None]))[0]

    def forward(self, xb, params=None, record=False):
        """Per direction the states at positions 1..T (index t-1), and the top output."""
        import torch

        T = xb.shape[0]
        inp, states, inputs = xb, {}, {}
        for dirs in self.depths:
            outs = []
            for dr in dirs:
                inputs[dr.name] = inp
                s = torch.zeros(dr.m, dtype=torch.float64)
                st = [None] * T
                for t in range(T - 1, -1, -1) if dr.reverse else range(T):
                    s = self.step(dr, inp[t], s, params)
                    if record:
                        s.retain_grad()
                    st[t] = s
                states[dr.name] = st
                outs.append(torch.stack([v[: dr.n] for v in st]))
            inp = torch.cat(outs, dim=1)
        return states, inp, inputs


def _norms(J) -> tuple[float, float]:
    import torch

    return (
        _log10(torch.linalg.matrix_norm(J, ord=2).item()),
        _log10(torch.linalg.matrix_norm(J, ord="fro").item()),
    )


def _key(dr: Direction, tname: str) -> list[str]:
    base = {"weight_ih": "W_i", "weight_hh": "W_h", "bias_ih": "b_i", "bias_hh": "b_h"}[tname]
    if dr.kind in GATES:
        return [f"{dr.name}.{base}{g}" for g in GATES[dr.kind]]
    return [f"{dr.name}.{base}{tname.split('_')[1][-1]}"]  # W_ih, W_hh, b_ih, b_hh


def reference(depths: list[list[Direction]], x: np.ndarray) -> dict:
    import torch

    st = Stack(depths)
    T, B, _ = x.shape
    unidirectional = all(not dr.reverse for dr in st.dirs)
    names = [dr.name for dr in st.dirs]
    res: dict = {
        k: []
        for k in ("layer_spectral", "layer_frobenius", "input_grad_last", "input_grad_sum")
        + ("layer_grad_last", "layer_grad_sum", "final_hidden")
    }
    if unidirectional:
        for k in ("joint_spectral", "joint_frobenius", "cross_spectral", "cross_frobenius"):
            res[k] = []
    pgrad: dict[str, list] = {}
    for b in range(B):
        xb = torch.from_numpy(x[:, b])
        with torch.no_grad():
            states, y, inputs = st.forward(xb)
        res["final_hidden"].append(y[-1].tolist())
        spec, frob = [], []
        for dr in st.dirs:  # own chains, own time
            seq = inputs[dr.name].flip(0) if dr.reverse else inputs[dr.name]
            own = states[dr.name][::-1] if dr.reverse else states[dr.name]
            own = [torch.zeros(dr.m, dtype=torch.float64)] + list(own)
            sp, fr = [0.0], [_log10(math.sqrt(dr.m))]
            for k in range(1, T + 1):

                def run(s, k=k, dr=dr, seq=seq):
                    for t in range(T - k, T):
                        s = st.step(dr, seq[t], s)
                    return s

                a, f = _norms(torch.autograd.functional.jacobian(run, own[T - k]))
                sp.append(a), fr.append(f)
            spec.append(sp), frob.append(fr)
        res["layer_spectral"].append(spec)
        res["layer_frobenius"].append(frob)
        if unidirectional:
            sizes = [dr.m for dr in st.dirs]
            offs = np.cumsum([0] + sizes)

            def joint_step(S, xt, offs=offs):
                out, inp = [], xt
                for i, dr in enumerate(st.dirs):
                    s = st.step(dr, inp, S[offs[i] : offs[i + 1]])
                    out.append(s)
                    inp = s[: dr.n]
                return torch.cat(out)

            S_t = [torch.cat([torch.zeros(m, dtype=torch.float64) for m in sizes])]
            for t in range(T):
                S_t.append(torch.cat([states[dr.name][t] for dr in st.dirs]))
            top = slice(offs[-2], offs[-1])
            js, jf = [0.0], [_log10(math.sqrt(offs[-1]))]
            cs = [[-math.inf] for _ in sizes]
            cf = [[-math.inf] for _ in sizes]
            cs[-1][0], cf[-1][0] = 0.0, _log10(math.sqrt(sizes[-1]))
            for k in range(1, T + 1):

                def jrun(S, k=k, xb=xb):
                    for t in range(T - k, T):
                        S = joint_step(S, xb[t])
                    return S

                J = torch.autograd.functional.jacobian(jrun, S_t[T - k])
                a, f = _norms(J)
                js.append(a), jf.append(f)
                for i in range(len(sizes)):
                    a, f = _norms(J[top, offs[i] : offs[i + 1]])
                    cs[i].append(a), cf[i].append(f)
            res["joint_spectral"].append(js), res["joint_frobenius"].append(jf)
            res["cross_spectral"].append(cs), res["cross_frobenius"].append(cf)
        for loss in ("last", "sum"):
            xl = xb.clone().requires_grad_(True)
            sts, yl, _ = st.forward(xl, record=True)
            (yl[-1].sum() if loss == "last" else yl.sum()).backward()
            res[f"input_grad_{loss}"].append(
                [_log10(torch.linalg.vector_norm(xl.grad[T - 1 - k]).item()) for k in range(T)]
            )
            res[f"layer_grad_{loss}"].append(
                [
                    [
                        _log10(torch.linalg.vector_norm(sts[n][T - 1 - k].grad).item())
                        for k in range(T)
                    ]
                    for n in names
                ]
            )
        leaves = {
            n: {p: v.clone().requires_grad_(True) for p, v in st.params[n].items()} for n in names
        }
        _, yl, _ = st.forward(xb, params=leaves)
        yl[-1].sum().backward()
        for dr in st.dirs:
            for tname, leaf in leaves[dr.name].items():
                g = leaf.grad.numpy()
                parts = np.split(g, len(GATES.get(dr.kind, "x")), axis=0)
                for key, part in zip(_key(dr, tname), parts, strict=True):
                    pgrad.setdefault(key, []).append(part.tolist())

    def batch_last(v):
        return np.moveaxis(np.array(v, dtype=float), 0, -1).tolist()

    out = {k: batch_last(v) for k, v in res.items() if k != "final_hidden"}
    out["final_hidden"] = res["final_hidden"]
    out["parameter_gradient"] = pgrad
    out["layers"] = names
    return out


def main() -> None:
    import torch

    os.environ.setdefault("KERAS_BACKEND", "torch")
    torch.set_default_dtype(torch.float64)
    cases = [("keras", n, keras_model) for n in KERAS] + [("onnx", n, onnx_model) for n in ONNX]
    for fmt, name, read in cases:
        depths, x, want = read(name)
        got = module_outputs(depths, x)
        tol = 2e-6 if fmt == "onnx" and name in ("rnn_relu",) else 1e-12  # ORT float32 only
        gap = float(np.abs(got - want).max())
        assert gap < tol, (fmt, name, gap)
        ref = reference(depths, x)
        cells = np.array(ref["final_hidden"])
        assert np.abs(cells - got[-1]).max() < 1e-13, "cells and modules disagree"
        ref["generator"] = {
            "torch": torch.__version__,
            "script": "tests/reference/make_format_equivalence.py",
            "module_vs_file_max_gap": gap,
        }
        text = json.dumps(ref, sort_keys=True).replace("-Infinity", "null")
        (DATA / f"equiv_{fmt}_{name}.json").write_text(text + "\n")
        print(f"{fmt} {name}: torch module vs file outputs, max gap {gap:.1e}")


if __name__ == "__main__":
    main()

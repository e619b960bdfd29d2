r"""Whole PyTorch recurrent modules from a ``state_dict`` saved as ``.safetensors``/``.npz``.

Recognised tensor names, under any prefix (``encoder.rnn.``) and beside unrelated tensors:

* ``nn.RNN``/``nn.LSTM``/``nn.GRU``: ``{weight,bias}_{ih,hh}_l{k}`` for layer ``k``, with the
  suffix ``_reverse`` for the reverse direction of a bidirectional module, and
  ``weight_hr_l{k}[_reverse]`` for ``nn.LSTM(proj_size=p)`` (read as the catalogue cell
  ``lstm-proj``, its ``W_hr``); ``bias=False`` modules have no bias tensors.
* ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``: ``{weight,bias}_{ih,hh}`` (no layer suffix).
* ``torch.nn.utils.parametrizations``: ``parametrizations.W.original0``/``original1`` (weight
  norm: ``W = g v / ||v||``, the norm over every axis but ``g``'s) and
  ``parametrizations.W.original`` with ``0._u``/``0._v`` (spectral norm in evaluation mode:
  ``W = W_orig / (u . W_orig v)``). The effective weight is computed; any other
  parametrization (``orthogonal``, custom ones) is refused with the advice to save the
  effective weights.

The cell follows from the row count: ``G = rows(weight_hh) / n`` is 1 (``rnn``), 3 (``gru``)
or 4 (``lstm``). An ``nn.RNN``'s nonlinearity is not stored in its state_dict: it is taken as
tanh unless ``nonlinearity="relu"`` is given (``rnn-relu``), and the model's ``notes`` say so.

References:
    [pytorch-rnn] PyTorch documentation of ``torch.nn.RNN``/``LSTM``/``GRU`` and their
    ``*Cell`` variants; ``torch.nn.utils.parametrizations.weight_norm``/``spectral_norm``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from ..cells import get_cell
from ..errors import WeightsError
from ..weights import from_torch_tensors
from .model import Direction, Layer, Model, make_params
from .tensors import TensorSet

_NAME = re.compile(
    r"^(?P<prefix>(?:.*\.)?)(?P<kind>weight|bias)_(?P<which>ih|hh|hr)"
    r"(?:_l(?P<layer>\d+)(?P<rev>_reverse)?)?$"
)
_PARAMETRIZED = re.compile(r"^(?P<pre>(?:.*\.)?)parametrizations\.(?P<w>[^.]+)\.(?P<rest>.+)$")
T = TypeVar("T")
_CELLS = {1: "rnn", 3: "gru", 4: "lstm"}
RNN_NOTE = (
    "nn.RNN's nonlinearity is not stored in a state_dict: taken as {0}"
    " (pass nonlinearity='relu', --nonlinearity relu, for nn.RNN(nonlinearity='relu'))"
)


@dataclass(frozen=True)
class Candidate:
    """One recurrent module found in a state_dict, from names and shapes alone."""

    prefix: str
    style: str  # "module" (nn.LSTM) or "cell" (nn.LSTMCell)
    cell: str
    layers: int
    bidirectional: bool
    hidden_size: int
    input_size: int
    proj_size: int
    bias: bool
    tensors: tuple[str, ...]

    def tensor(self, kind: str, which: str, layer: int, reverse: bool) -> str:
        if self.style == "cell":
            return f"{self.prefix}{kind}_{which}"
        return f"{self.prefix}{kind}_{which}_l{layer}{'_reverse' if reverse else ''}"

    @property
    def module(self) -> str:
        kind = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[self.cell]
        return f"nn.{kind}{'Cell' if self.style == 'cell' else ''}"


def resolve_parametrizations(ts: TensorSet) -> None:
    """Replace ``parametrizations.W.*`` tensors by the effective weight ``W`` (in place)."""
    groups: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    compute: Callable[[], np.ndarray]
    for name in ts.names():
        m = _PARAMETRIZED.match(name)
        if m:
            groups[m["pre"], m["w"]][m["rest"]] = name
    for (pre, w), parts in sorted(groups.items()):
        target = pre + w
        keys = set(parts)
        if keys == {"original0", "original1"}:
            g_name, v_name = parts["original0"], parts["original1"]

            def weight_norm(g_name: str = g_name, v_name: str = v_name) -> np.ndarray:
                g, v = ts.read(g_name), ts.read(v_name)
                if g.ndim != v.ndim and g.size != 1:
                    raise WeightsError(
                        f"{ts.where}: {g_name} has shape {g.shape}, not a weight-norm "
                        f"magnitude for {v_name} {v.shape}"
                    )
                axes = tuple(a for a in range(v.ndim) if g.size == 1 or g.shape[a] == 1)
                return np.asarray(v * (g / np.sqrt(np.sum(v * v, axis=axes, keepdims=True))))

            shape, compute = ts.shapes[v_name], weight_norm
        elif keys == {"original", "0._u", "0._v"}:
            o_name, u_name, v_name = parts["original"], parts["0._u"], parts["0._v"]

            def spectral_norm(o: str = o_name, u: str = u_name, v: str = v_name) -> np.ndarray:
                W = ts.read(o)
                sigma = float(ts.read(u) @ (W.reshape(W.shape[0], -1) @ ts.read(v)))
                return np.asarray(W / sigma)

            shape, compute = ts.shapes[o_name], spectral_norm
        else:
            kind = "orthogonal" if "0.base" in keys else "custom"
            raise WeightsError(
                f"{ts.where}: {pre}parametrizations.{w} is a {kind} parametrization, whose "
                "effective weight gradflow cannot compute without torch; save the effective "
                f"weights: torch.nn.utils.parametrize.remove_parametrizations(module, {w!r})"
            )
        if target in ts.shapes:
            raise WeightsError(f"{ts.where}: holds both {target} and its parametrization")
        ts.hidden.update(parts.values())
        ts.add_virtual(target, shape, compute)


def find_candidates(ts: TensorSet) -> list[Candidate]:
    """Every recurrent module in the names, grouped by prefix; sizes checked from shapes."""
    groups: dict[tuple[str, str], dict[tuple[str, str, int, bool], str]] = defaultdict(dict)
    for name in ts.names():
        m = _NAME.match(name)
        if m:
            style = "cell" if m["layer"] is None else "module"
            layer = int(m["layer"] or 0)
            key = (m["kind"], m["which"], layer, bool(m["rev"]))
            groups[m["prefix"], style][key] = name
    prefixes = [p for p, _ in groups]
    for p in prefixes:
        if prefixes.count(p) > 1:
            raise WeightsError(
                f"{ts.where}: prefix {p or '(none)'!r} mixes nn.RNN-style (_l0) and "
                "nn.RNNCell-style tensor names; save one module per prefix"
            )
    return [_candidate(ts, prefix, style, names) for (prefix, style), names in groups.items()]


def _candidate(
    ts: TensorSet, prefix: str, style: str, names: dict[tuple[str, str, int, bool], str]
) -> Candidate:
    layers = 1 + max(k[2] for k in names)
    bidirectional = any(k[3] for k in names)
    dirs = (False, True) if bidirectional else (False,)
    ih0 = names.get(("weight", "ih", 0, False))
    hh0 = names.get(("weight", "hh", 0, False))
    if ih0 is None or hh0 is None:
        some = sorted(names.values())[0]
        raise WeightsError(
            f"{ts.where}: {some} has no weight_ih/weight_hh of layer 0 beside it "
            f"(prefix {prefix or '(none)'!r})"
        )
    hr0 = names.get(("weight", "hr", 0, False))
    proj = ts.shapes[hr0][0] if hr0 else 0
    hh_shape, ih_shape = ts.shapes[hh0], ts.shapes[ih0]
    if len(hh_shape) != 2 or len(ih_shape) != 2:
        bad = hh0 if len(hh_shape) != 2 else ih0
        raise WeightsError(f"{ts.where}: {bad} has shape {ts.shapes[bad]}; expected a matrix")
    n = ts.shapes[hr0][1] if (hr0 and len(ts.shapes[hr0]) == 2) else hh_shape[1]
    rows = hh_shape[0]
    if n < 1 or rows % n or rows // n not in _CELLS:
        raise WeightsError(
            f"{ts.where}: {hh0} has shape {hh_shape}; rows must be G*n with G = 1 (RNN), "
            f"3 (GRU) or 4 (LSTM) and n = {n}"
        )
    cell = _CELLS[rows // n]
    has_bias = ("bias", "ih", 0, False) in names
    expected = set()
    for k in range(layers):
        for rev in dirs:
            for which in ("ih", "hh"):
                expected.add(("weight", which, k, rev))
                if has_bias:
                    expected.add(("bias", which, k, rev))
            if proj:
                expected.add(("weight", "hr", k, rev))
    missing = sorted(expected - set(names))
    unexpected = sorted(set(names) - expected)
    probe = Candidate(
        prefix, style, cell, layers, bidirectional, n, ih_shape[1], proj, has_bias, ()
    )
    if missing:
        kind, which, k, rev = missing[0]
        raise WeightsError(
            f"{ts.where}: {probe.tensor(kind, which, k, rev)} is missing for the "
            f"{layers}-layer {'bidirectional ' if bidirectional else ''}{probe.module} under "
            f"prefix {prefix or '(none)'!r}; save the module's whole state_dict"
        )
    if unexpected:
        raise WeightsError(
            f"{ts.where}: {names[unexpected[0]]} does not fit the {probe.module} under prefix "
            f"{prefix or '(none)'!r} (bias on some layers only, or projection on some only)"
        )
    tensors = tuple(sorted(names.values()))
    return Candidate(
        prefix, style, cell, layers, bidirectional, n, ih_shape[1], proj, has_bias, tensors
    )


def choose(ts: TensorSet, candidates: list[Candidate], prefix: str | None) -> Candidate:
    """The candidate under ``prefix``; refuses an ambiguous or unknown choice in one line."""
    shown = ", ".join(repr(c.prefix) for c in sorted(candidates, key=lambda c: c.prefix))
    if not candidates:
        names = sorted(ts.names())
        found = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise WeightsError(
            f"{ts.where}: no PyTorch RNN/LSTM/GRU tensors (weight_ih_l0, weight_hh_l0 ...) "
            f"found (found: {found or 'none'})"
        )
    if prefix is None:
        if len(candidates) > 1:
            raise WeightsError(
                f"{ts.where}: holds {len(candidates)} recurrent modules (prefixes {shown}); "
                "choose one with --prefix (prefix= in Python)"
            )
        return candidates[0]
    want = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
    for c in candidates:
        if c.prefix == want:
            return c
    raise WeightsError(f"{ts.where}: no recurrent module under prefix {prefix!r} (found {shown})")


def build_model(
    ts: TensorSet, cand: Candidate, nonlinearity: str | None = None, fmt: str = "pytorch"
) -> Model:
    """Read the candidate's tensors and split them into each layer's cell parameters."""
    cell = cand.cell
    notes: list[str] = []
    if nonlinearity not in (None, "tanh", "relu"):
        raise WeightsError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
    if cell == "rnn":
        cell = "rnn-relu" if nonlinearity == "relu" else "rnn"
        if nonlinearity is None:
            notes.append(RNN_NOTE.format("tanh"))
    elif nonlinearity is not None:
        raise WeightsError(f"nonlinearity={nonlinearity!r} applies to nn.RNN only, not {cell}")
    layers = []
    d = cand.input_size
    for k in range(cand.layers):
        directions = []
        for rev in (False, True) if cand.bidirectional else (False,):
            src = {
                f"{kind}_{which}_l0": cand.tensor(kind, which, k, rev)
                for kind in ("weight", "bias")
                for which in ("ih", "hh")
            }
            tensors = {}
            for slot, name in src.items():
                if cand.bias or not slot.startswith("bias"):
                    tensors[slot] = ts.read(name)
            if not cand.bias:
                rows = tensors["weight_hh_l0"].shape[0]
                tensors["bias_ih_l0"] = tensors["bias_hh_l0"] = np.zeros(rows)
            _check_rank(ts, src, tensors)
            params = from_torch_tensors(cell, tensors)
            sources = {
                p: src[t] for t, ps in _layout(cell) for p in ps if cand.bias or "weight" in t
            }
            projection = None
            if cand.proj_size:  # nn.LSTM(proj_size=p): the catalogue cell lstm-proj
                hr = cand.tensor("weight", "hr", k, rev)
                projection = ts.read(hr)
                projection.setflags(write=False)
                sources["projection"] = sources["W_hr"] = hr
                params["W_hr"] = projection
            n_in = tensors["weight_ih_l0"].shape[1]
            directions.append(
                Direction(
                    rev,
                    make_params(
                        "lstm-proj" if cand.proj_size else cell,
                        params,
                        n_in,
                        cand.hidden_size,
                        ts.where,
                    ),
                    projection,
                    sources,
                )
            )
        d = directions[0].params.input_size
        layers.append(
            located(
                ts.where,
                partial(
                    Layer,
                    "lstm-proj" if cand.proj_size else cell,
                    cand.hidden_size,
                    d,
                    tuple(directions),
                    proj_size=cand.proj_size,
                    bias=cand.bias,
                    name=f"{cand.prefix}l{k}" if cand.style == "module" else cand.prefix,
                ),
            )
        )
    unrelated = tuple(sorted(set(ts.names()) - set(cand.tensors)))

    def model() -> Model:
        return Model(tuple(layers), fmt, ts.where, cand.prefix, unrelated, tuple(notes))

    return located(ts.where, model)


def located(where: str, build: Callable[[], T]) -> T:
    """Run ``build``; a validation error gets the file named in front."""
    try:
        return build()
    except WeightsError as exc:
        text = str(exc)
        raise WeightsError(text if text.startswith(where) else f"{where}: {text}") from None


def _layout(cell: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    layout = get_cell(cell).torch_layout
    assert layout is not None
    return layout


def _check_rank(ts: TensorSet, src: dict[str, str], tensors: dict[str, np.ndarray]) -> None:
    for slot, arr in tensors.items():
        want = 2 if slot.startswith("weight") else 1
        if arr.ndim != want:
            raise WeightsError(
                f"{ts.where}: {src[slot]} has shape {arr.shape}; expected rank {want}"
            )
    rows = tensors["weight_hh_l0"].shape[0]
    for slot, arr in tensors.items():
        if arr.shape[0] != rows:
            raise WeightsError(
                f"{ts.where}: {src[slot]} has {arr.shape[0]} rows but {src['weight_hh_l0']} "
                f"has {rows}; they must match"
            )

"""The result of a stack analysis (:func:`gradflow.stack.analyze_stack`): one typed record.

For a one-layer model its dict holds the ``analyze`` contract keys with their meaning
(``cell``, ``hidden_size``, ``input_size``, ``steps``, ``batch``, ``lags``,
``log10_spectral_norm``, ``log10_frobenius_norm``, ``log10_spectral_norm_hidden``,
``final_hidden``); the keys of stacks, directions and sensitivities are documented in
docs/stacks.md. Arrays indexed by lag have the lag as their first axis (after the layer axis)
and the batch last. Timings live in :attr:`Result.run`, never in the data.

Examples:
    >>> import numpy as np
    >>> r = StackResult(cell="rnn", layers=(), hidden_size=2, input_size=1, steps=1, batch=1,
    ...                 final_hidden=np.zeros((1, 2)),
    ...                 log10_spectral_norm=np.array([[0.0], [-0.5]]))
    >>> back = StackResult.from_dict(r.to_dict())
    >>> back.log10_spectral_norm.tolist(), back.kind
    ([[0.0], [-0.5]], 'stack_analysis')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Result, Where, as_array, as_int, as_str, get, mapping

#: Array fields by name -> their shape in terms of ``L`` (layers), ``T``, ``B``: ``"lag"`` is
#: ``T + 1`` (lags ``0..T``), ``"step"`` is ``T`` (input lags ``0..T-1``); ``"lag|step"``
#: accepts either (a reverse direction's gradient rows are positions ``T-k``, ``k < T``).
_SHAPES: dict[str, tuple[str, ...]] = {
    "log10_spectral_norm": ("lag", "B"),
    "log10_frobenius_norm": ("lag", "B"),
    "log10_spectral_norm_hidden": ("lag", "B"),
    "layer_log10_spectral_norm": ("L", "lag", "B"),
    "layer_log10_frobenius_norm": ("L", "lag", "B"),
    "cross_log10_spectral_norm": ("L", "lag", "B"),
    "cross_log10_frobenius_norm": ("L", "lag", "B"),
    "log10_input_spectral_norm": ("step", "B"),
    "log10_input_frobenius_norm": ("step", "B"),
    "layer_log10_input_spectral_norm": ("L", "step", "B"),
    "log10_gradient_norm": ("lag", "B"),
    "layer_log10_gradient_norm": ("L", "lag|step", "B"),
    "log10_input_gradient_norm": ("step", "B"),
}
#: Per-parameter-tensor fields: ``{"l0.W_hh": array}``.
_DICTS = ("parameter_gradient", "log10_lag_gradient_norm", "lag_tail_fraction")
_LAYER_KEYS = {
    "name": str,
    "cell": str,
    "hidden_size": int,
    "input_size": int,
    "state_size": int,
    "direction": str,
    "depth": int,
}


def _log_array(value: Any, where: Where, ndim: int) -> np.ndarray:
    """A log10 array: JSON ``null`` (how strict JSON saves ``-inf``, the log of an exact zero
    such as a structurally zero block at lag 0) reads back as ``-inf``."""
    arr = as_array(value, where, ndim)
    arr[np.isnan(arr)] = -np.inf
    return arr


@dataclass(frozen=True, eq=False)
class StackResult(Result):
    """Norms of a stacked (and possibly bidirectional) recurrent model, for every lag.

    Attributes:
        cell: the cell's name when every layer uses one cell, else the names joined by ``+``.
        layers: one dict per layer: ``name`` (``l0``, ``l0_reverse`` ...), ``cell``,
            ``hidden_size``, ``input_size``, ``state_size``, ``direction``, ``depth``.
        hidden_size, input_size: the top layer's ``n`` and the model's input size ``d``.
        steps, batch: ``T`` and ``B``.
        final_hidden: ``(B, n)``, the top layer's ``h_T`` (``(B, 2n)``, forward then
            reverse, for a bidirectional top layer).
        log10_spectral_norm, log10_frobenius_norm: ``(T + 1, B)``, the joint state's product
            ``dS_T/dS_{T-k}`` (unidirectional stacks; for one layer ``analyze``'s numbers).
        log10_spectral_norm_hidden: ``(T + 1, B)``, its block on every layer's ``h``.
        layer_log10_spectral_norm, layer_log10_frobenius_norm: ``(L, T + 1, B)``, each
            layer's own chain ``ds^l_T/ds^l_{T-k}`` (for a reverse direction, in its own time:
            ``ds^l_1/ds^l_{1+k}``).
        cross_log10_spectral_norm, cross_log10_frobenius_norm: ``(L, T + 1, B)``, the blocks
            ``ds^L_T/ds^l_{T-k}`` of the top layer's row (row ``L-1`` is the top's own chain).
        log10_input_spectral_norm, log10_input_frobenius_norm: ``(T, B)``, row ``k`` is
            ``log10 ||dS_T/dx_{T-k}||``, the memory curve of the joint state.
        layer_log10_input_spectral_norm: ``(L, T, B)``, ``||ds^l_T/dx_{T-k}||_2``.
        gradient_loss: ``last`` (``L = sum h^L_T``) or ``sum`` (``L = sum_t sum h^L_t``).
        log10_gradient_norm: ``(T + 1, B)``, ``||dL/dS_{T-k}||`` (joint state).
        layer_log10_gradient_norm: ``(L, T + 1, B)``, ``||dL/ds^l_{T-k}||``, the total
            derivative (through the layers above at the same step too: autograd's gradient
            of the state tensor); with reverse directions ``(L, T, B)``, row ``k`` the state
            at position ``T-k``.
        log10_input_gradient_norm: ``(T, B)``, ``||dL/dx_{T-k}||``.
        parameter_gradient: ``{"l0.W_hh": (B,) + shape}``, ``dL/dθ`` per sequence.
        log10_lag_gradient_norm: ``{"l0.W_hh": (T, B)}``, ``log10 ||G_k||``: the contribution
            to ``dL/dθ`` that travelled ``k`` steps (Pascanu et al. 2013, sec. 2).
        lag_tail_fraction: ``{"l0.W_hh": (T, B)}``, ``||sum_{j>k} G_j|| / ||dL/dθ||``.
        meta: configuration (backend, dtype, version, chunking, spectral method); no timings
            (those are in :attr:`run`).

    References:
        Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural
        networks, ICML, sec. 2.
    """

    kind = "stack_analysis"
    schema_version = 1

    cell: str
    layers: tuple[Mapping[str, Any], ...]
    hidden_size: int
    input_size: int
    steps: int
    batch: int
    final_hidden: np.ndarray
    log10_spectral_norm: np.ndarray | None = None
    log10_frobenius_norm: np.ndarray | None = None
    log10_spectral_norm_hidden: np.ndarray | None = None
    layer_log10_spectral_norm: np.ndarray | None = None
    layer_log10_frobenius_norm: np.ndarray | None = None
    cross_log10_spectral_norm: np.ndarray | None = None
    cross_log10_frobenius_norm: np.ndarray | None = None
    log10_input_spectral_norm: np.ndarray | None = None
    log10_input_frobenius_norm: np.ndarray | None = None
    layer_log10_input_spectral_norm: np.ndarray | None = None
    gradient_loss: str | None = None
    log10_gradient_norm: np.ndarray | None = None
    layer_log10_gradient_norm: np.ndarray | None = None
    log10_input_gradient_norm: np.ndarray | None = None
    parameter_gradient: Mapping[str, np.ndarray] = field(default_factory=dict)
    log10_lag_gradient_norm: Mapping[str, np.ndarray] = field(default_factory=dict)
    lag_tail_fraction: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lags(self) -> np.ndarray:
        """``0..T``."""
        return np.arange(self.steps + 1)

    @property
    def layer_names(self) -> list[str]:
        """``l0``, ``l0_reverse``, ``l1`` ... in the order of the layer axis."""
        return [str(layer["name"]) for layer in self.layers]

    def _data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cell": self.cell,
            "layers": [dict(layer) for layer in self.layers],
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "lags": list(range(self.steps + 1)),
            "final_hidden": self.final_hidden,
        }
        for name in _SHAPES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.gradient_loss is not None:
            out["gradient_loss"] = self.gradient_loss
        for name in _DICTS:
            value = getattr(self, name)
            if value:
                out[name] = dict(sorted(value.items()))
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> StackResult:
        steps = as_int(get(data, "steps", where), where.at("steps"), 1)
        batch = as_int(get(data, "batch", where), where.at("batch"), 1)
        layers = []
        wl = where.at("layers")
        raw_layers = get(data, "layers", where)
        if not isinstance(raw_layers, list):
            raise wl.fail(f"expected a list, got {type(raw_layers).__name__}")
        for i, raw in enumerate(raw_layers):
            w = wl.at(i)
            layer = dict(mapping(raw, w))
            for key, typ in _LAYER_KEYS.items():
                value = get(layer, key, w)
                layer[key] = as_str(value, w.at(key)) if typ is str else as_int(value, w.at(key))
            layers.append(layer)
        L = len(layers)
        sizes: dict[str, tuple[int, ...]] = {"L": (L,), "lag": (steps + 1,), "B": (batch,)}
        sizes["step"] = (steps,)
        sizes["lag|step"] = (steps + 1, steps)
        kwargs: dict[str, Any] = {}
        for name, dims in _SHAPES.items():
            value = data.get(name)
            if value is None:
                continue
            arr = _log_array(value, where.at(name), len(dims))
            if any(got not in sizes[dim] for got, dim in zip(arr.shape, dims, strict=True)):
                want = "(" + ", ".join(dims) + ")"
                raise where.at(name).fail(
                    f"expected shape {want} with L={L}, T={steps}, B={batch}; got {arr.shape}"
                )
            kwargs[name] = arr
        for name in _DICTS:
            wd = where.at(name)
            table = {}
            for key, value in mapping(data.get(name) or {}, wd).items():
                wk = wd.at(key)
                if name == "parameter_gradient":  # (B,) + the tensor's shape
                    arr = as_array(value, wk)
                    ok = arr.ndim >= 2 and arr.shape[0] == batch
                else:  # (T, B); a tail fraction is not a log: null stays NaN
                    read = _log_array if name.startswith("log10") else as_array
                    arr = read(value, wk, 2)
                    ok = arr.shape == (steps, batch)
                if not ok:
                    raise wk.fail(f"unexpected shape {arr.shape} (T={steps}, B={batch})")
                table[str(key)] = arr
            kwargs[name] = table
        final = as_array(get(data, "final_hidden", where), where.at("final_hidden"), 2)
        if final.shape[0] != batch:
            raise where.at("final_hidden").fail(f"expected {batch} rows, got {final.shape[0]}")
        loss = data.get("gradient_loss")
        if loss is not None and loss not in ("last", "sum"):
            raise where.at("gradient_loss").fail(f"expected 'last' or 'sum', got {loss!r}")
        return cls(
            cell=as_str(get(data, "cell", where), where.at("cell")),
            layers=tuple(layers),
            hidden_size=as_int(get(data, "hidden_size", where), where.at("hidden_size"), 1),
            input_size=as_int(get(data, "input_size", where), where.at("input_size"), 1),
            steps=steps,
            batch=batch,
            final_hidden=final,
            gradient_loss=loss,
            meta=dict(mapping(data.get("meta") or {}, where.at("meta"))),
            **kwargs,
        )

"""The result of a stack analysis (:func:`gradflow.stack.analyze_stack`): one frozen record.

For a one-layer model its dict holds the ``analyze`` contract keys with their meaning
(``cell``, ``hidden_size``, ``input_size``, ``steps``, ``batch``, ``lags``,
``log10_spectral_norm``, ``log10_frobenius_norm``, ``log10_spectral_norm_hidden``,
``final_hidden``); the keys of stacks, directions and sensitivities are documented in
docs/stacks.md. Arrays indexed by lag have the lag as their first axis and the batch last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .errors import GradflowError
from .results import load_json, save_json

SCHEMA_VERSION = 1
KIND = "stack_analysis"

#: Array fields (optional ones are None when not computed).
_ARRAYS = (
    "log10_spectral_norm",
    "log10_frobenius_norm",
    "log10_spectral_norm_hidden",
    "final_hidden",
    "layer_log10_spectral_norm",
    "layer_log10_frobenius_norm",
    "cross_log10_spectral_norm",
    "cross_log10_frobenius_norm",
    "log10_input_spectral_norm",
    "log10_input_frobenius_norm",
    "layer_log10_input_spectral_norm",
    "log10_gradient_norm",
    "layer_log10_gradient_norm",
    "log10_input_gradient_norm",
)
_DICTS = ("parameter_gradient", "log10_lag_gradient_norm", "lag_tail_fraction")


def _arr(value: Any, log: bool = False) -> np.ndarray:
    """JSON lists back to arrays: null (strict JSON's non-finite value) becomes ``-inf`` in a
    log10 field (the log of an exact zero, e.g. a structurally zero block at lag 0), else NaN.
    """
    a = np.array(value, dtype=float)
    if log:
        a[np.isnan(a)] = -np.inf
    return a


@dataclass(frozen=True)
class StackResult:
    """Norms of a stacked (and possibly bidirectional) recurrent model, for every lag.

    Attributes:
        cell: the cell's name when every layer uses one cell, else the names joined by ``+``.
        layers: one dict per layer: ``name`` (``l0``, ``l0_reverse`` ...), ``cell``,
            ``hidden_size``, ``input_size``, ``state_size``, ``direction``, ``depth``.
        hidden_size, input_size: the top layer's ``n`` and the model's input size ``d``.
        steps, batch: ``T`` and ``B``.
        log10_spectral_norm, log10_frobenius_norm: ``(T + 1, B)``, the joint state's product
            ``dS_T/dS_{T-k}`` (unidirectional stacks; for one layer ``analyze``'s numbers).
        log10_spectral_norm_hidden: ``(T + 1, B)``, its block on every layer's ``h``.
        final_hidden: ``(B, n)``, the top layer's ``h_T``.
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
            of the state tensor); for a reverse direction row ``k`` is its state at ``T-k``.
        log10_input_gradient_norm: ``(T, B)``, ``||dL/dx_{T-k}||``.
        parameter_gradient: ``{"l0.W_hh": (B,) + shape}``, ``dL/dθ`` per sequence.
        log10_lag_gradient_norm: ``{"l0.W_hh": (T, B)}``, ``log10 ||G_k||``: the contribution
            to ``dL/dθ`` that travelled ``k`` steps (Pascanu et al. 2013, sec. 2).
        lag_tail_fraction: ``{"l0.W_hh": (T, B)}``, ``||sum_{j>k} G_j|| / ||dL/dθ||``.
        meta: configuration and timings.
    """

    cell: str
    layers: tuple[dict[str, Any], ...]
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
    parameter_gradient: dict[str, np.ndarray] = field(default_factory=dict)
    log10_lag_gradient_norm: dict[str, np.ndarray] = field(default_factory=dict)
    lag_tail_fraction: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def lags(self) -> np.ndarray:
        return np.arange(self.steps + 1)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "cell": self.cell,
            "layers": [dict(layer) for layer in self.layers],
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "lags": list(range(self.steps + 1)),
            "meta": self.meta,
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _ARRAYS and value is not None:
                out[f.name] = value
            elif f.name in _DICTS and value:
                out[f.name] = dict(sorted(value.items()))
        if self.gradient_loss is not None:
            out["gradient_loss"] = self.gradient_loss
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackResult:
        try:
            if data.get("kind") != KIND:
                raise ValueError(f"kind is {data.get('kind')!r}, not {KIND!r}")
            kwargs: dict[str, Any] = {
                "cell": str(data["cell"]),
                "layers": tuple(dict(layer) for layer in data["layers"]),
                "hidden_size": int(data["hidden_size"]),
                "input_size": int(data["input_size"]),
                "steps": int(data["steps"]),
                "batch": int(data["batch"]),
                "gradient_loss": data.get("gradient_loss"),
                "meta": dict(data.get("meta", {})),
            }
            for name in _ARRAYS:
                if data.get(name) is not None:
                    kwargs[name] = _arr(data[name], log="log10" in name)
            for name in _DICTS:
                kwargs[name] = {
                    k: _arr(v, log="log10" in name) for k, v in data.get(name, {}).items()
                }
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise GradflowError(
                f"not a stack analysis result: {type(exc).__name__}: {exc}"
            ) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StackResult:
        return cls.from_dict(load_json(path))

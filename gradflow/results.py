"""Result objects: plain data that saves to and loads from JSON (DESIGN decision 8).

:class:`AnalysisResult` is what :func:`gradflow.engine.analyze` returns. Its JSON keeps the
``analyze`` contract's keys (``cell``, ``hidden_size``, ``input_size``, ``steps``, ``batch``,
``lags``, ``log10_spectral_norm``, ``log10_frobenius_norm``, ``log10_spectral_norm_hidden``,
``final_hidden``) and adds optional ones. Arrays indexed by lag have shape ``(T + 1, B)``; JSON
stores them as lists over lags of lists over the batch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import GradflowError

SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON-ready: arrays to lists, non-finite floats to None (strict JSON)."""
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def dumps(data: Any) -> str:
    """Strict, sorted, deterministic JSON."""
    return json.dumps(_clean(data), allow_nan=False, sort_keys=True, indent=1) + "\n"


def save_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON atomically."""
    atomic_write(path, dumps(data))


def load_json(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise GradflowError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GradflowError(f"{path}: not valid JSON ({exc})") from None


def _arr(value: Any) -> np.ndarray:
    return np.array(value, dtype=float)  # JSON null (non-finite) becomes NaN


@dataclass
class AnalysisResult:
    """Log-domain norms of ``ds_T/ds_{T-k}`` for every lag ``k = 0..T`` and batch member.

    Attributes:
        log10_spectral_norm: ``(T + 1, B)``; row ``k`` is ``log10 ||ds_T/ds_{T-k}||_2``.
        log10_frobenius_norm: ``(T + 1, B)``, Frobenius norms.
        log10_spectral_norm_hidden: ``(T + 1, B)``, the ``h`` block ``dh_T/dh_{T-k}``.
        final_hidden: ``(B, n)``, ``h_T``.
        paths: ``{"additive"|"multiplicative": {"log10_spectral_norm": ..., ...}}``, the chain
            restricted to one path (DESIGN decision 3).
        log10_singular_values: ``{lag: (B, r)}``, singular values of the product, descending.
        lyapunov_exponents: ``(B, p)`` in nats per step, descending.
        log10_gradient_norm: ``(T + 1, B)``; row ``k`` is ``log10 ||dL/ds_{T-k}||_2``.
        meta: configuration, backend, dtype, timings, seeds, package version.
    """

    cell: str
    hidden_size: int
    input_size: int
    steps: int
    batch: int
    log10_spectral_norm: np.ndarray
    log10_frobenius_norm: np.ndarray
    log10_spectral_norm_hidden: np.ndarray
    final_hidden: np.ndarray
    paths: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    log10_singular_values: dict[int, np.ndarray] = field(default_factory=dict)
    lyapunov_exponents: np.ndarray | None = None
    log10_gradient_norm: np.ndarray | None = None
    gradient_loss: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def lags(self) -> np.ndarray:
        return np.arange(self.steps + 1)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": "analysis",
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "lags": list(range(self.steps + 1)),
            "log10_spectral_norm": self.log10_spectral_norm,
            "log10_frobenius_norm": self.log10_frobenius_norm,
            "log10_spectral_norm_hidden": self.log10_spectral_norm_hidden,
            "final_hidden": self.final_hidden,
            "meta": self.meta,
        }
        if self.paths:
            out["paths"] = self.paths
        if self.log10_singular_values:
            out["log10_singular_values"] = {
                str(k): v for k, v in sorted(self.log10_singular_values.items())
            }
        if self.lyapunov_exponents is not None:
            out["lyapunov_exponents"] = self.lyapunov_exponents
        if self.log10_gradient_norm is not None:
            out["log10_gradient_norm"] = self.log10_gradient_norm
            out["gradient_loss"] = self.gradient_loss
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisResult:
        try:
            return cls(
                cell=str(data["cell"]),
                hidden_size=int(data["hidden_size"]),
                input_size=int(data["input_size"]),
                steps=int(data["steps"]),
                batch=int(data["batch"]),
                log10_spectral_norm=_arr(data["log10_spectral_norm"]),
                log10_frobenius_norm=_arr(data["log10_frobenius_norm"]),
                log10_spectral_norm_hidden=_arr(data["log10_spectral_norm_hidden"]),
                final_hidden=_arr(data["final_hidden"]),
                paths={
                    p: {k: _arr(v) for k, v in q.items()} for p, q in data.get("paths", {}).items()
                },
                log10_singular_values={
                    int(k): _arr(v) for k, v in data.get("log10_singular_values", {}).items()
                },
                lyapunov_exponents=(
                    _arr(data["lyapunov_exponents"])
                    if data.get("lyapunov_exponents") is not None
                    else None
                ),
                log10_gradient_norm=(
                    _arr(data["log10_gradient_norm"])
                    if data.get("log10_gradient_norm") is not None
                    else None
                ),
                gradient_loss=data.get("gradient_loss"),
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GradflowError(f"not an analysis result: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnalysisResult:
        return cls.from_dict(load_json(path))

"""The per-run analysis result: what :func:`gradflow.engine.analyze` returns.

Its JSON keeps the ``analyze`` contract's keys (``cell``, ``hidden_size``, ``input_size``,
``steps``, ``batch``, ``lags``, ``log10_spectral_norm``, ``log10_frobenius_norm``,
``log10_spectral_norm_hidden``, ``final_hidden``) and adds optional ones. Arrays indexed by lag
have shape ``(T + 1, B)``; JSON stores them as lists over lags of lists over the batch.

Schema version 2 adds ``singular_certified`` beside ``log10_singular_values``: the values come
from the certified product SVD (:mod:`gradflow.prodsvd`) and the mask says which are
certified. Version 1 files (one SVD of the renormalised product, no mask) still load, with
``singular_certified`` None ("not recorded").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import (
    Result,
    Where,
    as_array,
    as_int,
    as_str,
    get,
    mapping,
    optional,
)


@dataclass(frozen=True, eq=False)
class AnalysisResult(Result):
    """Log-domain norms of ``ds_T/ds_{T-k}`` for every lag ``k = 0..T`` and batch member.

    Attributes:
        cell: the cell's name. hidden_size: ``n``. input_size: ``d``. steps: ``T``.
        batch: ``B``.
        log10_spectral_norm: ``(T + 1, B)``; row ``k`` is ``log10 ||ds_T/ds_{T-k}||_2``.
        log10_frobenius_norm: ``(T + 1, B)``, Frobenius norms.
        log10_spectral_norm_hidden: ``(T + 1, B)``, the ``h`` block ``dh_T/dh_{T-k}``.
        final_hidden: ``(B, n)``, ``h_T``.
        paths: ``{"additive"|"multiplicative": {"log10_spectral_norm": ..., ...}}``, the chain
            restricted to one path (DESIGN decision 3).
        log10_singular_values: ``{lag: (B, r)}``, singular values of the product, descending
            (``-inf`` for an exact zero), certified or not.
        singular_certified: ``{lag: (B, r)}`` booleans, True where the value is certified to
            :data:`gradflow.prodsvd.CERT_TOL` decades; None when not recorded (version 1 files,
            whose values come from one SVD and carry no certificate).
        lyapunov_exponents: ``(B, p)`` in nats per step, descending.
        log10_gradient_norm: ``(T + 1, B)``; row ``k`` is ``log10 ||dL/ds_{T-k}||_2``.
        gradient_loss: ``"last"`` or ``"sum"`` when the gradient was recorded.
        meta: configuration, backend, dtype, seeds, package version (no timings: those are
            in :attr:`run`).
    """

    kind = "analysis"
    schema_version = 2
    reads_versions = (1,)

    cell: str
    hidden_size: int
    input_size: int
    steps: int
    batch: int
    log10_spectral_norm: np.ndarray
    log10_frobenius_norm: np.ndarray
    log10_spectral_norm_hidden: np.ndarray
    final_hidden: np.ndarray
    paths: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    log10_singular_values: Mapping[int, np.ndarray] = field(default_factory=dict)
    singular_certified: Mapping[int, np.ndarray] | None = None
    lyapunov_exponents: np.ndarray | None = None
    log10_gradient_norm: np.ndarray | None = None
    gradient_loss: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lags(self) -> np.ndarray:
        """``0..T``."""
        return np.arange(self.steps + 1)

    def _data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "lags": self.lags,  # an array: save_json streams it
            "log10_spectral_norm": self.log10_spectral_norm,
            "log10_frobenius_norm": self.log10_frobenius_norm,
            "log10_spectral_norm_hidden": self.log10_spectral_norm_hidden,
            "final_hidden": self.final_hidden,
            "meta": dict(self.meta),
        }
        if self.paths:
            out["paths"] = {p: dict(q) for p, q in self.paths.items()}
        if self.log10_singular_values:
            out["log10_singular_values"] = {
                str(k): v for k, v in sorted(self.log10_singular_values.items())
            }
        if self.singular_certified is not None:
            out["singular_certified"] = {
                str(k): np.asarray(v, bool).tolist()
                for k, v in sorted(self.singular_certified.items())
            }
        if self.lyapunov_exponents is not None:
            out["lyapunov_exponents"] = self.lyapunov_exponents
        if self.log10_gradient_norm is not None:
            out["log10_gradient_norm"] = self.log10_gradient_norm
            out["gradient_loss"] = self.gradient_loss
        return out

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> AnalysisResult:
        steps = as_int(get(data, "steps", where), where.at("steps"), 1)
        batch = as_int(get(data, "batch", where), where.at("batch"), 1)

        def lagged(key: str, value: Any, w: Where) -> np.ndarray:
            arr = as_array(value, w, 2)
            if arr.shape != (steps + 1, batch):
                raise w.fail(f"expected shape ({steps + 1}, {batch}), got {arr.shape}")
            return arr

        def norms(key: str) -> np.ndarray:
            return lagged(key, get(data, key, where), where.at(key))

        paths: dict[str, dict[str, np.ndarray]] = {}
        for p, q in mapping(data.get("paths") or {}, where.at("paths")).items():
            wp = where.at("paths").at(p)
            paths[str(p)] = {str(k): lagged(str(k), v, wp.at(k)) for k, v in mapping(q, wp).items()}
        sv: dict[int, np.ndarray] = {}
        for k, v in mapping(data.get("log10_singular_values") or {}, where).items():
            wk = where.at("log10_singular_values").at(k)
            try:
                lag = int(k)
            except ValueError:
                raise wk.fail("expected an integer lag") from None
            sv[lag] = as_array(v, wk, 2)
        cert: dict[int, np.ndarray] | None = None
        if data.get("singular_certified") is not None:
            cert = {}
            for k, v in mapping(data["singular_certified"], where.at("singular_certified")).items():
                wk = where.at("singular_certified").at(k)
                try:
                    lag = int(k)
                except ValueError:
                    raise wk.fail("expected an integer lag") from None
                mask = as_array(v, wk, 2)
                if lag not in sv or mask.shape != sv[lag].shape:
                    raise wk.fail("expected the shape of the singular values at that lag")
                cert[lag] = mask > 0.5
        meta = data.get("meta") or {}
        return cls(
            cell=as_str(get(data, "cell", where), where.at("cell")),
            hidden_size=as_int(get(data, "hidden_size", where), where.at("hidden_size"), 1),
            input_size=as_int(get(data, "input_size", where), where.at("input_size"), 1),
            steps=steps,
            batch=batch,
            log10_spectral_norm=norms("log10_spectral_norm"),
            log10_frobenius_norm=norms("log10_frobenius_norm"),
            log10_spectral_norm_hidden=norms("log10_spectral_norm_hidden"),
            final_hidden=as_array(get(data, "final_hidden", where), where.at("final_hidden"), 2),
            paths=paths,
            log10_singular_values=sv,
            singular_certified=cert,
            lyapunov_exponents=optional(
                data, "lyapunov_exponents", where, lambda v, w: as_array(v, w, 2)
            ),
            log10_gradient_norm=optional(
                data, "log10_gradient_norm", where, lambda v, w: lagged("", v, w)
            ),
            gradient_loss=optional(data, "gradient_loss", where, as_str),
            meta=dict(mapping(meta, where.at("meta"))),
        )

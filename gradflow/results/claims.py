"""The claims result: statements about gradient flow, each with the numbers that test it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import (
    Result,
    Where,
    as_array,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_str,
    get,
    mapping,
    optional,
)


@dataclass(frozen=True)
class Claim:
    """One claim.

    Attributes:
        id: ``a``..``f``. title: one line. statement: what is claimed.
        measured: ``{name: value}`` in the order the claim measured them (raw numbers).
        holds: whether the claim holds by its stated criterion.
        summary: one sentence with the numbers. configs: the experiment configs used.
        conditions: the conditions the numbers were measured under (cell, sizes, init,
            inputs, number of weight draws), in words.
        intervals: ``{name: {"estimate", "low", "high", "level", "draws", "statistic",
            "resamples"}}``: the percentile-bootstrap interval over weight draws of each
            measured number the verdict rests on (:mod:`gradflow.analysis.uncertainty`).
    """

    id: str
    title: str
    statement: str
    measured: Mapping[str, Any]
    holds: bool
    summary: str
    configs: tuple[Mapping[str, Any], ...] = ()
    conditions: str = ""
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "conditions": self.conditions,
            "measured": dict(self.measured),
            "intervals": {k: dict(v) for k, v in self.intervals.items()},
            "holds": self.holds,
            "summary": self.summary,
            "configs": [dict(c) for c in self.configs],
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> Claim:
        d = mapping(data, where)
        text = {k: as_str(get(d, k, where), where.at(k)) for k in ("id", "title", "statement")}
        return cls(
            **text,
            measured=dict(mapping(get(d, "measured", where), where.at("measured"))),
            holds=as_bool(get(d, "holds", where), where.at("holds")),
            summary=as_str(get(d, "summary", where), where.at("summary")),
            configs=tuple(
                dict(mapping(c, where.at("configs")))
                for c in as_list(d.get("configs") or [], where.at("configs"))
            ),
            conditions=as_str(d.get("conditions", ""), where.at("conditions")),
            intervals={
                k: dict(mapping(v, where.at("intervals").at(k)))
                for k, v in mapping(d.get("intervals") or {}, where.at("intervals")).items()
            },
        )


#: Array fields of :class:`Clipping`, with their number of dimensions.
_CLIP_ARRAYS = {
    "lags": 1,
    "log10_gradient_norm": 2,
    "log10_batch_gradient_norm": 1,
    "tail_share": 2,
    "tail_share_clipped_batch": 2,
    "tail_share_clipped_sequence": 2,
}


@dataclass(frozen=True, eq=False)
class Clipping:
    """Gradient clipping of an exploding LSTM (:mod:`gradflow.analysis.clipping`).

    Attributes:
        cell, hidden_size, input_size, steps, batch, sigma_w: the networks (Gaussian weights
            of gain ``sigma_w``, unit Gaussian inputs, loss ``L = sum h_T``).
        draws: weight draws (one network each, ``batch`` sequences).
        threshold: the clip threshold ``c`` on the global 2-norm of ``dL/dθ``.
        lags: ``(K,)`` lags ``k`` of the long-lag share.
        log10_gradient_norm: ``(draws, batch)`` ``log10 ||dL/dθ||`` per sequence.
        log10_batch_gradient_norm: ``(draws,)`` ``log10 ||mean_b dL/dθ_b||``.
        tail_share: ``(draws, K)`` ``||mean_b R_k|| / ||mean_b g_b||`` unclipped.
        tail_share_clipped_batch, tail_share_clipped_sequence: the same after clipping the
            batch mean, or each sequence's gradient before the mean.
    """

    cell: str
    hidden_size: int
    input_size: int
    steps: int
    batch: int
    sigma_w: float
    draws: int
    threshold: float
    lags: np.ndarray
    log10_gradient_norm: np.ndarray
    log10_batch_gradient_norm: np.ndarray
    tail_share: np.ndarray
    tail_share_clipped_batch: np.ndarray
    tail_share_clipped_sequence: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "sigma_w": self.sigma_w,
            "draws": self.draws,
            "threshold": self.threshold,
        }
        out.update({k: getattr(self, k) for k in _CLIP_ARRAYS})
        return out

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> Clipping:
        d = mapping(data, where)
        ints: dict[str, Any] = {
            k: as_int(get(d, k, where), where.at(k))
            for k in ("hidden_size", "input_size", "steps", "batch", "draws")
        }
        for k in ("sigma_w", "threshold"):
            v = as_float(get(d, k, where), where.at(k))
            if v is None:
                raise where.at(k).fail("expected a finite number")
            ints[k] = v
        for k, nd in _CLIP_ARRAYS.items():
            ints[k] = as_array(get(d, k, where), where.at(k), nd)
        return cls(cell=as_str(get(d, "cell", where), where.at("cell")), **ints)


@dataclass(frozen=True)
class ClaimsResult(Result):
    """Claims (a)-(f) as measured by :func:`gradflow.analysis.claims.run_claims`.

    Schema 3 adds each claim's ``conditions`` and ``intervals`` and the result's ``clipping``
    (None in files of versions 1 and 2, which are still read).
    """

    kind = "claims"
    schema_version = 3
    reads_versions = (1, 2)

    claims: tuple[Claim, ...]
    quick: bool = True
    gradflow_version: str = "unknown"
    clipping: Clipping | None = None

    def claim(self, cid: str) -> Claim:
        """The claim with id ``cid``."""
        for c in self.claims:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def _data(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "gradflow_version": self.gradflow_version,
            "claims": [c.to_dict() for c in self.claims],
            "clipping": self.clipping.to_dict() if self.clipping is not None else None,
        }

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> ClaimsResult:
        w = where.at("claims")
        return cls(
            claims=tuple(
                Claim.from_dict(c, w.at(i))
                for i, c in enumerate(as_list(get(data, "claims", where), w))
            ),
            quick=as_bool(data.get("quick", True), where.at("quick")),
            gradflow_version=as_str(data.get("gradflow_version", "unknown"), where),
            clipping=optional(data, "clipping", where, Clipping.from_dict),
            run=dict(data.get("timing") or {}) if version == 1 else {},
        )

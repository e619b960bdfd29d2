"""The claims result: statements about gradient flow, each with the numbers that test it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import Result, Where, as_bool, as_list, as_str, get, mapping


@dataclass(frozen=True)
class Claim:
    """One claim.

    Attributes:
        id: ``a``..``e``. title: one line. statement: what is claimed.
        measured: ``{name: value}`` in the order the claim measured them (raw numbers).
        holds: whether the claim holds by its stated criterion.
        summary: one sentence with the numbers. configs: the experiment configs used.
    """

    id: str
    title: str
    statement: str
    measured: Mapping[str, Any]
    holds: bool
    summary: str
    configs: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "measured": dict(self.measured),
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
        )


@dataclass(frozen=True)
class ClaimsResult(Result):
    """Claims (a)-(e) as measured by :func:`gradflow.analysis.claims.run_claims`."""

    kind = "claims"
    schema_version = 2
    reads_versions = (1,)

    claims: tuple[Claim, ...]
    quick: bool = True
    gradflow_version: str = "unknown"

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
            run=dict(data.get("timing") or {}) if version == 1 else {},
        )

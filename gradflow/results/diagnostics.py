r"""Typed diagnostics an experiment cell carries beside its norms (schema version 3).

* :class:`PathTerms`: the expansion ``P_k = \sum_j S_j`` of the Jacobian product by the
  number ``j`` of multiplicative factors (:mod:`gradflow.decomposition`), at a few lags: how
  much of the full product travels through the additive path alone (``||S_0|| / ||P_k||``).
* :class:`AnnealedGrowth`: the annealed mean-field growth rate of ``E||P_k||_F^2``
  (:func:`gradflow.analysis.annealed.cell_meanfield`), with its assumptions and warnings.

Both are plain data, read back from JSON with validation; nothing is recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Where, as_array, as_bool, as_float, as_int, as_list, as_str, get, mapping


@dataclass(frozen=True, eq=False)
class PathTerms:
    r"""``P_k = sum_j S_j`` by the number ``j`` of multiplicative factors, at ``lags``.

    ``S_0`` is the pure additive chain (no factor through a weight matrix), ``S_k`` the pure
    multiplicative one; the ``S_j`` sum to the full product exactly (the definitions and
    formulas are in ``docs/theory.md``). All norms are Frobenius norms, log10.

    Attributes:
        lags: the lags ``k``, increasing.
        log10_full_norm: ``(L, R)`` ``log10 ||P_k||_F`` for ``R`` runs.
        log10_additive_norm: ``(L, R)`` ``log10 ||S_0||_F`` (computed directly).
        log10_multiplicative_norm: ``(L, R)`` ``log10 ||S_k||_F`` (computed directly).
        log10_term_norm: ``(L, R, K + 1)`` ``log10 ||S_j||_F``, ``j = 0..K`` (NaN for ``j > k``).
        resolved: same shape, True where the term's estimated relative error is below 1e-6.
        blocks: ``{"dh_T/dc_{T-k}": (L, R), ...}`` log10 Frobenius norms of ``P_k``'s blocks.
        runs: ``R``, the sequences expanded (the first of each seed).
        additive_share_interval: ``{lag: interval}``, ``log10 (||S_0||_F / ||P_k||_F)`` over every
            run of the experiment (seeds x sequences, from the engine's chains): the median
            with its percentile-bootstrap interval
            (:meth:`gradflow.analysis.uncertainty.Interval.to_dict`); empty in older files.
    """

    lags: tuple[int, ...]
    log10_full_norm: np.ndarray
    log10_additive_norm: np.ndarray
    log10_multiplicative_norm: np.ndarray
    log10_term_norm: np.ndarray
    resolved: np.ndarray
    blocks: Mapping[str, np.ndarray] = field(default_factory=dict)
    additive_share_interval: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return int(self.log10_full_norm.shape[1])

    def log10_additive_share(self) -> np.ndarray:
        """``(L, R)`` ``log10 (||S_0||_F / ||P_k||_F)``: the additive path's share."""
        with np.errstate(invalid="ignore"):
            return np.asarray(self.log10_additive_norm - self.log10_full_norm)

    def median_share(self) -> list[tuple[int, float]]:
        """``[(lag, median over runs of ||S_0|| / ||P_k||)]`` (NaN where undefined)."""
        share = self.log10_additive_share()
        out = []
        for i, k in enumerate(self.lags):
            row = share[i][~np.isnan(share[i])]
            out.append((k, float(10 ** np.median(row)) if row.size else math.nan))
        return out

    def peak_j(self) -> list[tuple[int, int]]:
        """``[(lag, j)]``: the ``j`` with the largest median ``||S_j||`` at each lag."""
        out = []
        for i, k in enumerate(self.lags):
            with np.errstate(invalid="ignore"):
                med = np.nanmedian(self.log10_term_norm[i, :, : k + 1], axis=0)
            out.append((k, int(np.nanargmax(med)) if np.isfinite(med).any() else 0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "lags": list(self.lags),
            "log10_full_norm": self.log10_full_norm,
            "log10_additive_norm": self.log10_additive_norm,
            "log10_multiplicative_norm": self.log10_multiplicative_norm,
            "log10_term_norm": self.log10_term_norm,
            "resolved": self.resolved.astype(bool),
            "blocks": dict(self.blocks),
            "additive_share_interval": {
                str(k): dict(v) for k, v in sorted(self.additive_share_interval.items())
            },
            "definition": "P_k = sum_j S_j, j = number of factors through the multiplicative "
            "part M_t of J_t = A_t + M_t; Frobenius norms, log10",
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> PathTerms:
        d = mapping(data, where)
        lags = tuple(as_int(k, where.at("lags"), 1) for k in as_list(get(d, "lags", where), where))

        def arr(key: str, ndim: int) -> np.ndarray:
            a = as_array(get(d, key, where), where.at(key), ndim)
            if a.shape[:1] != (len(lags),):
                raise where.at(key).fail(f"expected one row per lag ({len(lags)})")
            return a

        terms = arr("log10_term_norm", 3)
        resolved = arr("resolved", 3)
        if resolved.shape != terms.shape:
            raise where.at("resolved").fail("expected the shape of log10_term_norm")
        return cls(
            lags=lags,
            log10_full_norm=arr("log10_full_norm", 2),
            log10_additive_norm=arr("log10_additive_norm", 2),
            log10_multiplicative_norm=arr("log10_multiplicative_norm", 2),
            log10_term_norm=terms,
            resolved=resolved > 0.5,
            blocks={
                str(k): as_array(v, where.at("blocks").at(k), 2)
                for k, v in mapping(d.get("blocks") or {}, where.at("blocks")).items()
            },
            additive_share_interval=_lag_intervals(d.get("additive_share_interval"), where),
        )


def _lag_intervals(data: Any, where: Where) -> dict[int, dict[str, Any]]:
    """``{lag: interval dict}`` from JSON's ``{"10": {...}}`` (None: empty)."""
    w = where.at("additive_share_interval")
    out = {}
    for k, v in mapping(data or {}, w).items():
        if not str(k).isdigit():
            raise w.at(k).fail("expected an integer lag")
        out[int(k)] = dict(mapping(v, w.at(k)))
    return out


@dataclass(frozen=True)
class AnnealedGrowth:
    """The annealed mean-field growth rate of ``E||P_k||_F^2``, in decades per step of
    ``||P_k||_F`` (:func:`gradflow.analysis.annealed.cell_meanfield`).

    Attributes:
        growth_rate: the rate (None where the theory does not apply). stderr: its sampling
        standard error. additive_growth_rate, multiplicative_growth_rate: the same for the pure
        chains (None: no such chain). applies: False where the assumptions fail outright (the
        state diverges). warnings: why a number should not be trusted. assumptions: in words.
        tied_growth_rate: the tied-weight prediction with per-unit trajectories
        (:func:`gradflow.analysis.tied_trajectory.trajectory_meanfield`), same units; None
        where it was not computed (cells without sigmoid gates, whose tied networks follow
        the annealed rate; files written before it existed).
    """

    growth_rate: float | None
    stderr: float | None
    additive_growth_rate: float | None
    multiplicative_growth_rate: float | None
    applies: bool
    warnings: tuple[str, ...] = ()
    assumptions: str = ""
    units: str = "decades per step"
    tied_growth_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantity": "annealed growth rate of E||ds_T/ds_{T-k}||_F^2",
            "growth_rate": self.growth_rate,
            "stderr": self.stderr,
            "additive_growth_rate": self.additive_growth_rate,
            "multiplicative_growth_rate": self.multiplicative_growth_rate,
            "applies": self.applies,
            "warnings": list(self.warnings),
            "assumptions": self.assumptions,
            "units": self.units,
            "tied_growth_rate": self.tied_growth_rate,
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> AnnealedGrowth:
        d = mapping(data, where)

        def num(key: str) -> float | None:
            return as_float(d.get(key), where.at(key))

        return cls(
            growth_rate=num("growth_rate"),
            stderr=num("stderr"),
            additive_growth_rate=num("additive_growth_rate"),
            multiplicative_growth_rate=num("multiplicative_growth_rate"),
            applies=as_bool(get(d, "applies", where), where.at("applies")),
            warnings=tuple(
                as_str(w, where.at("warnings")) for w in as_list(d.get("warnings") or [], where)
            ),
            assumptions=as_str(d.get("assumptions") or "", where.at("assumptions")),
            units=as_str(d.get("units") or "decades per step", where.at("units")),
            tied_growth_rate=num("tied_growth_rate"),
        )

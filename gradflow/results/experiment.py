"""The experiment result: one :class:`CellSummary` per cell, in the order the cells ran.

A cell summary carries everything a figure or report needs: quantile :class:`Band` s over the
runs for every lag-indexed quantity, the decay rate with its band, the Pascanu bound and the
mean-field prediction where they apply, and a :class:`CellCard` with the cell's equations and
Jacobian as LaTeX and MathML strings (and the equation file's text for a user cell), so a report
never reads the cell's file again or re-derives anything.

Schema version 4 keeps each run's value behind the decay rate and the norm at ``k = T``
(:class:`~gradflow.results.runs.RunValues`: the value, the weight draw, and the two-stage
bootstrap interval of the median), so a reader can recompute every interval; version 3 files
(no per-run values, no intervals) are still read. Schema version 3 adds the certified
singular values (a ``certified`` mask beside the values, :mod:`gradflow.prodsvd`), the path
expansion (:class:`~gradflow.results.diagnostics.PathTerms`) and the annealed mean field
(:class:`~gradflow.results.diagnostics.AnnealedGrowth`). Version 2 stores bands as
``{levels, low, median, high}``; version 2 files (singular values from one SVD, no
certification) and version 1 files (bands keyed ``q10``/``median``/``q90``, timings inside the
data) are still read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .band import Band, band_map, level_name, levels_of
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
from .diagnostics import AnnealedGrowth, PathTerms
from .lyapunov import LyapunovSummary
from .runs import RunValues

#: How singular values were computed, for results that do not say (schema version <= 2).
ONE_SVD = "one SVD of the accumulated product (values ~15 decades below the largest are noise)"

MathLine = tuple[str, str]
"""``(presentation MathML body, LaTeX)`` of one displayed equation."""


@dataclass(frozen=True)
class CellCard:
    """A cell's algebra as data: what a report shows of it, never re-derived.

    Attributes:
        name: the cell's name. description: one line. reference: the citation as text.
        citations: citation keys (:mod:`gradflow.citations`). state: the state vectors.
        equations: one ``(mathml, latex)`` per equation of the cell.
        jacobian: ``(label, lines)`` for the state Jacobian and its additive and
            multiplicative paths, one ``(mathml, latex)`` line per non-zero block.
        source: the equation file's text for a user-defined cell; None for the catalogue.
    """

    name: str
    description: str = ""
    reference: str = ""
    citations: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    equations: tuple[MathLine, ...] = ()
    jacobian: tuple[tuple[str, tuple[MathLine, ...]], ...] = ()
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "reference": self.reference,
            "citations": list(self.citations),
            "state": list(self.state),
            "equations": [list(e) for e in self.equations],
            "jacobian": [[label, [list(e) for e in lines]] for label, lines in self.jacobian],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> CellCard:
        d = mapping(data, where)

        def line(v: Any, w: Where) -> MathLine:
            pair = as_list(v, w)
            if len(pair) != 2:
                raise w.fail("expected [mathml, latex]")
            return as_str(pair[0], w), as_str(pair[1], w)

        jac = []
        for i, entry in enumerate(as_list(d.get("jacobian") or [], where.at("jacobian"))):
            w = where.at("jacobian").at(i)
            pair = as_list(entry, w)
            if len(pair) != 2:
                raise w.fail("expected [label, lines]")
            jac.append((as_str(pair[0], w), tuple(line(v, w) for v in as_list(pair[1], w))))
        return cls(
            name=as_str(get(d, "name", where), where.at("name")),
            description=as_str(d.get("description") or "", where.at("description")),
            reference=as_str(d.get("reference") or "", where.at("reference")),
            citations=tuple(
                as_str(c, where.at("citations")) for c in as_list(d.get("citations") or [], where)
            ),
            state=tuple(as_str(s, where.at("state")) for s in as_list(d.get("state") or [], where)),
            equations=tuple(
                line(v, where.at("equations"))
                for v in as_list(d.get("equations") or [], where.at("equations"))
            ),
            jacobian=tuple(jac),
            source=optional(d, "source", where, as_str),
        )


@dataclass(frozen=True)
class DecayRate:
    """Fitted slope of ``log10 ||ds_T/ds_{T-k}||_2`` over a lag window, in decades per step.

    Attributes:
        median: median over runs; None where the product is exactly zero (rate ``-inf``).
        low, high: the band over runs at ``levels``.
        levels: ``(lo, 0.5, hi)``. window: ``(k0, k1)``, the lags fitted over.
        units: always ``decades per step``.
        runs: each run's rate with its weight draw and the 95 % two-stage bootstrap interval
            of the median (:class:`~gradflow.results.runs.RunValues`); None in files older
            than schema version 4.
    """

    median: float | None
    low: float | None
    high: float | None
    levels: tuple[float, float, float]
    window: tuple[int, int]
    units: str = "decades per step"
    runs: RunValues | None = field(default=None, compare=False)

    @property
    def interval(self) -> Mapping[str, Any] | None:
        """The bootstrap interval of the median (:attr:`runs`), or None."""
        return self.runs.interval if self.runs is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "levels": list(self.levels),
            "window": list(self.window),
            "units": self.units,
        }
        if self.runs is not None:
            out["runs"] = self.runs.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: Where, levels: tuple[float, float]) -> DecayRate:
        d = mapping(data, where)
        if "levels" in d:
            lv = [as_float(v, where.at("levels")) for v in as_list(d["levels"], where)]
            if len(lv) != 3 or any(v is None for v in lv):
                raise where.at("levels").fail("expected [low, 0.5, high]")
            levels = (float(lv[0]), float(lv[2]))  # type: ignore[arg-type]
            low, high = d.get("low"), d.get("high")
        else:  # schema version 1
            low, high = d.get(level_name(levels[0])), d.get(level_name(levels[1]))
        window = as_list(get(d, "window", where), where.at("window"))
        if len(window) != 2:
            raise where.at("window").fail("expected [k0, k1]")
        return cls(
            median=as_float(get(d, "median", where), where.at("median")),
            low=as_float(low, where.at("low")),
            high=as_float(high, where.at("high")),
            levels=(levels[0], 0.5, levels[1]),
            window=(as_int(window[0], where.at("window")), as_int(window[1], where.at("window"))),
            units=as_str(d.get("units", "decades per step"), where.at("units")),
            runs=optional(d, "runs", where, RunValues.from_dict),
        )


@dataclass(frozen=True, eq=False)
class PascanuBound:
    """The Pascanu bound per lag (median over runs) and whether every run stays below it."""

    log10_bound: np.ndarray
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        return {"log10_bound": self.log10_bound, "holds": self.holds}

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> PascanuBound:
        d = mapping(data, where)
        return cls(
            as_array(get(d, "log10_bound", where), where.at("log10_bound"), 1),
            as_bool(get(d, "holds", where), where.at("holds")),
        )


@dataclass(frozen=True)
class MeanField:
    """The mean-field prediction for the tanh RNN with Gaussian weights [poole2016].

    ``chi`` is the tanh RNN's ``sigma_w^2 E[phi'(h)^2]``; the report no longer shows it (the
    annealed growth rate of every cell, :class:`AnnealedGrowth`, replaces it); it is kept so
    claims and old result files still read."""

    predicted_slope: float | None
    chi: float | None
    q_star: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_slope": self.predicted_slope, "chi": self.chi, "q_star": self.q_star}

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> MeanField:
        d = mapping(data, where)
        return cls(*(as_float(d.get(k), where.at(k)) for k in ("predicted_slope", "chi", "q_star")))


@dataclass(frozen=True, eq=False)
class CellSummary:
    """One cell of an experiment reduced over its runs (``seeds x batch``).

    Attributes:
        cell: the cell's name. hidden_size, input_size, steps, batch: ``n, d, T, B``.
        runs: number of runs reduced. quantiles: ``(lo, hi)``, the band levels.
        init: the initialisation options actually used for this cell.
        log10_spectral_norm, log10_frobenius_norm, log10_spectral_norm_hidden: bands over lags.
        paths: ``{"additive"|"multiplicative": Band}`` of the path-restricted spectral norms.
        log10_singular_values: ``{lag: (runs, r)}`` (every value, certified or not).
        singular_values_certified: ``{lag: (runs, r)}`` True where the value is certified
            (:mod:`gradflow.prodsvd`); empty for results that predate certification.
        singular_values_method: how the singular values were computed.
        path_terms: :class:`PathTerms`, the expansion by multiplicative factors, or None.
        annealed: :class:`AnnealedGrowth`, the annealed mean field, or None.
        state_free: True when the cell's Jacobian does not depend on the state (the engine's
            ``meta["structure"]["state_free"]``), None when the engine did not say.
        lyapunov_exponents: ``(runs, p)`` in nats per step, or None.
        lyapunov: :class:`~gradflow.results.lyapunov.LyapunovSummary`, every exponent with
            error bars, ``D_KY``, entropy rate and the determinant check, or None.
        log10_gradient_norm: band of ``log10 ||dL/ds_{T-k}||``, or None.
        decay_rate: :class:`DecayRate`. pascanu: :class:`PascanuBound` or None.
        meanfield: :class:`MeanField` or None. card: :class:`CellCard` or None.
        log10_norm_final: ``{"full"|"additive": RunValues}``, each run's
            ``log10 ||ds_T/ds_0||_2`` at ``k = T`` (the full product, and the additive path's
            chain where the cell has one) with the bootstrap interval of the median; empty
            before schema version 4.
    """

    cell: str
    hidden_size: int
    input_size: int
    steps: int
    batch: int
    runs: int
    quantiles: tuple[float, float]
    init: Mapping[str, Any]
    log10_spectral_norm: Band
    log10_frobenius_norm: Band
    log10_spectral_norm_hidden: Band
    decay_rate: DecayRate
    paths: Mapping[str, Band] = field(default_factory=dict)
    log10_singular_values: Mapping[int, np.ndarray] = field(default_factory=dict)
    lyapunov_exponents: np.ndarray | None = None
    log10_gradient_norm: Band | None = None
    pascanu: PascanuBound | None = None
    meanfield: MeanField | None = None
    card: CellCard | None = None
    singular_values_certified: Mapping[int, np.ndarray] = field(default_factory=dict)
    singular_values_method: str = ONE_SVD
    path_terms: PathTerms | None = None
    annealed: AnnealedGrowth | None = None
    state_free: bool | None = None
    lyapunov: LyapunovSummary | None = None
    log10_norm_final: Mapping[str, RunValues] = field(default_factory=dict)

    def certified_singular_values(self) -> dict[int, np.ndarray]:
        """``{lag: (runs, r)}`` with every value that is not certified set to NaN (all values
        are kept for results that predate certification: :attr:`singular_values_method`)."""
        out = {}
        for lag, v in self.log10_singular_values.items():
            mask = self.singular_values_certified.get(lag)
            arr = np.asarray(v, dtype=float)
            out[lag] = arr if mask is None else np.where(np.asarray(mask, bool), arr, np.nan)
        return out

    def uncertified_count(self) -> tuple[int, int]:
        """``(uncertified, total)`` singular values over every lag and run."""
        bad = total = 0
        for lag, v in self.log10_singular_values.items():
            mask = self.singular_values_certified.get(lag)
            total += int(np.size(v))
            bad += int(np.size(v)) if mask is None else int(np.size(mask) - np.sum(mask))
        return bad, total

    def largest_lyapunov(self) -> tuple[float, float] | None:
        """The largest Lyapunov exponent in decades per step: mean over runs and its standard
        error over runs (``std / sqrt(runs)``); None without exponents or with a run whose
        product reached exactly zero."""
        if self.lyapunov_exponents is None or not np.size(self.lyapunov_exponents):
            return None
        top = np.asarray(self.lyapunov_exponents, dtype=float)[:, 0] / math.log(10.0)
        if not np.isfinite(top).all():
            return None
        se = float(np.std(top, ddof=1) / math.sqrt(top.size)) if top.size > 1 else math.nan
        return float(np.mean(top)), se

    @property
    def lags(self) -> np.ndarray:
        """``0..T``."""
        return np.arange(self.steps + 1)

    def quantity(self, name: str, path: str = "full") -> Band | None:
        """The band of a lag-indexed quantity by name (``path`` picks a path's chain)."""
        if path != "full":
            return self.paths.get(path) if name == "log10_spectral_norm" else None
        value = getattr(self, name, None)
        return value if isinstance(value, Band) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "steps": self.steps,
            "batch": self.batch,
            "runs": self.runs,
            "lags": list(range(self.steps + 1)),
            "quantiles": list(self.quantiles),
            "init": dict(self.init),
            "log10_spectral_norm": self.log10_spectral_norm.to_dict(),
            "log10_frobenius_norm": self.log10_frobenius_norm.to_dict(),
            "log10_spectral_norm_hidden": self.log10_spectral_norm_hidden.to_dict(),
            "paths": {p: b.to_dict() for p, b in self.paths.items()},
            "log10_singular_values": {
                str(k): v for k, v in sorted(self.log10_singular_values.items())
            },
            "lyapunov_exponents": self.lyapunov_exponents,
            "decay_rate": self.decay_rate.to_dict(),
            "pascanu": self.pascanu.to_dict() if self.pascanu else None,
            "meanfield": self.meanfield.to_dict() if self.meanfield else None,
            "card": self.card.to_dict() if self.card else None,
            "singular_values_certified": {
                str(k): np.asarray(v, bool)
                for k, v in sorted(self.singular_values_certified.items())
            },
            "singular_values_method": self.singular_values_method,
            "path_terms": self.path_terms.to_dict() if self.path_terms else None,
            "annealed": self.annealed.to_dict() if self.annealed else None,
            "state_free": self.state_free,
            "lyapunov": self.lyapunov.to_dict() if self.lyapunov else None,
            "log10_norm_final": {p: v.to_dict() for p, v in self.log10_norm_final.items()},
        }
        if self.log10_gradient_norm is not None:
            out["log10_gradient_norm"] = self.log10_gradient_norm.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: Where, version: int) -> CellSummary:
        d = mapping(data, where)
        if version == 1:
            levels = levels_of(d)
        else:
            qs = [
                as_float(v, where.at("quantiles"))
                for v in as_list(get(d, "quantiles", where), where)
            ]
            if len(qs) != 2 or any(q is None for q in qs):
                raise where.at("quantiles").fail("expected [lower, upper]")
            levels = (float(qs[0]), float(qs[1]))  # type: ignore[arg-type]
        v1 = levels if version == 1 else None

        def band(key: str) -> Band:
            return Band.from_dict(get(d, key, where), where.at(key), v1)

        sv: dict[int, np.ndarray] = {}
        for k, v in mapping(d.get("log10_singular_values") or {}, where).items():
            wk = where.at("log10_singular_values").at(k)
            try:
                sv[int(k)] = as_array(v, wk, 2)
            except ValueError:
                raise wk.fail("expected an integer lag") from None
        cert: dict[int, np.ndarray] = {}
        for k, v in mapping(d.get("singular_values_certified") or {}, where).items():
            wk = where.at("singular_values_certified").at(k)
            try:
                lag = int(k)
            except ValueError:
                raise wk.fail("expected an integer lag") from None
            mask = as_array(v, wk, 2) > 0.5
            if lag not in sv or mask.shape != sv[lag].shape:
                raise wk.fail("expected the shape of the singular values at that lag")
            cert[lag] = mask
        lyap = d.get("lyapunov_exponents")
        return cls(
            cell=as_str(get(d, "cell", where), where.at("cell")),
            hidden_size=as_int(get(d, "hidden_size", where), where.at("hidden_size"), 1),
            input_size=as_int(get(d, "input_size", where), where.at("input_size"), 1),
            steps=as_int(get(d, "steps", where), where.at("steps"), 1),
            batch=as_int(get(d, "batch", where), where.at("batch"), 1),
            runs=as_int(get(d, "runs", where), where.at("runs"), 1),
            quantiles=levels,
            init=dict(mapping(d.get("init") or {}, where.at("init"))),
            log10_spectral_norm=band("log10_spectral_norm"),
            log10_frobenius_norm=band("log10_frobenius_norm"),
            log10_spectral_norm_hidden=band("log10_spectral_norm_hidden"),
            paths=band_map(d.get("paths") or {}, where.at("paths"), v1),
            log10_singular_values=sv,
            lyapunov_exponents=(
                as_array(lyap, where.at("lyapunov_exponents"), 2)
                if lyap is not None and np.size(lyap)
                else None
            ),
            log10_gradient_norm=optional(
                d, "log10_gradient_norm", where, lambda v, w: Band.from_dict(v, w, v1)
            ),
            decay_rate=DecayRate.from_dict(
                get(d, "decay_rate", where), where.at("decay_rate"), levels
            ),
            pascanu=optional(d, "pascanu", where, PascanuBound.from_dict),
            meanfield=optional(d, "meanfield", where, MeanField.from_dict),
            card=optional(d, "card", where, CellCard.from_dict),
            singular_values_certified=cert,
            singular_values_method=as_str(
                d.get("singular_values_method") or ONE_SVD, where.at("singular_values_method")
            ),
            path_terms=optional(d, "path_terms", where, PathTerms.from_dict),
            annealed=optional(d, "annealed", where, AnnealedGrowth.from_dict),
            state_free=optional(d, "state_free", where, as_bool),
            lyapunov=optional(d, "lyapunov", where, LyapunovSummary.from_dict),
            log10_norm_final={
                str(p): RunValues.from_dict(v, where.at("log10_norm_final").at(p))
                for p, v in mapping(
                    d.get("log10_norm_final") or {}, where.at("log10_norm_final")
                ).items()
            },
        )


@dataclass(frozen=True, eq=False)
class ExperimentResult(Result):
    """Per-cell summaries of an experiment, with the config and seeds that made them.

    Attributes:
        name: the experiment's name. config: the resolved config (plain data).
        seeds: the seeds. cells: ``{name: CellSummary}`` in the order the cells ran.
        gradflow_version: the version that ran it.
        run: volatile metadata (``total_s``), saved apart (:meth:`Result.save_run`).
    """

    kind = "experiment"
    schema_version = 4
    reads_versions = (1, 2, 3)

    name: str
    config: Mapping[str, Any]
    seeds: tuple[int, ...]
    cells: Mapping[str, CellSummary]
    gradflow_version: str = "unknown"

    @property
    def timing(self) -> Mapping[str, Any]:
        """The run's timings (from :attr:`run`)."""
        return self.run

    def _data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gradflow_version": self.gradflow_version,
            "config": dict(self.config),
            "seeds": list(self.seeds),
            "cells": {name: s.to_dict() for name, s in self.cells.items()},
        }

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> ExperimentResult:
        cells_w = where.at("cells")
        cells = {
            str(k): CellSummary.from_dict(v, cells_w.at(k), version)
            for k, v in mapping(get(data, "cells", where), cells_w).items()
        }
        if not cells:
            raise cells_w.fail("no cells")
        if version == 1:  # keys were sorted on save; the config keeps the order cells ran in
            order = [c for c in (data.get("config") or {}).get("cells") or [] if c in cells]
            cells = {c: cells[c] for c in [*order, *(c for c in cells if c not in order)]}
        return cls(
            name=as_str(data.get("name", "experiment"), where.at("name")),
            config=dict(mapping(data.get("config") or {}, where.at("config"))),
            seeds=tuple(
                as_int(s, where.at("seeds"), 0, 2**64)
                for s in as_list(get(data, "seeds", where), where.at("seeds"))
            ),
            cells=cells,
            gradflow_version=as_str(
                data.get("gradflow_version", "unknown"), where.at("gradflow_version")
            ),
            run=dict(data.get("timing") or {}) if version == 1 else {},
        )

    def table(self) -> str:
        """A short text table per cell: the decay rate (median and band), the norm at lag T,
        and the mean-field slope where it applies."""
        mf = any(s.meanfield or s.annealed for s in self.cells.values())
        ci = any(s.decay_rate.interval for s in self.cells.values())
        head = f"{'cell':<18} {'decay rate':>10}"
        head += f" {'95 % CI':>22}" if ci else ""
        head += f" {'band':>20} {'log10 norm @ T':>15}"
        head += f" {'mean field':>11}" if mf else ""
        lines = [head, "-" * len(head)]
        for name, s in self.cells.items():
            r = s.decay_rate
            band = f"[{_fmt(r.low)}, {_fmt(r.high)}]"
            final = float(s.log10_spectral_norm.median[-1])
            line = f"{name:<18} {_fmt(r.median):>10}"
            if ci:
                iv = r.interval
                text = f"[{_fmt(iv['low'])}, {_fmt(iv['high'])}]" if iv else "n/a"
                line += f" {text:>22}"
            line += f" {band:>20} {_fmt(final):>15}"
            if mf:
                pred = (
                    s.annealed.growth_rate
                    if s.annealed
                    else s.meanfield.predicted_slope
                    if s.meanfield
                    else None
                )
                warn = "!" if s.annealed and s.annealed.warnings else " "
                line += f" {_fmt(pred):>10}{warn}"
            lines.append(line)
        note = "\n(decay rate in decades per step; band: quantiles over runs"
        if ci:
            note += "; 95 % CI: bootstrap interval of the median, weight draws resampled"
        if any(s.annealed for s in self.cells.values()):
            note += "; mean field: annealed growth rate of E||P_k||_F^2, ! = see its warnings"
        return "\n".join(lines) + note + ")"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.4g}"

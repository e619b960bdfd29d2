"""The sweep result: grid points in grid order, each reduced to a decay rate and a regime."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import Result, Where, as_float, as_list, as_str, get, mapping, optional

REGIMES = ("vanishing", "preserved", "exploding")


@dataclass(frozen=True)
class SweepPoint:
    """One grid point.

    Attributes:
        params: ``{axis: value}``. decay_rate: median over runs, decades per step (None where
            the product is exactly zero or the rollout overflowed). decay_rate_low,
            decay_rate_high: the band at the config's quantile levels.
        log10_norm_final: median ``log10 ||ds_T/ds_0||_2``. regime: vanishing, preserved or
            exploding. predicted_slope: the mean-field slope where it applies. error: why a
            point has no rate (an overflow message).
    """

    params: Mapping[str, Any]
    decay_rate: float | None
    log10_norm_final: float | None
    regime: str
    decay_rate_low: float | None = None
    decay_rate_high: float | None = None
    predicted_slope: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "params": dict(self.params),
            "decay_rate": self.decay_rate,
            "log10_norm_final": self.log10_norm_final,
            "regime": self.regime,
        }
        for key in ("decay_rate_low", "decay_rate_high", "predicted_slope", "error"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: Where, version: int) -> SweepPoint:
        d = mapping(data, where)
        regime = as_str(get(d, "regime", where), where.at("regime"))
        if regime not in REGIMES:
            raise where.at("regime").fail(f"expected one of {', '.join(REGIMES)}, got {regime!r}")
        low, high = d.get("decay_rate_low"), d.get("decay_rate_high")
        if version == 1:  # decay_rate_q10 / decay_rate_q90 (any level)
            keys = [k for k in d if k.startswith("decay_rate_q")]
            try:
                bands = sorted(keys, key=lambda k: float(k.removeprefix("decay_rate_q")))
            except ValueError:
                raise where.fail("decay_rate_q<level> keys must name their level") from None
            if len(bands) == 2:
                low, high = d[bands[0]], d[bands[1]]
        return cls(
            params=dict(mapping(get(d, "params", where), where.at("params"))),
            decay_rate=as_float(d.get("decay_rate"), where.at("decay_rate")),
            log10_norm_final=as_float(d.get("log10_norm_final"), where.at("log10_norm_final")),
            regime=regime,
            decay_rate_low=as_float(low, where.at("decay_rate_low")),
            decay_rate_high=as_float(high, where.at("decay_rate_high")),
            predicted_slope=as_float(d.get("predicted_slope"), where.at("predicted_slope")),
            error=optional(d, "error", where, as_str),
        )


@dataclass(frozen=True)
class SweepResult(Result):
    """The points of a sweep in grid order, with the config that made them.

    Attributes:
        name: the sweep's name. config: the resolved sweep config (plain data).
        axes: ``{axis: values}`` in grid order (the last axis varies fastest).
        points: :class:`SweepPoint` s, last axis fastest.
        gradflow_version: the version that ran it.
        run: volatile metadata: ``total_s``, points ``evaluated`` and ``reused``.
    """

    kind = "sweep"
    schema_version = 2
    reads_versions = (1,)

    name: str
    config: Mapping[str, Any]
    axes: Mapping[str, tuple[Any, ...]]
    points: tuple[SweepPoint, ...]
    gradflow_version: str = "unknown"
    tol: float | None = field(default=None)

    @property
    def timing(self) -> Mapping[str, Any]:
        return self.run

    @property
    def evaluated(self) -> int:
        return int(self.run.get("evaluated", 0))

    @property
    def reused(self) -> int:
        return int(self.run.get("reused", 0))

    def _data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gradflow_version": self.gradflow_version,
            "config": dict(self.config),
            "axes": {a: list(v) for a, v in self.axes.items()},
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> SweepResult:
        axes_w = where.at("axes")
        axes = {
            str(a): tuple(as_list(v, axes_w.at(a)))
            for a, v in mapping(get(data, "axes", where), axes_w).items()
        }
        if not axes:
            raise axes_w.fail("no axes")
        pts_w = where.at("points")
        points = tuple(
            SweepPoint.from_dict(p, pts_w.at(i), version)
            for i, p in enumerate(as_list(get(data, "points", where), pts_w))
        )
        size = 1
        for v in axes.values():
            size *= len(v)
        if len(points) != size:
            raise pts_w.fail(f"expected {size} points for the axes, got {len(points)}")
        for i, p in enumerate(points):
            if set(p.params) != set(axes):
                raise pts_w.at(i).fail(f"params must name the axes {', '.join(axes)}")
        return cls(
            name=as_str(data.get("name", "sweep"), where.at("name")),
            config=dict(mapping(data.get("config") or {}, where.at("config"))),
            axes=axes,
            points=points,
            gradflow_version=as_str(data.get("gradflow_version", "unknown"), where),
            run=dict(data.get("timing") or {}) if version == 1 else {},
        )

    def regime_counts(self) -> dict[str, int]:
        counts = Counter(p.regime for p in self.points)
        return {r: counts.get(r, 0) for r in REGIMES}

    def table(self) -> str:
        """Regime counts, and for one or two axes the grid of decay rates."""
        c = self.regime_counts()
        lines = [
            f"{len(self.points)} points: {c['vanishing']} vanishing, {c['preserved']} "
            f"preserved, {c['exploding']} exploding"
        ]
        names = list(self.axes)
        if len(names) > 2:
            return lines[0]
        letter = {"vanishing": "v", "preserved": "p", "exploding": "e"}
        rows = self.axes[names[0]]
        cols: tuple[Any, ...] = self.axes[names[1]] if len(names) == 2 else (None,)
        width = 12
        head = f"{names[0]:>14} | " + (
            "".join(f"{_short(v):>{width}}" for v in cols) if len(names) == 2 else "decay rate"
        )
        lines += [f"{'':>14}   {names[1]}" if len(names) == 2 else "", head, "-" * len(head)]
        it = iter(self.points)
        for r in rows:
            cells = []
            for _ in cols:
                p = next(it)
                rate = "n/a" if p.decay_rate is None else f"{p.decay_rate:+.3g}"
                cells.append(f"{rate + ' ' + letter[p.regime]:>{width}}")
            lines.append(f"{_short(r):>14} | " + "".join(cells))
        lines.append("(decades per step; v vanishing, p preserved, e exploding)")
        return "\n".join(line for line in lines if line)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

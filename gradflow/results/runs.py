"""One number per run of an experiment cell, with the weight draw each run went through.

A cell of an experiment runs ``draws x sequences``: every seed draws the weights once and
sends ``B`` sequences through them. A statistic over the runs (the median decay rate, the
median log10 norm at ``k = T``) is uncertain mostly because of the weight draws; its interval
resamples the draws, then the sequences within each
(:func:`gradflow.analysis.uncertainty.run_interval`). :class:`RunValues` keeps what a reader
needs to recompute that interval: each run's value, its draw, and the interval itself.

Examples:
    >>> import numpy as np
    >>> rv = RunValues(np.array([-0.2, -0.3]), np.array([0, 1]))
    >>> rv.to_dict()["draws"], rv.interval is None
    ([0, 1], True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Where, as_array, as_int, as_list, get, mapping


@dataclass(frozen=True, eq=False)
class RunValues:
    """Per-run values of one cell and the bootstrap interval of their median.

    Attributes:
        values: ``(R,)`` float64, one value per run, ordered by draw (by seed) and, within a
            draw, by sequence; NaN where a run has no finite value (a product exactly zero at
            some lag: ``-inf`` in memory, ``null`` in JSON).
        draws: ``(R,)`` int, the weight draw of each run, named by its seed (one of
            :attr:`ExperimentResult.seeds <gradflow.results.ExperimentResult.seeds>`).
        interval: the 95 % percentile-bootstrap interval of the median
            (:meth:`gradflow.analysis.uncertainty.Interval.to_dict`: ``estimate``, ``low``,
            ``high``, ``level``, ``draws`` (runs), ``statistic``, ``resamples`` and, for a
            two-stage resampling, ``groups``), or None where none was computed (fewer than two
            runs, or a run without a finite value).
    """

    values: np.ndarray
    draws: np.ndarray
    interval: Mapping[str, Any] | None = None

    @property
    def low(self) -> float | None:
        """The interval's lower end (None without an interval)."""
        return None if self.interval is None else float(self.interval["low"])

    @property
    def high(self) -> float | None:
        """The interval's upper end (None without an interval)."""
        return None if self.interval is None else float(self.interval["high"])

    @property
    def n_draws(self) -> int:
        """The number of weight draws among the runs."""
        return int(np.unique(self.draws).size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": np.asarray(self.values, dtype=float),
            "draws": [int(d) for d in self.draws],
            "interval": dict(self.interval) if self.interval is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> RunValues:
        d = mapping(data, where)
        values = as_array(get(d, "values", where), where.at("values"), 1)
        wd = where.at("draws")
        draws = np.array([as_int(v, wd, 0, 2**64) for v in as_list(get(d, "draws", where), wd)])
        if draws.shape != values.shape:
            raise wd.fail(f"expected one draw per value: {draws.size} for {values.size}")
        iv = d.get("interval")
        interval = None
        if iv is not None:
            interval = dict(mapping(iv, where.at("interval")))
            for key in ("estimate", "low", "high"):
                value = get(interval, key, where.at("interval"))
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise where.at("interval").at(key).fail("expected a number")
        return cls(values=values, draws=draws, interval=interval)

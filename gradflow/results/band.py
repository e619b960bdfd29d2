"""A quantile band: the median and a lower and upper quantile, which knows its own levels.

Consumers read ``band.low``, ``band.median``, ``band.high`` and ``band.levels``; no consumer
spells a level in a key (``q10``/``q90``), so any ``quantiles = [lo, hi]`` works everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Where, as_array, as_float, as_list, get, mapping


def level_name(level: float) -> str:
    """``q10`` for 0.1, ``q5`` for 0.05, ``median`` for 0.5: a label for tables."""
    return "median" if level == 0.5 else f"q{100 * level:g}"


@dataclass(frozen=True, eq=False)
class Band:
    """Lower quantile, median and upper quantile of one quantity over runs.

    Attributes:
        levels: ``(lo, 0.5, hi)``, the quantile levels of ``low``, ``median``, ``high``.
        low: the lower quantile (an array over lags, or a scalar array).
        median: the median.
        high: the upper quantile.
    """

    levels: tuple[float, float, float]
    low: np.ndarray
    median: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, quantiles: tuple[float, float], axis: int = 1) -> Band:
        """The band of ``values`` along ``axis`` (linear interpolation).

        A product that reached exactly zero has ``log10 = -inf``; where interpolating next to
        it is undefined the nearest order statistic is taken (``-inf``, ``null`` in JSON).
        """
        qs = [quantiles[0], 0.5, quantiles[1]]
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            out = np.quantile(values, qs, axis=axis)
        bad = np.isnan(out)
        if bad.any():
            out[bad] = np.quantile(values, qs, axis=axis, method="nearest")[bad]
        return cls((qs[0], 0.5, qs[2]), out[0], out[1], out[2])

    @classmethod
    def of_finite(cls, values: np.ndarray, quantiles: tuple[float, float], axis: int = 1) -> Band:
        """As :meth:`of`, ignoring NaN (an all-NaN slice gives NaN quietly)."""
        qs = [quantiles[0], 0.5, quantiles[1]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(np.asarray(values, dtype=float), qs, axis=axis)
        return cls((qs[0], 0.5, qs[2]), q[0], q[1], q[2])

    @property
    def label(self) -> str:
        """``q10–q90`` for the default levels."""
        return f"{level_name(self.levels[0])}\u2013{level_name(self.levels[2])}"

    @property
    def percent(self) -> str:
        """``10%–90%`` for the default levels."""
        return f"{self.levels[0]:.0%}\u2013{self.levels[2]:.0%}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": list(self.levels),
            "low": self.low,
            "median": self.median,
            "high": self.high,
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where, levels: tuple[float, float] | None = None) -> Band:
        """A band from its dict; ``levels`` reads the version-1 shape ``{q10, median, q90}``."""
        d = mapping(data, where)
        if "levels" not in d and levels is not None:  # schema version 1
            lo, hi = level_name(levels[0]), level_name(levels[1])
            d = {"levels": [levels[0], 0.5, levels[1]], "low": get(d, lo, where),
                 "median": get(d, "median", where), "high": get(d, hi, where)}  # fmt: skip
        lv = as_list(get(d, "levels", where), where.at("levels"))
        if len(lv) != 3:
            raise where.at("levels").fail(f"expected [low, 0.5, high], got {lv}")
        got = [as_float(v, where.at("levels")) for v in lv]
        if any(v is None for v in got) or not 0 < got[0] <= 0.5 <= got[2] < 1:  # type: ignore[operator]
            raise where.at("levels").fail(f"expected levels in (0, 0.5] and [0.5, 1), got {lv}")
        arrays = [as_array(get(d, k, where), where.at(k)) for k in ("low", "median", "high")]
        if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
            raise where.fail("low, median and high differ in shape")
        return cls((float(got[0]), 0.5, float(got[2])), *arrays)  # type: ignore[arg-type]


def band_map(data: Any, where: Where, levels: tuple[float, float] | None) -> dict[str, Band]:
    """``{name: Band}`` from a table of bands."""
    return {str(k): Band.from_dict(v, where.at(k), levels) for k, v in mapping(data, where).items()}


def levels_of(data: Mapping[str, Any]) -> tuple[float, float]:
    """The ``(lo, hi)`` quantiles a version-1 cell summary stores as ``quantiles``."""
    qs = data.get("quantiles") or [0.1, 0.5, 0.9]
    return float(qs[0]), float(qs[-1])

r"""Percentile-bootstrap confidence intervals over weight draws.

A claim's number is a statistic (the median, the mean, a fraction) of values measured once per
weight draw. Its uncertainty comes from resampling the draws with replacement: ``R`` bootstrap
samples of the ``n`` values, the statistic of each, and the ``(1 - level)/2`` and
``(1 + level)/2`` quantiles of those ``R`` statistics (the *percentile* interval, [efron1993]
ch. 13). The resampling uses a fixed seed, so an interval is the same on every run.

With few draws the percentile interval is a little too narrow: for the mean of ``n`` normal
values it covers about ``1 - level - O(1/n)`` (93 % instead of 95 % at ``n = 10`` to 20); the
tests check this against the t-interval and by simulation.

Values that come in groups (several sequences through the same weights) are not independent:
resampling them one by one ignores the variation between weight draws and gives too narrow an
interval. With ``groups``, each bootstrap sample resamples both stages ([davison1997] sec.
3.8, the two-stage or cluster bootstrap): the groups with replacement, then the values within
each chosen group with replacement. :func:`run_interval` does this for the per-run values
of an experiment cell (runs grouped by weight draw), and :func:`ratio_interval` gives the
interval of a ratio of two medians, each sample resampled independently (e.g. "gradients fade
4 times more slowly in the LSTM than in the RNN").

Examples:
    >>> ci = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    >>> ci.estimate, ci.draws, ci.low < 5.5 < ci.high
    (5.5, 10, True)

References:
    [efron1993] Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13.
    [davison1997] Davison & Hinkley (1997), Bootstrap Methods and their Application, sec. 3.8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import UsageError

#: Bootstrap resamples per interval.
RESAMPLES = 2000
#: Confidence level of every interval.
LEVEL = 0.95
#: Seed of the resampling (fixed: an interval is deterministic).
SEED = 20130
#: The fewest draws a claim's interval is computed from.
MIN_DRAWS = 10

_STATISTICS: dict[str, Callable[..., Any]] = {"median": np.median, "mean": np.mean}


@dataclass(frozen=True)
class Interval:
    """A statistic of per-draw values with its percentile-bootstrap interval.

    Attributes:
        estimate: the statistic of all draws. low, high: the interval's ends.
        level: the confidence level. draws: the number of values (finite ones).
        statistic: ``median``, ``mean``, or ``ratio of medians`` (:func:`ratio_interval`).
        resamples: bootstrap samples drawn.
        groups: the number of groups of a two-stage resampling (the numerator's for a
            ratio); None for a one-stage resampling.
    """

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    draws: int = 0
    statistic: str = "median"
    resamples: int = RESAMPLES
    groups: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "draws": self.draws,
            "statistic": self.statistic,
            "resamples": self.resamples,
        }
        if self.groups is not None:
            d["groups"] = self.groups
        return d

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high


def bootstrap_statistics(
    values: ArrayLike,
    statistic: str = "median",
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    groups: ArrayLike | None = None,
) -> tuple[np.ndarray, int | None]:
    """The ``resamples`` bootstrap statistics behind :func:`bootstrap_interval`, and the
    number of groups (None without ``groups``).

    Exposed so that a statistic of two independent samples (:func:`ratio_interval`) can
    combine their bootstrap distributions. Arguments as in :func:`bootstrap_interval`.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if statistic not in _STATISTICS:
        raise UsageError(f"unknown statistic {statistic!r}; choose median or mean")
    if resamples < 100:
        raise UsageError(f"resamples must be at least 100, got {resamples}")
    if v.size < 2:
        raise UsageError(f"a bootstrap interval needs at least 2 values, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise UsageError("the values of a bootstrap interval must be finite")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, v.size, size=(resamples, v.size))
        return np.asarray(_STATISTICS[statistic](v[idx], axis=1)), None
    return _two_stage(v, np.asarray(groups).ravel(), statistic, resamples, rng)


def bootstrap_interval(
    values: ArrayLike,
    statistic: str = "median",
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    groups: ArrayLike | None = None,
) -> Interval:
    """The percentile-bootstrap interval of ``statistic`` over the per-draw ``values``.

    Args:
        values: one number per weight draw (or per sequence, with ``groups``); non-finite
            values are refused.
        statistic: ``median`` or ``mean``.
        level: confidence level in ``(0, 1)``.
        resamples: bootstrap samples (at least 100).
        seed: seed of the resampling.
        groups: one label per value (e.g. the weight draw a sequence ran through): resample
            the groups, then the values within each chosen group ([davison1997]); at least
            2 groups.

    Returns:
        An :class:`Interval`.

    Raises:
        UsageError: fewer than two values, a non-finite value, an unknown statistic or a bad
            level.

    References:
        [efron1993].
    """
    if not 0.0 < level < 1.0:
        raise UsageError(f"level must lie in (0, 1), got {level}")
    boot, n_groups = bootstrap_statistics(
        values, statistic, resamples=resamples, seed=seed, groups=groups
    )
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(
        estimate=float(_STATISTICS[statistic](v)),
        low=float(lo),
        high=float(hi),
        level=level,
        draws=int(v.size),
        statistic=statistic,
        resamples=resamples,
        groups=n_groups,
    )


def run_interval(
    values: ArrayLike, draws: ArrayLike, *, seed: int = SEED, resamples: int = RESAMPLES
) -> Interval | None:
    """The 95 % interval of the median of per-run values, runs grouped by weight draw.

    With two or more draws the resampling has two stages (the draws, then the sequences
    within each chosen draw, [davison1997]); with one draw, the sequences alone (the interval
    then says nothing about other weight draws: :attr:`Interval.groups` is None). None when
    fewer than two runs or when a run's value is not finite (a product exactly zero has no
    finite rate: the median of such runs has no percentile interval here).

    Args:
        values: one number per run. draws: the weight draw of each run (any labels).
        seed, resamples: as in :func:`bootstrap_interval`.
    """
    runs = _runs_and_groups(values, draws)
    if runs is None:
        return None
    v, groups = runs
    return bootstrap_interval(v, groups=groups, seed=seed, resamples=resamples)


def _runs_and_groups(
    values: ArrayLike, draws: ArrayLike
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(values, groups)`` checked: one draw label per run; groups None with one draw (the
    sequences alone are resampled). None when fewer than two runs or a value is not finite."""
    v = np.asarray(values, dtype=np.float64).ravel()
    d = np.asarray(draws).ravel()
    if d.shape != v.shape:
        raise UsageError(f"draws must give one label per run: {d.size} for {v.size}")
    if v.size < 2 or not np.all(np.isfinite(v)):
        return None
    return v, (d if np.unique(d).size >= 2 else None)


def ratio_interval(
    numerator: ArrayLike,
    numerator_draws: ArrayLike,
    denominator: ArrayLike,
    denominator_draws: ArrayLike,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval | None:
    """The ratio of two medians with the percentile-bootstrap interval of that ratio.

    The two samples are resampled independently (seeds ``seed`` and ``seed + 1``), each as
    :func:`run_interval` does (its draws, then the runs within each draw); the interval is the
    quantiles of the ``resamples`` ratios of the resampled medians. A resampled denominator
    median of zero makes a ratio infinite, which the quantiles then carry to the interval's
    end (so an interval with an infinite end says: not resolved). None when either sample
    has fewer than two runs or a non-finite value, or the denominator's median is zero.

    Examples:
        >>> iv = ratio_interval([-4.0, -4.2, -3.8], [0, 1, 2], [-2.0, -2.1, -1.9], [0, 1, 2])
        >>> iv.estimate, iv.low <= 2.0 <= iv.high
        (2.0, True)
    """
    parts = []
    for i, (vals, draws) in enumerate(
        ((numerator, numerator_draws), (denominator, denominator_draws))
    ):
        runs = _runs_and_groups(vals, draws)
        if runs is None:
            return None
        v, groups = runs
        boot, n_groups = bootstrap_statistics(v, resamples=resamples, seed=seed + i, groups=groups)
        parts.append((float(np.median(v)), boot, n_groups, v.size))
    (num, bnum, gnum, nnum), (den, bden, _, nden) = parts
    if den == 0.0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = bnum / bden
    ratios = np.where(np.isnan(ratios), np.inf, ratios)
    lo, hi = np.quantile(ratios, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(
        estimate=num / den,
        low=float(lo),
        high=float(hi),
        level=level,
        draws=nnum + nden,
        statistic="ratio of medians",
        resamples=resamples,
        groups=gnum,
    )


def _two_stage(
    v: np.ndarray, groups: np.ndarray, statistic: str, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """The bootstrap statistics of the two-stage resampling, and the number of groups.

    Each sample draws ``G`` groups with replacement and, within each, as many values as the
    group holds, with replacement; unequal groups are padded with NaN (ignored by the
    NaN-aware statistic)."""
    if groups.shape != v.shape:
        raise UsageError(f"groups must give one label per value: {groups.size} for {v.size}")
    labels, inverse = np.unique(groups, return_inverse=True)
    if labels.size < 2:
        raise UsageError(f"a two-stage bootstrap needs at least 2 groups, got {labels.size}")
    sizes = np.bincount(inverse)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    width = int(sizes.max())
    g = rng.integers(0, labels.size, size=(resamples, labels.size))
    u = rng.random((resamples, labels.size, width))
    size = sizes[g][..., None]
    member = np.minimum((u * size).astype(np.intp), size - 1)
    picked = v[order][starts[g][..., None] + member]
    if np.all(sizes == width):  # equal groups: no padding, and the plain (faster) statistic
        return _STATISTICS[statistic](picked.reshape(resamples, -1), axis=1), int(labels.size)
    picked = np.where(np.arange(width) < size, picked, np.nan).reshape(resamples, -1)
    nan_stat = np.nanmedian if statistic == "median" else np.nanmean
    return nan_stat(picked, axis=1), int(labels.size)

"""The percentile bootstrap against the t-interval and by simulated coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gradflow.analysis.uncertainty import bootstrap_interval
from gradflow.errors import UsageError


def test_mean_interval_matches_the_t_interval():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 0.5, size=60)
    ci = bootstrap_interval(x, "mean", resamples=4000)
    # Reference: the t-interval mean +- t_{0.975, n-1} s / sqrt(n) (scipy.stats.t). For a
    # normal sample the percentile bootstrap is the same interval up to sqrt((n-1)/n) and the
    # t/z ratio (about 3 % narrower at n = 60) and its Monte Carlo error (about 2 % of the
    # half-width at 4000 resamples): both ends within 10 % of the half-width.
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    assert ci.estimate == pytest.approx(x.mean(), abs=1e-15)
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    assert ci.high - ci.low < 2 * half  # narrower than the t-interval, as the theory says


def test_coverage_on_simulated_draws():
    # 400 samples of 20 draws from N(0, 1): the 95 % interval of the median must contain the
    # true median 0 in about 93-95 % of them (binomial sd 1.1 % at 400 trials; the percentile
    # bootstrap undercovers slightly at n = 20). Allow 89-98 %.
    rng = np.random.default_rng(11)
    hits = sum(
        bootstrap_interval(rng.standard_normal(20), "median", resamples=500, seed=i).contains(0.0)
        for i in range(400)
    )
    assert 0.89 <= hits / 400 <= 0.98


def test_interval_is_deterministic_and_ordered():
    x = np.arange(12.0) ** 1.5
    a, b = bootstrap_interval(x), bootstrap_interval(x)
    assert a == b
    assert a.low <= a.estimate <= a.high and a.draws == 12 and a.statistic == "median"
    assert a.to_dict()["resamples"] == 2000


@pytest.mark.parametrize(
    ("values", "kw", "match"),
    [
        ([1.0], {}, "at least 2"),
        ([1.0, np.nan], {}, "finite"),
        ([1.0, 2.0], {"statistic": "mode"}, "unknown statistic"),
        ([1.0, 2.0], {"level": 1.0}, "level"),
        ([1.0, 2.0], {"resamples": 10}, "resamples"),
    ],
)
def test_bad_input_is_refused(values, kw, match):
    with pytest.raises(UsageError, match=match):
        bootstrap_interval(values, **kw)


def test_two_stage_bootstrap_keeps_the_variation_between_draws() -> None:
    # Three weight draws of 20 sequences each, the draws' levels -1, 0, 1 and the sequences
    # within a draw nearly equal. Resampling the 60 values one by one sees 60 independent
    # values and an interval about the middle draw (P(median <= -0.5) = P(Bin(60, 1/3) >= 30)
    # ~ 0.003 < 2.5 %); resampling the draws first must reach both outer draws (all three
    # resampled draws equal to -1 with probability 1/27 > 2.5 %, two of them 7/27).
    rng = np.random.default_rng(0)
    draw = np.repeat([0, 1, 2], 20)
    values = np.array([-1.0, 0.0, 1.0])[draw] + 1e-3 * rng.standard_normal(60)
    plain = bootstrap_interval(values)
    two = bootstrap_interval(values, groups=draw)
    assert -0.01 < plain.low and plain.high < 0.01 and plain.groups is None
    assert two.low < -0.99 and two.high > 0.99 and two.groups == 3
    assert two.estimate == plain.estimate == pytest.approx(np.median(values), abs=0)
    assert two.to_dict()["groups"] == 3 and "groups" not in plain.to_dict()


def test_two_stage_with_one_value_per_group_is_the_plain_bootstrap() -> None:
    # Singleton groups: resampling the groups is resampling the values, the same distribution
    # from a different random stream. The median of 30 values 1..30 has a bootstrap standard
    # deviation of about 2.7; the 2.5 % and 97.5 % quantiles of 2000 resamples agree to well
    # within one unit (one order statistic), while a two-stage sampler that failed to resample
    # the groups would give an interval of width 0.
    v = np.arange(1.0, 31.0)
    plain = bootstrap_interval(v)
    two = bootstrap_interval(v, groups=np.arange(30))
    assert abs(two.low - plain.low) <= 1.0 and abs(two.high - plain.high) <= 1.0
    assert two.high - two.low > 5.0


def test_two_stage_bootstrap_refuses_bad_groups() -> None:
    with pytest.raises(UsageError, match="at least 2 groups"):
        bootstrap_interval([1.0, 2.0, 3.0], groups=[0, 0, 0])
    with pytest.raises(UsageError, match="one label per value"):
        bootstrap_interval([1.0, 2.0, 3.0], groups=[0, 1])

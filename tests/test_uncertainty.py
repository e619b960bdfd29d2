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

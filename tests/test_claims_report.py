"""The Pascanu bound's tightness and dtype-aware check, and the claims in a report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradflow.analysis.bounds import pascanu_log10_bound, pascanu_tightness
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.initialisers import Init, initialise
from gradflow.report.summary import format_measured, measured_rows


def _tight(seed: int, n: int, dtype: str):
    rng = np.random.default_rng(seed)
    params = initialise(get_cell("rnn"), n, 2, Init(scheme="orthogonal"), rng)
    x = np.zeros((60, 1, 2))
    return params, analyze("rnn", params, x, dtype=dtype).log10_spectral_norm


@pytest.mark.parametrize("n", [16, 48])
def test_tight_bound_in_float32_is_not_flagged(n):
    # Orthogonal W with zero inputs and biases: h_t = 0, J_t = W and ||W^k|| = 1, exactly the
    # bound (sigma_max = 1). The float32 norms differ from 0 (log10) by rounding only: the
    # dtype-aware tolerance flags none, a fixed 1e-9 decades flags most lags.
    fixed = flagged = 0
    for seed in range(6):
        params, spec = _tight(seed, n, "float32")
        t = pascanu_tightness("rnn", params, spec, "float32")
        flagged += t.violations
        fixed += int(np.sum(spec[:, 0] > t.log10_bound + 1e-9))
        # the bound is 0 at every lag (sigma_max = 1 to float64 rounding)
        assert np.max(np.abs(t.log10_bound)) < 1e-12
    assert flagged == 0 and fixed > 100


def test_float64_tight_bound_holds_and_tolerance_is_stated():
    params, spec = _tight(0, 16, "float64")
    t = pascanu_tightness("rnn", params, spec)
    assert t.holds and t.violations == 0
    # tolerance: atol + (8 k + 2 n + 64) eps / ln 10 decades
    k = np.arange(61)
    np.testing.assert_allclose(
        t.tolerance, 1e-10 + (8 * k + 32 + 64) * 2.0**-52 / math.log(10), rtol=1e-12
    )


def test_slack_grows_when_the_norm_vanishes():
    rng = np.random.default_rng(1)
    params = initialise(get_cell("rnn"), 32, 4, Init(scheme="gaussian", sigma_w=0.8), rng)
    spec = analyze("rnn", params, rng.standard_normal((120, 2, 4))).log10_spectral_norm
    t = pascanu_tightness("rnn", params, spec)
    assert t.holds
    # Reference: slack = bound - norm; its growth is the bound's slope log10(sigma_max) minus
    # the norm's (least squares over k >= T/10), to 1e-9.
    bound_slope = pascanu_log10_bound("rnn", params, [1])[0]
    k = np.arange(12, 121)
    norm_slope = np.median(np.polyfit(k, spec[12:], 1)[0])
    assert t.slack_growth == pytest.approx(bound_slope - norm_slope, abs=1e-9)
    assert t.slack_growth > 0.2  # sigma_max ~ 1.6 while the norm falls


def test_measured_numbers_carry_their_intervals():
    iv = {"low": -0.31, "high": -0.27, "estimate": -0.29}
    assert format_measured("rate_full_bz0", -0.29, iv) == "−0.290 [−0.310, −0.270] decades/step"
    assert format_measured("tail_share_lag30", 0.99, {"low": 0.9, "high": 1.0}) == (
        "0.990 [0.900, 1.000]"
    )
    assert format_measured("fraction_clipped_per_sequence", 0.5) == "50 %"
    assert format_measured("pascanu_slack_lag200", 93.71) == "93.7 decades"
    rows = measured_rows({"b_lag100": -3.0, "a": 1.5}, {"a": {"low": 1.0, "high": 2.0}})
    assert rows == [("a", "1.5 [1, 2]"), ("b_lag100", "1.0 × 10⁻³")]
    # a log10 key is shown as its power, under the name of the quantity itself
    assert measured_rows({"log10_gradient_norm": 5.2}) == [("gradient_norm", "1.6 × 10⁵")]


def test_claim_b_additive_share_is_the_decompositions():
    # Claim (b) reads the additive share log10 ||S_0||_F / ||P_k||_F from the engine's pure
    # additive chain; it must be the j = 0 term of the exact expansion P_k = sum_j S_j
    # (gradflow.analysis.exact.path_decomposition), to 1e-9 in log10.
    from gradflow.analysis.exact import path_decomposition

    rng = np.random.default_rng(5)
    params = initialise(get_cell("lstm"), 4, 3, Init(forget_bias=1.0), rng)
    x = rng.standard_normal((30, 2, 3))
    res = analyze("lstm", params, x, paths=True)
    ours = res.paths["additive"]["log10_frobenius_norm"] - res.log10_frobenius_norm
    dec = path_decomposition("lstm", params, x, [10, 30])
    np.testing.assert_allclose(ours[[10, 30]], dec.log10_additive_share, atol=1e-9)

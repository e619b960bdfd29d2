"""Issue 16: a singular-value figure draws no value it cannot vouch for.

An analysis result (``gradflow analyze --singular-lags``) holds the certified product SVD's
values and their ``singular_certified`` mask: the figure draws the certified ones. An old
result (schema version 1: one SVD of the accumulated product, no mask; its deep values are
rounding noise) falls back to the values that SVD resolves
(:func:`gradflow.plots.data.resolved_by_one_svd`). Reference: the certified values of
:func:`gradflow.prodsvd.product_singular_values` on the same Jacobians (themselves checked
against 80+-digit mpmath products in tests/test_prodsvd.py to 1e-8 in log10). For the old
files every drawn value agrees with the reference to 1e-6 in log10 (the bound behind the
rule allows 4e-4 decades; measured: at most 3e-8 over rnn, lstm, gru, mgu and rnn-relu,
n = 16 and 24, lags 1..400); the noise the rule leaves out is off by more than a decade.
"""

from __future__ import annotations

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow import Init, analyze, get_cell, initialise
from gradflow.engine import state_jacobians
from gradflow.plots import plot_singular_values
from gradflow.plots.data import resolved_by_one_svd
from gradflow.prodsvd import product_singular_values
from gradflow.results import AnalysisResult

LAGS = (10, 100, 300)


def _drawn(res: AnalysisResult) -> list[np.ndarray]:
    fig, ax = plt.subplots()
    try:
        plot_singular_values(res, ax, legend=False)
        return [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    finally:
        plt.close(fig)


def _one_svd(J: np.ndarray, lag: int) -> np.ndarray:
    """The old engine's values: one SVD of the renormalised product (sequence 0), at the
    product's scale (log10 of the Frobenius scales carried)."""
    T, m = J.shape[0], J.shape[-1]
    P, scale = np.eye(m), 0.0
    for j in range(1, lag + 1):
        P = P @ J[T - j, 0]
        f = np.linalg.norm(P)
        P, scale = P / f, scale + np.log10(f)
    with np.errstate(divide="ignore"):
        return np.asarray(np.log10(np.linalg.svd(P, compute_uv=False)) + scale)


@pytest.mark.parametrize(("name", "init"), [("rnn", Init("gaussian")), ("gru", Init("gaussian"))])
def test_analysis_figure_draws_only_certified_singular_values(name: str, init: Init) -> None:
    cell = get_cell(name)
    params = initialise(cell, 12, 4, init, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((300, 1, 4))
    res = analyze(cell, params, x, singular_lags=LAGS)
    J = state_jacobians(cell, params, x)
    exact = product_singular_values(J, LAGS)
    assert res.singular_certified is not None
    drawn = _drawn(res)
    assert len(drawn) == len(LAGS)
    for i, (lag, y) in enumerate(zip(LAGS, drawn, strict=True)):
        mask = res.singular_certified[lag][0]
        # the drawn values are exactly the certified ones (the same computation as the
        # reference: bit for bit)
        np.testing.assert_array_equal(np.isfinite(y), mask)
        np.testing.assert_array_equal(y[mask], exact.log10_singular_values[i, 0][mask])
    # a mask that leaves a value out is honoured (NaN: not drawn)
    some = {k: v.copy() for k, v in res.singular_certified.items()}
    some[100][0, -1] = False
    y = _drawn(replace(res, singular_certified=some))[1]
    assert np.isnan(y[-1]) and np.isfinite(y[:-1]).all()

    # an old file (no mask, one SVD): only the values that SVD resolves are drawn
    old = replace(
        res,
        log10_singular_values={k: _one_svd(J, k)[None] for k in LAGS},
        singular_certified=None,
    )
    noise_left_out = 0
    for i, (lag, y) in enumerate(zip(LAGS, _drawn(old), strict=True)):
        one_svd = old.log10_singular_values[lag][0]
        ref, certified = exact.log10_singular_values[i, 0], exact.certified[i, 0]
        assert certified.all()  # the reference is exact at every index here
        shown = np.isfinite(y)
        assert shown[0]  # the largest value is always drawn
        np.testing.assert_array_equal(y[shown], one_svd[shown])  # nothing recomputed
        np.testing.assert_allclose(y[shown], ref[shown], rtol=0, atol=1e-6)
        noise_left_out += int(np.sum(~shown & (np.abs(one_svd - ref) > 1.0)))
    # without the rule the figure would draw values off by more than a decade
    assert noise_left_out > 0


@settings(max_examples=40, deadline=None)
@given(
    top=st.floats(-300, 300),
    gaps=st.lists(st.floats(0, 40), min_size=1, max_size=12),
    lag=st.integers(1, 10**5),
    m=st.integers(1, 4096),
)
def test_the_rule_keeps_exactly_the_values_its_bound_resolves(
    top: float, gaps: list[float], lag: int, m: int
) -> None:
    """A value is kept iff ``lag m eps 10^(top - value) <= 1e-3`` (the first-order bound on
    one SVD's error, relative to the value); the largest is always kept, non-finite never."""
    values = top - np.cumsum([0.0, *gaps])
    keep = resolved_by_one_svd(values[None, :], lag, m)[0]
    bound = np.log10(lag * m * np.finfo(float).eps) + (values[0] - values)
    decided = np.abs(bound - np.log10(1e-3)) > 1e-9  # away from the boundary's rounding
    np.testing.assert_array_equal(keep[decided], (bound <= np.log10(1e-3))[decided])
    assert keep[0] or np.log10(lag * m * np.finfo(float).eps) > -3
    with_inf = np.append(values, -np.inf)
    assert not resolved_by_one_svd(with_inf[None, :], lag, m)[0, -1]

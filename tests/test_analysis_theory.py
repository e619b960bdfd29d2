"""Theory against references: quadrature vs mpmath, the mean-field fixed point vs an mpmath
root, the Pascanu bound vs the engine's measured norms, mean-field slopes vs measured decay,
decay-rate fits vs closed forms, and the citation table vs every key the package cites.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow
from gradflow.analysis.bounds import (
    elman_structure,
    gamma_for,
    pascanu_check,
    pascanu_log10_bound,
)
from gradflow.analysis.decay import (
    decay_rate,
    default_window,
    quantile_band,
    summarise,
    summarise_rates,
)
from gradflow.analysis.meanfield import (
    gate_log10_slope,
    gaussian_expectation,
    meanfield_prediction,
    predicted_log10_slope,
    tanh_fixed_point,
)
from gradflow.cells import CATALOGUE, Affine, Cell, Elementwise, get_cell, sigmoid
from gradflow.citations import BIBTEX, cite, text
from gradflow.engine import analyze, rollout
from gradflow.errors import UsageError
from gradflow.initialisers import Init, initialise, make_inputs, memory_gates

mp.mp.dps = 30


def _mp_gauss(f, mean: float = 0.0, var: float = 1.0) -> mp.mpf:
    """E[f(mean + sqrt(var) z)] by mpmath.quad at 30 digits (breakpoints where f bends)."""
    s = mp.sqrt(mp.mpf(var))
    m = mp.mpf(mean)
    pts = [-mp.inf, -8, -4, -2, -1, 0, 1, 2, 4, 8, mp.inf]
    return mp.quad(lambda z: f(m + s * z) * mp.exp(-z * z / 2), pts) / mp.sqrt(2 * mp.pi)


# -- quadrature ---------------------------------------------------------------------------
@pytest.mark.parametrize("var", [1e-4, 0.3, 1.0, 5.0, 30.0, 200.0])
def test_gaussian_expectation_vs_mpmath(var: float) -> None:
    # reference: mpmath.quad at 30 digits; trapezoid error budget 1e-13 (measured ~1e-16)
    got = gaussian_expectation(lambda u: np.tanh(u) ** 2, 0.0, var)
    assert abs(got - float(_mp_gauss(lambda u: mp.tanh(u) ** 2, 0, var))) < 1e-13
    got = gaussian_expectation(lambda u: (1 - np.tanh(u) ** 2) ** 2, 0.0, var)
    assert abs(got - float(_mp_gauss(lambda u: mp.sech(u) ** 4, 0, var))) < 1e-13


@pytest.mark.parametrize(
    ("mean", "var", "keeps"),
    [(0.0, 1.0, True), (2.0, 0.5, True), (-1.0, 3.0, False), (4.0, 10.0, True)],
)
def test_gate_slope_vs_mpmath(mean: float, var: float, keeps: bool) -> None:
    sign = 1 if keeps else -1
    ref = _mp_gauss(lambda a: mp.log10(1 / (1 + mp.exp(-sign * a))), mean, var)
    # reference: mpmath.quad of E[log10 sigmoid(+-a)] at 30 digits; tolerance 1e-13
    assert abs(gate_log10_slope(mean, var, keeps) - float(ref)) < 1e-13


# -- mean-field fixed point ---------------------------------------------------------------
def _mp_fixed_point(sw: float, su: float, sb: float, v: float) -> tuple[float, float]:
    w2 = mp.mpf(sw) ** 2
    c = mp.mpf(su) ** 2 * v + mp.mpf(sb) ** 2

    def g(q):
        return w2 * _mp_gauss(lambda u: mp.tanh(u) ** 2, 0, q) + c - q

    q = mp.findroot(g, (mp.mpf(c) / 2, w2 + c + 1), solver="anderson")
    chi = w2 * _mp_gauss(lambda u: mp.sech(u) ** 4, 0, q)
    return float(q), float(chi)


@pytest.mark.parametrize(
    ("sw", "su", "sb", "v"),
    [
        (0.5, 1.0, 0.0, 1.0),
        (1.0, 1.0, 0.3, 1.0),
        (1.5, 0.5, 0.2, 2.0),
        (2.5, 1.0, 0.0, 1.0),
        (3.0, 0.0, 0.5, 0.0),
    ],
)
def test_tanh_fixed_point_vs_mpmath(sw: float, su: float, sb: float, v: float) -> None:
    q, chi = tanh_fixed_point(sw, su, sb, v)
    q_ref, chi_ref = _mp_fixed_point(sw, su, sb, v)
    # reference: mpmath findroot of q = sw^2 E[tanh^2(sqrt(q) z)] + su^2 v + sb^2, 30 digits
    assert abs(q - q_ref) < 1e-10
    assert abs(chi - chi_ref) < 1e-10
    assert predicted_log10_slope(sw, su, sb, v) == pytest.approx(0.5 * math.log10(chi), abs=0)


@pytest.mark.parametrize("sw", [0.3, 1.0, 1.5])
def test_fixed_point_without_input_is_zero(sw: float) -> None:
    # the zero state stays zero: q* = 0 and chi = sigma_w^2 * tanh'(0)^2 = sigma_w^2, exactly
    assert tanh_fixed_point(sw) == (0.0, sw**2)


def test_critical_point() -> None:
    # known critical point (Poole et al. 2016): sigma_w = 1, sigma_b = 0, no input: chi = 1
    assert tanh_fixed_point(1.0, 0.0, 0.0, 0.0) == (0.0, 1.0)
    assert predicted_log10_slope(1.0) == 0.0


def test_meanfield_prediction_dispatch() -> None:
    p = meanfield_prediction("rnn", Init("gaussian", 1.2, 0.7, 0.1), 64, 8, 2.0)
    q, chi = tanh_fixed_point(1.2, 0.7, 0.1, 2.0)
    assert (p.q_star, p.chi, p.quantity) == (
        pytest.approx(q, abs=1e-14),
        pytest.approx(chi, abs=1e-14),
        "frobenius",
    )
    # torch: U(-1/sqrt n, 1/sqrt n) has variance 1/(3n): sigma_w^2 = 1/3, sigma_u^2 = d/(3n),
    # two bias vectors: sigma_b^2 = 2/(3n)
    t = meanfield_prediction("rnn", Init("torch"), 48, 6, 1.0)
    q, chi = tanh_fixed_point(math.sqrt(1 / 3), math.sqrt(6 / 144), math.sqrt(2 / 144), 1.0)
    assert t.chi == pytest.approx(chi, abs=1e-13)
    relu = meanfield_prediction("rnn-relu", Init("gaussian", 1.2), 64, 8, 1.0)
    assert relu.chi == pytest.approx(0.72, abs=1e-15)  # chi = sigma_w^2 / 2 for ReLU
    lstm = meanfield_prediction("lstm", Init("gaussian", forget_bias=1.0), 64, 8, 1.0)
    assert (lstm.gate, lstm.gate_mean, lstm.quantity) == ("a_f", 1.0, "additive")
    assert lstm.predicted_slope == pytest.approx(gate_log10_slope(1.0, lstm.gate_var), abs=0)
    for cell, init in [
        ("lstm-nofg", Init("gaussian")),
        ("indrnn", Init("gaussian")),
        ("rnn", Init("identity")),
        ("lstm", Init(chrono_tmax=10.0)),
        ("rnn-relu", Init("gaussian", sigma_w=1.5)),
    ]:
        with pytest.raises(UsageError):
            meanfield_prediction(cell, init, 8, 2, 1.0)


# -- Pascanu bound ------------------------------------------------------------------------
def _sigmoid_elman() -> Cell:
    a = sp.Symbol("pre", real=True)
    return Cell(
        name="sigmoid-rnn",
        state=("s",),
        nodes=(Affine("pre", (("U", "x"), ("W", "s")), ("b",)), Elementwise("s_new", sigmoid(a))),
        update=(("s", "s_new"),),
    )


def test_gamma_and_structure() -> None:
    assert gamma_for("rnn") == 1.0 and gamma_for("rnn-relu") == 1.0
    assert gamma_for(_sigmoid_elman()) == 0.25  # sup sigmoid' = 1/4
    assert elman_structure("rnn") == ("tanh", "W_hh")
    for name in sorted(set(CATALOGUE) - {"rnn", "rnn-relu"}):
        with pytest.raises(UsageError, match="Elman-type"):
            pascanu_log10_bound(name, {}, [1])


def test_bound_errors() -> None:
    with pytest.raises(UsageError, match="lack the recurrent weight"):
        pascanu_log10_bound("rnn", {}, [1])
    with pytest.raises(UsageError, match="is zero"):
        pascanu_log10_bound("rnn", {"W_hh": np.zeros((3, 3))}, [1])
    with pytest.raises(UsageError, match="square"):
        pascanu_log10_bound("rnn", {"W_hh": np.zeros((3, 2))}, [1])
    with pytest.raises(UsageError, match=">= 0"):
        pascanu_log10_bound("rnn", {"W_hh": np.eye(3)}, [-1])


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["rnn", "rnn-relu", "sigmoid"]),
    scheme=st.sampled_from(["gaussian", "orthogonal", "torch"]),
    sigma_w=st.floats(0.3, 3.0),
    sigma_b=st.floats(0.0, 1.0),
    scale=st.floats(0.0, 2.0),
    n=st.integers(1, 16),
    steps=st.integers(1, 50),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_pascanu_bound_holds(name, scheme, sigma_w, sigma_b, scale, n, steps, batch, seed):
    cell = _sigmoid_elman() if name == "sigmoid" else get_cell(name)
    rng = np.random.default_rng(seed)
    params = initialise(cell, n, 2, Init(scheme, sigma_w=sigma_w, sigma_b=sigma_b), rng)
    x = make_inputs("gaussian", steps, batch, 2, rng, scale=scale)
    res = analyze(cell, params, x)
    bound = pascanu_log10_bound(cell, params, res.lags)
    # submultiplicativity makes this exact; 1e-12 absorbs rounding in the measured log10 norm
    assert np.all(res.log10_spectral_norm <= bound[:, None] + 1e-12)
    assert pascanu_check(cell, params, res.log10_spectral_norm, atol=1e-12)[1]


def test_bound_is_tight_at_zero_state() -> None:
    # no input, no bias: h stays 0, tanh'(0) = 1, J_t = W_hh, so lag 1 attains the bound exactly
    rng = np.random.default_rng(3)
    params = initialise(get_cell("rnn"), 12, 2, Init("gaussian", sigma_w=1.4), rng)
    res = analyze("rnn", params, np.zeros((6, 1, 2)))
    bound = pascanu_log10_bound("rnn", params, res.lags)
    # reference: ||W_hh||_2 by numpy's SVD. The engine's subspace iteration stops at a relative
    # 1e-11 (gradflow.engine.SPECTRAL_RTOL), about 4e-12 in log10: tolerance 1e-10.
    assert abs(res.log10_spectral_norm[1, 0] - bound[1]) < 1e-10
    assert np.all(res.log10_spectral_norm[:, 0] <= bound + 1e-12)


# -- mean-field slopes against the engine -------------------------------------------------
# Finite-n runs scatter around the n -> infinity prediction: measured over 3 seeds at n = 256
# (T = 80, 2 runs) the median slope was within 4.5 % of 0.5 log10(chi) for every sigma_w here
# (run-to-run sd about 0.0025 decades/step); the band is 10 %.
MF_N, MF_T, MF_B, MF_D = 256, 60, 2, 16
MF_REL = 0.10


@pytest.mark.slow
@pytest.mark.parametrize("sigma_w", [0.8, 1.0, 1.5, 2.5])
def test_meanfield_slope_tanh(sigma_w: float) -> None:
    init = Init("gaussian", sigma_w=sigma_w, sigma_u=1.0)
    rng = np.random.default_rng(2024)
    params = initialise(get_cell("rnn"), MF_N, MF_D, init, rng)
    x = make_inputs("gaussian", MF_T, MF_B, MF_D, rng)
    res = analyze("rnn", params, x, hidden=False)
    measured = float(np.median(decay_rate(res.log10_frobenius_norm)))
    pred = meanfield_prediction("rnn", init, MF_N, MF_D, 1.0).predicted_slope
    assert abs(measured - pred) <= MF_REL * abs(pred), (measured, pred)


@pytest.mark.parametrize("sigma_w", [0.6, 0.8])
def test_meanfield_slope_relu(sigma_w: float) -> None:
    # ReLU: chi = sigma_w^2 / 2 (half the units pass), independent of q*. Measured over 4 seeds
    # at n = 128 the median slope was within 4.3 % of the prediction; the band is 10 %. (ReLU
    # runs scatter more than tanh ones, so sigma_w stays away from chi = 1.)
    init = Init("gaussian", sigma_w=sigma_w, sigma_u=1.0)
    rng = np.random.default_rng(7)
    params = initialise(get_cell("rnn-relu"), 128, 8, init, rng)
    x = make_inputs("gaussian", 40, 2, 8, rng)
    res = analyze("rnn-relu", params, x, hidden=False)
    measured = float(np.median(decay_rate(res.log10_frobenius_norm)))
    pred = meanfield_prediction("rnn-relu", init, 128, 8, 1.0).predicted_slope
    assert pred == pytest.approx(0.5 * math.log10(sigma_w**2 / 2), abs=1e-15)
    assert abs(measured - pred) <= MF_REL * abs(pred), (measured, pred)


def _gate_values(cell: Cell, params: dict, x: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The memory gate's kappa_t per unit from the rollout (forward pass, no Jacobians)."""
    n = params[next(p.name for p in cell.parameters if p.kind == "bias")].shape[0]
    h = states[:-1, :, :n]
    mg = memory_gates(cell)[0]
    node = cell.node_map[mg.node]
    a = sum(params[b] for b in node.biases)
    for w, src in node.terms:
        if src == cell.input:
            v = x
        elif src == "h":
            v = h
        else:  # minimalrnn: z = tanh(W_xz x + b_z)
            v = np.tanh(x @ params["W_xz"].T + params["b_z"])
        a = a + v @ params[w].T
    g = 1.0 / (1.0 + np.exp(-a))
    return g if mg.keeps else 1.0 - g


@pytest.mark.parametrize(
    ("name", "init"),
    [
        ("lstm", Init("gaussian", forget_bias=1.0)),
        ("lstm-cifg", Init("gaussian", sigma_w=2.0)),
        ("gru", Init("gaussian", update_bias=2.0)),
        ("gru-reset-before", Init("torch")),
        ("mgu", Init("gaussian", update_bias=-1.0)),
        ("minimalrnn", Init("gaussian", sigma_w=1.5)),
    ],
)
def test_gated_additive_slope(name: str, init: Init) -> None:
    """The geometric mean over units of prod_t kappa_t decays at E[log10 kappa] per step.

    Measured over the second half of a T = 200 rollout at n = 256 (mean-field neglects
    O(1/sqrt(n)) correlations and the slow gates' temporal correlations; measured errors are
    below 6 % across the catalogue, so the band is 10 %).
    """
    cell = get_cell(name)
    rng = np.random.default_rng(5)
    n, d, steps = 256, 16, 200
    params = initialise(cell, n, d, init, rng)
    x = make_inputs("gaussian", steps, 2, d, rng)
    kappa = _gate_values(cell, params, x, rollout(cell, params, x))
    measured = float(np.mean(np.log10(kappa[steps // 2 :])))
    pred = meanfield_prediction(cell, init, n, d, 1.0).predicted_slope
    assert abs(measured - pred) <= 0.10 * abs(pred), (measured, pred)


# -- decay rates --------------------------------------------------------------------------
def test_decay_rate_exact_on_lines() -> None:
    k = np.arange(41.0)
    y = np.stack([-0.3 * k + 2.0, 0.05 * k, np.zeros_like(k)], axis=1)
    y[:3] += 5.0  # a transient the default window (4, 40) skips
    assert default_window(40) == (4, 40)
    np.testing.assert_allclose(decay_rate(y), [-0.3, 0.05, 0.0], atol=1e-13)
    assert decay_rate(y[:, 0]).shape == ()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(2, 60))
def test_decay_rate_matches_polyfit(seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((steps + 1, 3)).cumsum(axis=0)
    k0, k1 = default_window(steps)
    ref = [np.polyfit(np.arange(k0, k1 + 1), y[k0 : k1 + 1, j], 1)[0] for j in range(3)]
    np.testing.assert_allclose(decay_rate(y), ref, rtol=1e-9, atol=1e-12)  # numpy.polyfit


def test_decay_errors() -> None:
    y = np.zeros((11, 2))
    for window in [(5, 5), (-1, 4), (0, 11), (1, 2, 3)]:
        with pytest.raises(UsageError, match="window"):
            decay_rate(y, window)
    y[6, 0] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        decay_rate(y)


def test_quantiles_and_summary() -> None:
    v = np.arange(30.0).reshape(3, 10)
    band = quantile_band(v)
    np.testing.assert_allclose(band["q10"], np.quantile(v, 0.1, axis=1))
    np.testing.assert_allclose(band["median"], np.median(v, axis=1))
    assert set(quantile_band(v, (0.25, 0.75))) == {"q25", "q75"}
    assert summarise_rates([3.0, 1.0, 2.0]) == {"q10": 1.2, "median": 2.0, "q90": 2.8}
    y = -0.5 * np.arange(21.0)[:, None] * np.array([[1.0, 2.0]])
    s = summarise(y)
    assert s["window"] == [2, 20] and s["units"] == "decades per step"
    assert s["median"] == pytest.approx(-0.75, abs=1e-12)


# -- citations ----------------------------------------------------------------------------
def test_every_cited_key_has_an_entry() -> None:
    root = Path(gradflow.__file__).parent
    cited = set()
    for path in root.rglob("*.py"):
        cited |= set(re.findall(r"\[([a-z]+\d{4}[a-z]*)\]", path.read_text(encoding="utf-8")))
    for cell in CATALOGUE.values():
        cited |= set(cell.citations)
    missing = sorted(cited - set(BIBTEX))
    assert not missing, f"cited but not in gradflow.citations: {missing}"


@pytest.mark.parametrize("key", sorted(BIBTEX))
def test_bibtex_entries_well_formed(key: str) -> None:
    entry = BIBTEX[key]
    assert entry.startswith("@") and entry.count("{") == entry.count("}")
    for field in ("author", "title", "year"):
        assert re.search(rf"^  {field} = \{{.+\}},?$", entry, re.M), field
    assert re.fullmatch(r".+ \((19|20)\d\d\), .+, .+", text(key))


def test_cite_and_text() -> None:
    out = cite(["pascanu2013", "poole2016", "pascanu2013"])
    assert out.count("@") == 2 and out.index("pascanu2013") < out.index("poole2016")
    assert text(["elman1990", "cho2014"]).count("\n") == 1
    assert text("bengio1994").startswith("Bengio, Simard & Frasconi (1994), Learning long-term")
    with pytest.raises(UsageError, match="did you mean 'pascanu2013'"):
        cite(["pascanu2031"])

r"""Five claims about gradient flow in recurrent cells, each measured by a built-in experiment.

(a) The tanh RNN's gradient decays geometrically at the mean-field rate ``0.5 log10(chi)``.
(b) The LSTM's additive cell path keeps gradients alive for orders of magnitude longer.
(c) The LSTM still explodes when its weights are large: the decay rate crosses zero at a
    finite recurrent gain.
(d) The GRU's update gate is a leaky shortcut (as in highway networks): the bias of ``z``
    sets the decay rate of the ``diag(z)`` path and of the whole product.
(e) A GRU has exactly 3/4 of the parameters of an LSTM of the same sizes.

:func:`run_claims` returns a :class:`~gradflow.results.ClaimsResult`: for each claim the
numbers measured, whether the claim holds by the stated criterion, a one-sentence summary with
the numbers, and the configs that made them. Nothing is hard-coded: every number comes from a run.

Examples:
    >>> claim = claim_e()
    >>> claim.holds, claim.measured["ratio_n64_d16"]
    (True, 0.75)
"""

from __future__ import annotations

import time
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from .._version import __version__
from ..cells import get_cell
from ..results import Claim, ClaimsResult
from .decay import decay_rate
from .defaults import (
    CLAIM_LAGS,
    EXPLOSION_GRID,
    FORGET_BIASES,
    UPDATE_BIASES,
    claim_configs,
)
from .experiment import ExperimentConfig, Progress, run_experiment

#: Claim (a) holds when the measured slope is within this fraction of the prediction
#: (mean-field theory is exact as n -> infinity; finite n shifts the slope by O(1/n)).
MEANFIELD_RTOL = 0.1
#: Claim (b) holds when the LSTM keeps more than this many decades over the RNN at each lag.
MARGIN_DECADES = 10.0
#: Parameter sizes (n, d) for claim (e).
SIZES = ((16, 8), (32, 32), (64, 16), (128, 64), (256, 512))


def _median_slope(curve: np.ndarray, window: tuple[int, int]) -> float:
    """Slope of one median curve over the window, in decades per step."""
    return float(decay_rate(np.asarray(curve, dtype=float), tuple(window)))


def _claim(
    cid: str,
    title: str,
    statement: str,
    measured: dict[str, Any],
    holds: bool,
    summary: str,
    configs: list[ExperimentConfig],
) -> Claim:
    return Claim(
        id=cid,
        title=title,
        statement=statement,
        measured=measured,
        holds=bool(holds),
        summary=summary,
        configs=tuple(c.to_dict() for c in configs),
    )


def claim_a(config: ExperimentConfig, progress: Progress = False) -> Claim:
    """(a): measured slope of the tanh RNN against ``0.5 log10(chi)`` [poole2016]."""
    s = run_experiment(config, progress).cells["rnn"]
    mf = s.meanfield
    assert mf is not None and mf.predicted_slope is not None and mf.chi is not None
    window = s.decay_rate.window
    frob = _median_slope(s.log10_frobenius_norm.median, window)
    spec = s.decay_rate.median
    assert spec is not None
    pred = mf.predicted_slope
    rel = abs(frob - pred) / abs(pred)
    sw = config.init.sigma_w
    return _claim(
        "a",
        "The vanilla RNN's gradient vanishes at the mean-field rate",
        "log10 ||ds_T/ds_{T-k}|| of a tanh RNN with Gaussian weights falls linearly in the lag "
        "k, with the slope 0.5 log10(chi) that mean-field theory predicts.",
        {
            "sigma_w": sw,
            "hidden_size": config.hidden_size,
            "chi": mf.chi,
            "q_star": mf.q_star,
            "predicted_slope": pred,
            "measured_slope_frobenius": frob,
            "measured_slope_spectral": spec,
            "relative_error": rel,
        },
        rel <= MEANFIELD_RTOL,
        f"With sigma_w = {sw:g} (n = {config.hidden_size}) the Frobenius norm falls by "
        f"{-frob:.3f} decades per step (spectral {-spec:.3f}), against {-pred:.3f} predicted "
        f"from chi = {mf.chi:.3f}: a relative error of {100 * rel:.1f}%.",
        [config],
    )


def claim_b(configs: dict[str, ExperimentConfig], progress: Progress = False) -> Claim:
    """(b): log10 norms at lags 100 and 1000, RNN against LSTM (full and additive path)."""
    measured: dict[str, Any] = {}
    used = []
    holds = True
    parts = []
    for fb in FORGET_BIASES:
        cfg = configs[f"b-{fb:g}"]
        used.append(cfg)
        res = run_experiment(cfg, progress).cells
        if "rnn" in res:
            for lag in CLAIM_LAGS:
                measured[f"rnn_lag{lag}"] = float(res["rnn"].log10_spectral_norm.median[lag])
        lstm = res["lstm"]
        for lag in CLAIM_LAGS:
            full = float(lstm.log10_spectral_norm.median[lag])
            measured[f"lstm_fb{fb:g}_lag{lag}"] = full
            measured[f"lstm_fb{fb:g}_additive_lag{lag}"] = float(lstm.paths["additive"].median[lag])
            holds = holds and full > measured[f"rnn_lag{lag}"] + MARGIN_DECADES
        m = {
            k.removeprefix(f"lstm_fb{fb:g}_"): v
            for k, v in measured.items()
            if k.startswith(f"lstm_fb{fb:g}_")
        }
        parts.append(
            f"the LSTM with forget bias {fb:g} keeps {m['lag100']:.1f} and "
            f"{m['lag1000']:.1f} (its additive path alone {m['additive_lag100']:.1f} "
            f"and {m['additive_lag1000']:.1f})"
        )
    return _claim(
        "b",
        "The LSTM's additive cell path keeps gradients far longer",
        "The LSTM's cell-state Jacobian diag(f) has no weight matrix; with a positive forget "
        "bias, ||ds_T/ds_{T-k}|| at lags 100 and 1000 stays many decades above the RNN's.",
        measured,
        holds,
        f"log10 ||ds_T/ds_{{T-k}}|| at lags 100 and 1000: the RNN has "
        f"{measured['rnn_lag100']:.1f} and {measured['rnn_lag1000']:.1f}; "
        + "; ".join(parts)
        + ".",
        used,
    )


def _crossing(xs: list[float], ys: list[float]) -> float | None:
    """The first zero crossing of ys(xs) from below, by linear interpolation; None if none."""
    for i in range(len(xs) - 1):
        (x0, y0), (x1, y1) = (xs[i], ys[i]), (xs[i + 1], ys[i + 1])
        if y0 <= 0.0 < y1:
            return x0 + (x1 - x0) * (-y0) / (y1 - y0)
    return None


def claim_c(config: ExperimentConfig, progress: Progress = False) -> Claim:
    """(c): the Gaussian gain ``sigma_w`` at which the LSTM's decay rate crosses zero."""
    rates, used = [], []
    for sw in EXPLOSION_GRID:
        cfg = config.replace(init=replace(config.init, sigma_w=sw))
        used.append(cfg)
        rate = run_experiment(cfg, progress).cells["lstm"].decay_rate.median
        rates.append(float("nan") if rate is None else rate)
    threshold = _crossing(list(EXPLOSION_GRID), rates)
    measured: dict[str, Any] = {"threshold_sigma_w": threshold}
    measured.update(
        {f"rate_sigma_w_{sw:g}": r for sw, r in zip(EXPLOSION_GRID, rates, strict=True)}
    )
    where = (
        f"near sigma_w = {threshold:.2f}"
        if threshold is not None
        else f"nowhere on sigma_w in [{EXPLOSION_GRID[0]:g}, {EXPLOSION_GRID[-1]:g}]"
    )
    return _claim(
        "c",
        "The LSTM can still explode with large weights",
        "With Gaussian recurrent weights of gain sigma_w, the LSTM's decay rate rises with "
        "sigma_w and crosses zero (vanishing to exploding) at a finite gain.",
        measured,
        threshold is not None,
        f"The LSTM's median decay rate goes from {rates[0]:+.3f} decades per step at "
        f"sigma_w = {EXPLOSION_GRID[0]:g} to {rates[-1]:+.3f} at {EXPLOSION_GRID[-1]:g}, "
        f"crossing zero {where} (n = {config.hidden_size}).",
        used,
    )


def claim_d(config: ExperimentConfig, progress: Progress = False) -> Claim:
    """(d): decay rates of the full GRU product and of its ``diag(z)`` path, per bias of z."""
    full, additive, used = [], [], []
    measured: dict[str, Any] = {}
    for ub in UPDATE_BIASES:
        cfg = config.replace(init=replace(config.init, update_bias=ub))
        used.append(cfg)
        s = run_experiment(cfg, progress).cells["gru"]
        window = s.decay_rate.window
        full.append(float("nan") if s.decay_rate.median is None else s.decay_rate.median)
        additive.append(_median_slope(s.paths["additive"].median, window))
        measured[f"rate_full_bz{ub:g}"] = full[-1]
        measured[f"rate_additive_bz{ub:g}"] = additive[-1]
        measured[f"log10_norm_full_bz{ub:g}"] = float(s.log10_spectral_norm.median[-1])
        measured[f"log10_norm_additive_bz{ub:g}"] = float(s.paths["additive"].median[-1])
    holds = bool(np.all(np.diff(full) > 0) and np.all(np.diff(additive) > 0))
    lo, hi = UPDATE_BIASES[0], UPDATE_BIASES[-1]
    return _claim(
        "d",
        "The GRU's update gate is a leaky, highway-like shortcut",
        "The GRU's Jacobian has the weight-free term diag(z); raising the update-gate bias "
        "keeps more of the old state, slowing the decay of both that path and the full "
        "product.",
        measured,
        holds,
        f"Raising the bias of z from {lo:g} to {hi:g} moves the decay rate of the full product "
        f"from {full[0]:+.3f} to {full[-1]:+.3f} decades per step and that of the diag(z) path "
        f"alone from {additive[0]:+.3f} to {additive[-1]:+.3f} (n = {config.hidden_size}, "
        f"T = {config.steps}).",
        used,
    )


def claim_e() -> Claim:
    """(e): exact parameter counts of GRU and LSTM from ``Cell.parameter_count``."""
    gru, lstm = get_cell("gru"), get_cell("lstm")
    measured: dict[str, Any] = {}
    exact = True
    for n, d in SIZES:
        g, m = gru.parameter_count(n, d), lstm.parameter_count(n, d)
        measured[f"gru_n{n}_d{d}"] = g
        measured[f"lstm_n{n}_d{d}"] = m
        measured[f"ratio_n{n}_d{d}"] = g / m
        exact = exact and Fraction(g, m) == Fraction(3, 4)
    sizes = ", ".join(f"({n}, {d})" for n, d in SIZES)
    n, d = SIZES[2]
    return _claim(
        "e",
        "A GRU has 3/4 of an LSTM's parameters",
        "For the same hidden size n and input size d, a GRU has 3(nd + n^2 + 2n) parameters "
        "and an LSTM 4(nd + n^2 + 2n): the ratio is exactly 3/4.",
        measured,
        exact,
        f"At (n, d) = ({n}, {d}) the GRU has {measured[f'gru_n{n}_d{d}']} parameters and the "
        f"LSTM {measured[f'lstm_n{n}_d{d}']}; the ratio is exactly 3/4 at every size tried "
        f"({sizes}).",
        [],
    )


def run_claims(quick: bool = True, progress: Progress = False) -> ClaimsResult:
    """Run claims (a)-(e) and return the :class:`~gradflow.results.ClaimsResult`.

    Args:
        quick: small sizes (a few seconds each); otherwise larger ``n`` and more seeds.
        progress: passed to each experiment.

    References:
        [poole2016], [pascanu2013], [hochreiter1997], [gers2000forget], [jozefowicz2015],
        [cho2014], [srivastava2015highway].
    """
    start = time.perf_counter()
    cfgs = claim_configs(quick)
    claims = [
        claim_a(cfgs["a"], progress),
        claim_b(cfgs, progress),
        claim_c(cfgs["c"], progress),
        claim_d(cfgs["d"], progress),
        claim_e(),
    ]
    return ClaimsResult(
        claims=tuple(claims),
        quick=quick,
        gradflow_version=__version__,
        run={"total_s": time.perf_counter() - start},
    )

r"""Six claims about gradient flow in recurrent cells, each measured over weight draws.

(a) The tanh RNN's gradient decays geometrically at the mean-field rate ``0.5 log10(chi)``;
    the Pascanu bound holds, with its tightness (bound minus norm).
(b) "The LSTM's additive cell path keeps gradients far longer": the LSTM at forget bias 1
    against the tanh RNN at PyTorch's init *and* at the edge of chaos, at lags 100 and 1000,
    with the share of the LSTM's product that travels through the additive path alone.
(c) The LSTM still explodes when its weights are large: the gain at which its decay rate
    crosses zero, per draw and at two widths, against the tanh RNN's.
(d) The GRU's update gate is a leaky shortcut (as in highway networks).
(e) A GRU has 3/4 of the parameters of an LSTM, with PyTorch's two bias vectors.
(f) Gradient clipping of an exploding LSTM: how often it clips and what it does to the
    long-lag share of the update (:mod:`gradflow.analysis.clipping`).

Every claim runs one sequence (claim f: eight) on each of ``D >= 10`` weight draws (seeds
``0..D-1``) and reports, for each number its verdict rests on, the median over draws with a 95 %
percentile-bootstrap interval (:mod:`gradflow.analysis.uncertainty`). A decay rate is the
least-squares slope of one draw's ``log10`` norm over the fitted window: the claims report the
*median of the per-draw slopes*. Nothing is hard-coded: every number comes from a run.

One concept per module: this one holds claims (a)-(e) and :func:`run_claims`; the shared
parts are in :mod:`gradflow.analysis.claimkit`, claim (f) in :mod:`gradflow.analysis.clipping`.

Examples:
    >>> claim = claim_e()
    >>> claim.holds, claim.measured["ratio_n64_d16"]
    (True, 0.75)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from .._version import __version__
from ..cells import get_cell
from ..results import Claim, ClaimsResult
from ..threads import compute_region
from .bounds import pascanu_tightness
from .claimkit import (
    Tick,
    add_interval,
    ci_text,
    draw,
    draw_all,
    draws_text,
    make_claim,
    power_text,
    slope,
)
from .clipping import claim_f, clipping_data
from .config import ExperimentConfig, Progress
from .defaults import (
    CLAIM_LAGS,
    EXPLOSION_GRID,
    EXPLOSION_WIDTHS,
    UPDATE_BIASES,
    claim_configs,
)
from .meanfield import predicted_log10_slope, tanh_fixed_point
from .run import progress_bar, run_threads

#: Claim (a) holds when the median measured slope is within this fraction of the prediction
#: (mean-field theory is exact as n -> infinity; finite n shifts the slope by O(1/n)).
MEANFIELD_RTOL = 0.1
#: Claim (b) holds when the LSTM keeps more than this many decades over each RNN at each lag.
MARGIN_DECADES = 10.0
#: Parameter sizes (n, d) for claim (e).
SIZES = ((16, 8), (32, 32), (64, 16), (128, 64), (256, 512))


def claim_a(
    config: ExperimentConfig,
    tick: Tick = lambda: None,
    tight_config: ExperimentConfig | None = None,
) -> Claim:
    """(a): slopes of the tanh RNN against ``0.5 log10(chi)`` [poole2016]; the Pascanu bound
    with its tightness, checked in float64 and float32 [pascanu2013]."""
    ini = config.init
    window = config.window
    pred = predicted_log10_slope(ini.sigma_w, ini.sigma_u, ini.sigma_b, config.inputs.scale**2)
    q_star, chi = tanh_fixed_point(ini.sigma_w, ini.sigma_u, ini.sigma_b, config.inputs.scale**2)
    frob, spec, slack_end, growth = [], [], [], []
    viol64 = viol32 = viol32_fixed = 0
    runs32 = draw_all(config, dtype="float32")
    for (res, params, _), (r32, _, _) in zip(draw_all(config), runs32, strict=True):
        frob.append(slope(res.log10_frobenius_norm[:, 0], window))
        spec.append(slope(res.log10_spectral_norm[:, 0], window))
        t64 = pascanu_tightness("rnn", params, res.log10_spectral_norm, "float64")
        slack_end.append(float(t64.log10_slack[-1, 0]))
        growth.append(t64.slack_growth)
        viol64 += t64.violations
        t32 = pascanu_tightness("rnn", params, r32.log10_spectral_norm, "float32")
        viol32 += t32.violations
        # the old check: a fixed 1e-9 decades whatever the dtype
        viol32_fixed += int(np.sum(r32.log10_spectral_norm[:, 0] > t32.log10_bound + 1e-9))
        tick()
    tight = {"float64": 0, "float32": 0, "float32_fixed": 0}
    if tight_config is not None:
        tight_runs = {dt: draw_all(tight_config, dtype=dt) for dt in ("float64", "float32")}
        for i in range(len(tight_config.seeds)):
            for dt in ("float64", "float32"):
                res, params, _ = tight_runs[dt][i]
                t = pascanu_tightness("rnn", params, res.log10_spectral_norm, dt)
                tight[dt] += t.violations
                if dt == "float32":
                    spec32 = res.log10_spectral_norm[:, 0]
                    tight["float32_fixed"] += int(np.sum(spec32 > t.log10_bound + 1e-9))
            tick()
    m: dict[str, Any] = {"sigma_w": ini.sigma_w, "chi": chi, "q_star": q_star}
    m["predicted_slope"] = pred
    iv: dict[str, Any] = {}
    add_interval(m, iv, "measured_slope_frobenius", frob)
    add_interval(m, iv, "measured_slope_spectral", spec)
    rel = abs(m["measured_slope_frobenius"] - pred) / abs(pred)
    m["relative_error"] = rel
    m["prediction_in_interval"] = bool(
        iv["measured_slope_frobenius"]["low"] <= pred <= iv["measured_slope_frobenius"]["high"]
    )
    add_interval(m, iv, f"pascanu_slack_lag{config.steps}", slack_end)
    add_interval(m, iv, "pascanu_slack_growth", growth)
    lags = (config.steps + 1) * len(config.seeds)
    tight_pairs = (
        (tight_config.steps + 1) * len(tight_config.seeds) if tight_config is not None else 0
    )
    m["pascanu_violations_float64"] = viol64
    m["pascanu_violations_float32"] = viol32
    m["pascanu_violations_float32_fixed_tolerance"] = viol32_fixed
    if tight_config is not None:
        m["pascanu_tight_violations_float64"] = tight["float64"]
        m["pascanu_tight_violations_float32"] = tight["float32"]
        m["pascanu_tight_violations_float32_fixed_tolerance"] = tight["float32_fixed"]
    sl = iv[f"pascanu_slack_lag{config.steps}"]
    return make_claim(
        "a",
        "The vanilla RNN's gradient vanishes at the mean-field rate",
        "log10 ||ds_T/ds_{T-k}|| of a tanh RNN with Gaussian weights falls linearly in the lag "
        "k, with the slope 0.5 log10(chi) that mean-field theory predicts; the Pascanu bound "
        "(gamma sigma_max(W))^k lies above every norm.",
        f"tanh RNN, Gaussian weights sigma_w = {ini.sigma_w:g}, n = {config.hidden_size}, "
        f"T = {config.steps}, unit Gaussian inputs (d = {config.input_size}), "
        f"{draws_text(config)}; slopes fitted over lags {window[0]}-{window[1]}; "
        "criterion: median Frobenius slope within "
        f"{100 * MEANFIELD_RTOL:g} % of the prediction and no (lag, draw) pair above the "
        "Pascanu bound beyond the dtype's rounding allowance atol + 8 k eps / ln 10 decades "
        "(float64 and float32; also where the bound is tight: orthogonal W, zero inputs).",
        measured=m,
        intervals=iv,
        holds=rel <= MEANFIELD_RTOL and viol64 == 0 and viol32 == 0 and tight["float32"] == 0,
        summary=f"The Frobenius norm falls by {ci_text(iv['measured_slope_frobenius'])} decades "
        f"per step (median of {len(config.seeds)} draws [95 % interval]), against "
        f"{pred:+.3f} predicted from chi = {chi:.3f} ({100 * rel:.1f} % off; the prediction "
        f"is {'inside' if m['prediction_in_interval'] else 'outside'} the interval). The "
        f"Pascanu bound holds in all {lags} (lag, draw) pairs but lies {ci_text(sl, '{:.1f}')} "
        f"decades above the norm at k = {config.steps}, a gap growing by "
        f"{m['pascanu_slack_growth']:.3f} decades per step: it says little about the decay. "
        f"In float32 the dtype-aware tolerance flags {viol32} pairs (a fixed 1e-9 flags "
        f"{viol32_fixed})"
        + (
            f"; where the bound is tight (orthogonal W, zero inputs: ||W^k|| = 1 = the bound) "
            f"it flags {tight['float32']} of {tight_pairs} float32 pairs, a fixed 1e-9 flags "
            f"{tight['float32_fixed']}"
            if tight_config is not None
            else ""
        )
        + ".",
        configs=[config] + ([tight_config] if tight_config is not None else []),
    )


def claim_b(configs: dict[str, ExperimentConfig], tick: Tick = lambda: None) -> Claim:
    """(b): log10 norms at lags 100 and 1000: tanh RNN (PyTorch init, edge of chaos) against
    the LSTM, and the LSTM's additive share ``||S_0||_F / ||P_k||_F``."""
    m: dict[str, Any] = {}
    iv: dict[str, Any] = {}
    used = [configs["b-rnn"], configs["b-edge"]]
    per: dict[str, dict[int, list[float]]] = {}
    for name in ("b-rnn", "b-edge"):
        cfg = configs[name]
        vals: dict[int, list[float]] = {k: [] for k in CLAIM_LAGS}
        for res, _, _ in draw_all(cfg):
            for k in CLAIM_LAGS:
                vals[k].append(float(res.log10_spectral_norm[k, 0]))
            tick()
        per[name] = vals
    m["sigma_w_edge"] = configs["b-edge"].init.sigma_w
    for k in CLAIM_LAGS:
        add_interval(m, iv, f"rnn_lag{k}", per["b-rnn"][k])
        add_interval(m, iv, f"rnn_edge_lag{k}", per["b-edge"][k])
    fbs = sorted(float(k[2:]) for k in configs if k.startswith("b-") and k[2:3].isdigit())
    lstm_parts, holds = [], True
    for fb in fbs:
        cfg = configs[f"b-{fb:g}"]
        used.append(cfg)
        full: dict[int, list[float]] = {k: [] for k in CLAIM_LAGS}
        share: dict[int, list[float]] = {k: [] for k in CLAIM_LAGS}
        for res, _, _ in draw_all(cfg):
            add = res.paths["additive"]["log10_frobenius_norm"]
            for k in CLAIM_LAGS:
                full[k].append(float(res.log10_spectral_norm[k, 0]))
                # the j = 0 term S_0 of P_k = sum_j S_j (gradflow.decomposition), Frobenius
                share[k].append(float(add[k, 0] - res.log10_frobenius_norm[k, 0]))
            tick()
        for k in CLAIM_LAGS:
            add_interval(m, iv, f"lstm_fb{fb:g}_lag{k}", full[k])
            add_interval(m, iv, f"lstm_fb{fb:g}_additive_share_lag{k}", share[k])
            for rnn in ("rnn", "rnn_edge"):
                beats = iv[f"lstm_fb{fb:g}_lag{k}"]["low"] > iv[f"{rnn}_lag{k}"]["high"]
                gap = m[f"lstm_fb{fb:g}_lag{k}"] - m[f"{rnn}_lag{k}"]
                holds = holds and beats and gap > MARGIN_DECADES
        lstm_parts.append(
            f"the LSTM at forget bias {fb:g} keeps "
            + " and ".join(ci_text(iv[f"lstm_fb{fb:g}_lag{k}"], "{:.1f}") for k in CLAIM_LAGS)
            + "; of its product, the additive path alone (S_0, no weight matrix) carries "
            + " and ".join(
                power_text(iv[f"lstm_fb{fb:g}_additive_share_lag{k}"]) for k in CLAIM_LAGS
            )
            + " of the Frobenius norm (median [95 % interval]), the rest travels through terms "
            "with weight matrices"
        )
    edge_wins = [k for k in CLAIM_LAGS if m[f"rnn_edge_lag{k}"] > m[f"lstm_fb{fbs[0]:g}_lag{k}"]]
    verdict = (
        f"The tanh RNN at the edge of chaos keeps more than the LSTM at forget bias {fbs[0]:g} "
        f"at lag{'s' if len(edge_wins) > 1 else ''} {' and '.join(map(str, edge_wins))}: the "
        "textbook statement does not hold against it."
        if edge_wins
        else "The LSTM keeps more than both RNNs at both lags."
    )
    lags = " and ".join(str(k) for k in CLAIM_LAGS)
    cfg0 = configs["b-rnn"]
    return make_claim(
        "b",
        "The LSTM's additive cell path keeps gradients far longer",
        "The LSTM's cell-state Jacobian diag(f) has no weight matrix; with a positive forget "
        f"bias, ||ds_T/ds_{{T-k}}|| at lags {lags} stays many decades above a vanilla tanh "
        "RNN's, at PyTorch's initialisation and at the edge of chaos alike.",
        f"n = {cfg0.hidden_size}, T = {cfg0.steps}, unit Gaussian inputs (d = "
        f"{cfg0.input_size}), {draws_text(cfg0)}; RNN with PyTorch's init and with Gaussian "
        f"weights at its mean-field critical gain sigma_w = {m['sigma_w_edge']:g} (chi = 1 with "
        "these inputs); LSTM with PyTorch's init and forget bias "
        + ", ".join(f"{fb:g}" for fb in fbs)
        + f"; criterion: the LSTM's interval above each RNN's, by more than "
        f"{MARGIN_DECADES:g} decades, at each lag.",
        measured=m,
        intervals=iv,
        holds=holds,
        summary=f"log10 ||ds_T/ds_{{T-k}}|| at lags {lags} (median [95 % interval]): the RNN "
        "with PyTorch's init has "
        + " and ".join(ci_text(iv[f"rnn_lag{k}"], "{:.1f}") for k in CLAIM_LAGS)
        + ", the RNN at the edge of chaos "
        + " and ".join(ci_text(iv[f"rnn_edge_lag{k}"], "{:.1f}") for k in CLAIM_LAGS)
        + "; "
        + "; ".join(lstm_parts)
        + ". "
        + verdict,
        configs=used,
    )


def _crossing(xs: Sequence[float], ys: Iterable[float]) -> float | None:
    """The first zero crossing of ys(xs) from below, by linear interpolation; None if none.

    ``ys`` is read lazily, up to the first crossing: a generator of runs is never asked for
    the points after it (claim c computes about half of its grid this way, with the same
    result)."""
    prev: tuple[float, float] | None = None
    for x1, y1 in zip(xs, ys, strict=False):
        if prev is not None:
            x0, y0 = prev
            if y0 <= 0.0 < y1:
                return x0 + (x1 - x0) * (-y0) / (y1 - y0)
        prev = (x1, y1)
    return None


def claim_c(configs: dict[str, ExperimentConfig], quick: bool, tick: Tick = lambda: None) -> Claim:
    """(c): per draw and width, the Gaussian gain ``sigma_w`` at which the decay rate of the
    LSTM (and of the tanh RNN) crosses zero; the paired comparison of the two."""
    widths = EXPLOSION_WIDTHS[0 if quick else 1]
    m: dict[str, Any] = {}
    iv: dict[str, Any] = {}
    used = []
    thr: dict[tuple[str, int], list[float | None]] = {}
    for cell in ("lstm", "rnn"):
        base = configs[f"c-{cell}"]
        for n in widths:
            cfg = base.replace(hidden_size=n)
            used.append(cfg)
            out: list[float | None] = []
            for seed in cfg.seeds:
                # a generator: the gains after the first crossing are not run
                rates = (
                    slope(draw(cfg, seed, sigma_w=sw)[0].log10_spectral_norm[:, 0], cfg.window)
                    for sw in EXPLOSION_GRID[cell]
                )
                out.append(_crossing(EXPLOSION_GRID[cell], rates))
                tick()
            thr[(cell, n)] = out
    holds = True
    for (cell, n), out in thr.items():
        found = [t for t in out if t is not None]
        m[f"{cell}_n{n}_draws_crossing"] = len(found)
        holds = holds and (cell != "lstm" or len(found) == len(out))
        if len(found) >= 2:
            add_interval(m, iv, f"{cell}_threshold_n{n}", found)
        else:
            m[f"{cell}_threshold_n{n}"] = found[0] if found else None
    diffs = {}
    for n in widths:
        pairs = [
            (a, b)
            for a, b in zip(thr[("lstm", n)], thr[("rnn", n)], strict=True)
            if a is not None and b is not None
        ]
        if len(pairs) >= 2:
            diffs[n] = [a - b for a, b in pairs]
            add_interval(m, iv, f"lstm_minus_rnn_threshold_n{n}", diffs[n])
    later = [n for n in diffs if iv[f"lstm_minus_rnn_threshold_n{n}"]["low"] > 0]
    earlier = [n for n in diffs if iv[f"lstm_minus_rnn_threshold_n{n}"]["high"] < 0]
    compare = (
        "the LSTM needs a larger gain than the tanh RNN to explode at "
        + ", ".join(f"n = {n}" for n in later)
        if later
        else ""
    )
    if earlier:
        compare += (
            ("; " if compare else "")
            + "the LSTM explodes at a smaller gain than the "
            + ("tanh RNN at " + ", ".join(f"n = {n}" for n in earlier))
        )
    undecided = [n for n in diffs if n not in later and n not in earlier]
    if undecided:
        compare += (
            ("; " if compare else "")
            + "no difference resolved at "
            + ", ".join(f"n = {n}" for n in undecided)
        )
    lstm_txt, rnn_txt = (
        " and ".join(
            f"{ci_text(iv[f'{cell}_threshold_n{n}'], '{:.2f}')} (n = {n})"
            for n in widths
            if f"{cell}_threshold_n{n}" in iv
        )
        or "no gain on the grid"
        for cell in ("lstm", "rnn")
    )
    cfg0 = used[0]
    return make_claim(
        "c",
        "The LSTM can still explode with large weights",
        "With Gaussian recurrent weights of gain sigma_w, the LSTM's decay rate rises with "
        "sigma_w and crosses zero (vanishing to exploding) at a finite gain.",
        f"Gaussian weights (sigma_w on the grid {list(EXPLOSION_GRID['lstm'])} for the LSTM, "
        f"{list(EXPLOSION_GRID['rnn'])} for the tanh RNN; the threshold interpolated "
        f"linearly per draw), n = {' and '.join(map(str, widths))}, T = {cfg0.steps}, unit "
        f"Gaussian inputs, {draws_text(cfg0)}, rates fitted over lags "
        f"{cfg0.window[0]}-{cfg0.window[1]}; criterion: every LSTM draw crosses zero on the "
        "grid. The LSTM-RNN comparison is paired by draw.",
        measured=m,
        intervals=iv,
        holds=holds,
        summary=f"The LSTM's decay rate crosses zero at sigma_w {lstm_txt} (median "
        f"[95 % interval] over draws); the tanh RNN's at {rnn_txt}. Paired by draw, "
        f"{compare}.",
        configs=used,
    )


def claim_d(config: ExperimentConfig, tick: Tick = lambda: None) -> Claim:
    """(d): decay rates of the full GRU product and of its ``diag(z)`` path, per bias of z."""
    m: dict[str, Any] = {}
    iv: dict[str, Any] = {}
    used, full, additive = [], [], []
    window = config.window
    for ub in UPDATE_BIASES:
        cfg = config.replace(init=replace(config.init, update_bias=ub))
        used.append(cfg)
        f, a = [], []
        for res, _, _ in draw_all(cfg):
            f.append(slope(res.log10_spectral_norm[:, 0], window))
            a.append(slope(res.paths["additive"]["log10_spectral_norm"][:, 0], window))
            tick()
        add_interval(m, iv, f"rate_full_bz{ub:g}", f)
        add_interval(m, iv, f"rate_additive_bz{ub:g}", a)
        full.append(iv[f"rate_full_bz{ub:g}"])
        additive.append(iv[f"rate_additive_bz{ub:g}"])
    # each step up in bias must raise the rate beyond the intervals' overlap
    holds = all(x["high"] < y["low"] for x, y in zip(full, full[1:], strict=False)) and all(
        x["high"] < y["low"] for x, y in zip(additive, additive[1:], strict=False)
    )
    lo, hi = UPDATE_BIASES[0], UPDATE_BIASES[-1]
    return make_claim(
        "d",
        "The GRU's update gate is a leaky, highway-like shortcut",
        "The GRU's Jacobian has the weight-free term diag(z); raising the update-gate bias "
        "keeps more of the old state, slowing the decay of both that path and the full "
        "product.",
        f"GRU (reset after the hidden matmul, PyTorch's init), update-gate bias in "
        f"{list(UPDATE_BIASES)}, n = {config.hidden_size}, T = {config.steps}, unit Gaussian "
        f"inputs, {draws_text(config)}, rates fitted over lags {window[0]}-{window[1]}; "
        "criterion: each step up in bias raises both rates with disjoint intervals.",
        measured=m,
        intervals=iv,
        holds=holds,
        summary=f"Raising the bias of z from {lo:g} to {hi:g} moves the decay rate of the full "
        f"product from {ci_text(full[0])} to {ci_text(full[-1])} decades per step and that of the "
        f"diag(z) path alone from {ci_text(additive[0])} to {ci_text(additive[-1])} (median "
        "[95 % interval] over draws).",
        configs=used,
    )


def claim_e() -> Claim:
    """(e): exact parameter counts of GRU and LSTM from ``Cell.parameter_count``, with
    PyTorch's two bias vectors and with one (``gru-reset-before``)."""
    gru, one, lstm = get_cell("gru"), get_cell("gru-reset-before"), get_cell("lstm")
    measured: dict[str, Any] = {}
    exact = True
    mixed = []
    for n, d in SIZES:
        g, m = gru.parameter_count(n, d), lstm.parameter_count(n, d)
        measured[f"gru_n{n}_d{d}"] = g
        measured[f"lstm_n{n}_d{d}"] = m
        measured[f"ratio_n{n}_d{d}"] = g / m
        o = one.parameter_count(n, d)
        measured[f"gru_one_bias_n{n}_d{d}"] = o
        measured[f"ratio_one_bias_n{n}_d{d}"] = o / m
        mixed.append(o / m)
        exact = exact and Fraction(g, m) == Fraction(3, 4)
    sizes = ", ".join(f"({n}, {d})" for n, d in SIZES)
    n, d = SIZES[2]
    return make_claim(
        "e",
        "A GRU has 3/4 of an LSTM's parameters",
        "For the same hidden size n and input size d, a GRU has 3(nd + n^2 + 2n) parameters "
        "and an LSTM 4(nd + n^2 + 2n): the ratio is exactly 3/4.",
        "PyTorch's conventions for both cells: two bias vectors per gate (b_ih and b_hh). "
        "The ratio is 3/4 whenever both cells use the same bias convention; with one bias "
        "vector per gate in the GRU (gru-reset-before) and two in the LSTM it is "
        "3(nd + n^2 + n) / 4(nd + n^2 + 2n), below 3/4.",
        measured=measured,
        holds=exact,
        summary=f"At (n, d) = ({n}, {d}) the GRU has {measured[f'gru_n{n}_d{d}']} parameters "
        f"and the LSTM {measured[f'lstm_n{n}_d{d}']}; the ratio is exactly 3/4 at every size "
        f"tried ({sizes}). A GRU with one bias vector per gate (gru-reset-before) against "
        f"PyTorch's LSTM has {min(mixed):.4f} to {max(mixed):.4f} of its parameters.",
        configs=[],
    )


def run_claims(
    quick: bool = True, progress: Progress = False, executor: Executor | None = None
) -> ClaimsResult:
    """Run claims (a)-(f) and return the :class:`~gradflow.results.ClaimsResult`.

    Args:
        quick: small sizes (a few seconds in all); otherwise larger ``n`` and 20 draws.
        progress: a tqdm bar (``True``), or a callable ``progress(done, total)``.
        executor: run the claims as tasks on it (:func:`submit_claims`); the same result.

    References:
        [poole2016], [pascanu2013], [hochreiter1997], [gers2000forget], [jozefowicz2015],
        [cho2014], [srivastava2015highway], [efron1993].
    """
    if executor is not None:
        return submit_claims(executor, quick)(progress)
    start = time.perf_counter()
    cfgs = claim_configs(quick)
    widths = EXPLOSION_WIDTHS[0 if quick else 1]
    n_b = sum(len(c.seeds) for k, c in cfgs.items() if k.startswith("b-"))
    total = (
        2 * len(cfgs["a"].seeds)
        + n_b
        + 2 * len(widths) * len(cfgs["c-lstm"].seeds)
        + len(UPDATE_BIASES) * len(cfgs["d"].seeds)
        + len(cfgs["f"].seeds)
    )
    tick = progress_bar(progress, total, "claims")
    # the thread policy for the largest state of any claim, around all they compute
    cells = [get_cell(c.cells[0]) for c in cfgs.values()]
    with compute_region(run_threads(cells, max(*widths, *(c.hidden_size for c in cfgs.values())))):
        clip = clipping_data(cfgs["f"], tick)
        claims = [
            claim_a(cfgs["a"], tick, cfgs["a-tight"]),
            claim_b(cfgs, tick),
            claim_c(cfgs, quick, tick),
            claim_d(cfgs["d"], tick),
        ]
    return _claims_result(quick, cfgs, clip, claims, start)


def _claims_result(
    quick: bool, cfgs: dict[str, ExperimentConfig], clip: Any, claims: list[Claim], start: float
) -> ClaimsResult:
    return ClaimsResult(
        claims=(*claims, claim_e(), claim_f(cfgs["f"], clip)),
        quick=quick,
        gradflow_version=__version__,
        clipping=clip,
        run={"total_s": time.perf_counter() - start},
    )


def submit_claims(executor: Executor, quick: bool = True) -> Callable[[Progress], ClaimsResult]:
    """Submit the claims' runs to ``executor`` as five tasks (claims a-d and the clipping
    data of f; e needs no run) and return ``finish(progress)``, which waits for them and
    returns the same :class:`~gradflow.results.ClaimsResult` as :func:`run_claims`.

    Five tasks instead of one let a pool balance them with other work: together they take
    about 12 s of CPU time (quick), the longest (b) about 4.5 s. They are submitted longest
    first."""
    start = time.perf_counter()
    cfgs = claim_configs(quick)
    jobs: list[Future[Any]] = [
        executor.submit(claim_b, cfgs),
        executor.submit(claim_c, cfgs, quick),
        executor.submit(claim_d, cfgs["d"]),
        executor.submit(claim_a, cfgs["a"], tight_config=cfgs["a-tight"]),
        executor.submit(clipping_data, cfgs["f"]),
    ]

    def finish(progress: Progress = False) -> ClaimsResult:
        tick = progress_bar(progress, len(jobs), "claims")
        done = []
        for job in jobs:
            done.append(job.result())
            tick()
        b, c, d, a, clip = done
        return _claims_result(quick, cfgs, clip, [a, b, c, d], start)

    return finish

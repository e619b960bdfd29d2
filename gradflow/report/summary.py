"""The story of a report in words: the headline cells, sentences with measured numbers, and
numbers formatted for people (units, rounding, natural order).

Everything here reads the typed results; raw values stay in the report's data files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..analysis.uncertainty import Interval, ratio_interval
from ..results import DecayRate, ExperimentResult
from ..results.runs import RunValues

#: Decay rates within this many decades per step of zero are called "neutral": at 0.01 the
#: norm changes by at most a factor 10 over 100 steps.
NEUTRAL_TOL = 0.01
#: The cells the headline compares, when the experiment has them.
HEADLINE = ("rnn", "lstm", "gru")
_SCHEMES = {
    "torch": "PyTorch's default initialisation (uniform in ±1/√n)",
    "gaussian": "Gaussian weights",
    "orthogonal": "orthogonal recurrent weights",
    "identity": "identity recurrent weights (IRNN)",
}
_INPUTS = {"gaussian": "Gaussian", "zeros": "zero", "constant": "constant", "file": "recorded"}
_FAMILY_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def regime(rate: float | None, tol: float = NEUTRAL_TOL) -> str:
    """``vanishing`` below ``-tol`` decades per step, ``exploding`` above ``tol``, else
    ``neutral``; ``no finite rate`` for None or NaN."""
    if rate is None or not math.isfinite(rate):
        return "no finite rate"
    return "vanishing" if rate < -tol else "exploding" if rate > tol else "neutral"


def headline_cells(experiment: ExperimentResult) -> list[str]:
    """The RNN, LSTM and GRU when the experiment has at least two of them; else its first three
    cells."""
    names = [c for c in HEADLINE if c in experiment.cells]
    return names if len(names) >= 2 else list(experiment.cells)[:3]


def init_text(config: Mapping[str, Any]) -> str:
    """The initialisation of an experiment config in words, e.g. ``PyTorch's default
    initialisation ..., forget-gate bias 1 (cells with a forget gate)``."""
    init = config.get("init") or {}
    scheme = str(init.get("scheme", "torch"))
    text = _SCHEMES.get(scheme, f"the {scheme} initialisation")
    if scheme == "gaussian":
        text += f" of gain σ_w = {init.get('sigma_w', 1.0):g}"
    if init.get("spectral_radius") is not None:
        text += f", recurrent spectral radius {init['spectral_radius']:g}"
    if init.get("forget_bias") is not None:
        text += f", forget-gate bias {init['forget_bias']:g} (cells with a forget gate)"
    if init.get("update_bias") is not None:
        text += f", update-gate bias {init['update_bias']:g} (cells with an update gate)"
    if init.get("chrono_tmax") is not None:
        text += f", chrono initialisation with T_max = {init['chrono_tmax']:g}"
    return text


def power10(log10_value: float | None) -> str:
    """``10^x`` written for people: ``1.3 × 10⁻²⁷`` (``–`` for None or NaN)."""
    if log10_value is None or not math.isfinite(log10_value):
        return "–"
    e = math.floor(log10_value)
    m = 10.0 ** (log10_value - e)
    if round(m, 1) >= 10.0:
        m, e = m / 10.0, e + 1
    sup = str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{m:.1f} × 10{sup}"


def _rate(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.3f}".replace("-", "−")


_VERBS = {
    "vanishing": ("vanishes", "vanish"),
    "neutral": ("stays neutral", "stay neutral"),
    "exploding": ("explodes", "explode"),
    "no finite rate": ("has no finite rate", "have no finite rate"),
}


def _ci(low: float | None, high: float | None, fmt: Any = None) -> str:
    """`` [low, high]`` (a 95 % interval) written with ``fmt`` (default: a rate)."""
    f = fmt or _rate
    return "" if low is None or high is None else f" [{f(low)}, {f(high)}]"


def _power_ci(values: RunValues | None) -> str:
    return "" if values is None else _ci(values.low, values.high, power10)


def two_stage(interval: Mapping[str, Any]) -> bool:
    """Whether a bootstrap interval resampled in two stages: weight draws, then several
    sequences within each (with one sequence per draw it is the plain bootstrap of the draws)."""
    groups = interval.get("groups")
    return bool(groups) and groups != interval.get("draws")


def decay_interval_text(experiment: ExperimentResult) -> str | None:
    """How the decay table's confidence intervals were made, in words (None when the result
    carries no per-run rates: files older than schema version 4)."""
    iv = next(
        (s.decay_rate.interval for s in experiment.cells.values() if s.decay_rate.interval),
        None,
    )
    if iv is None:
        return None
    level = round(100 * float(iv.get("level", 0.95)))
    how = (
        "the weight draws, then the sequences within each draw"
        if two_stage(iv)
        else "the weight draws, one sequence each"
        if iv.get("groups")
        else "the runs (one weight draw: the interval says nothing about other draws)"
    )
    return (
        f"{level} % percentile-bootstrap confidence interval of the median "
        f"({iv.get('resamples', 2000)} resamples of {how})"
    )


def conditions_sentence(experiment: ExperimentResult) -> str:
    """The conditions every number of the summary holds under, said once: cells, sizes,
    inputs, draws x sequences, initialisation, and how the intervals were made."""
    cells = experiment.cells
    first = cells[headline_cells(experiment)[0]]
    cfg = experiment.config
    inputs = cfg.get("inputs") or {}
    kind = _INPUTS.get(str(inputs.get("kind", "gaussian")), "user")
    runs = first.decay_rate.runs
    draws = runs.n_draws if runs is not None else len(experiment.seeds)
    per_draw = first.runs // draws if draws and first.runs % draws == 0 else None
    if per_draw is not None and draws > 1:
        seqs = f"{per_draw} input sequence{'s' if per_draw != 1 else ''}"
        how = f"{draws} weight draws × {seqs} = {first.runs} runs per cell"
    else:
        how = f"{first.runs} runs per cell"
    text = (
        f"{len(cells)} cells, n = {first.hidden_size} hidden units, T = {first.steps} steps of "
        f"{kind} inputs (d = {first.input_size}), {how}; {init_text(cfg)}."
    )
    iv = runs.interval if runs is not None else None
    if iv is None:
        return text
    text += (
        f" A number below is the median over the runs; in brackets its "
        f"{round(100 * float(iv.get('level', 0.95)))} % percentile-bootstrap confidence "
        f"interval ({iv.get('resamples', 2000)} resamples"
    )
    if two_stage(iv):
        text += ", resampling the weight draws, then the sequences within each draw)."
    elif iv.get("groups"):
        text += ", resampling the weight draws; one sequence each)."
    else:
        text += " of the runs; one weight draw, so the intervals say nothing about other draws)."
    return text


def _rate_sentence(experiment: ExperimentResult, names: list[str]) -> str:
    cells = experiment.cells
    band = cells[names[0]].decay_rate.levels
    band_text = f"{round(100 * band[0])}–{round(100 * band[2])} %"
    parts, unresolved = [], []
    for name in names:
        s = cells[name]
        r = s.decay_rate
        fam = _FAMILY_NAMES.get(name, name)
        final_rv = s.log10_norm_final.get("full")
        final = float(s.log10_spectral_norm.median[-1])
        ci = _ci(*(r.runs.low, r.runs.high) if r.runs is not None else (None, None))
        parts.append(
            f"{fam} {_rate(r.median)}{ci} decades per step "
            f"({band_text} band{' of the runs' if ci else ''} {_rate(r.low)} to "
            f"{_rate(r.high)}), norm {power10(final)}{_power_ci(final_rv)} at k = {s.steps}"
        )
        if r.runs is not None and r.runs.interval is not None:
            lo, hi = float(r.runs.interval["low"]), float(r.runs.interval["high"])
            spanned = [k for k in _VERBS if k != "no finite rate" and _overlaps(k, lo, hi)]
            if len(spanned) > 1:
                edges = [e for e in (-NEUTRAL_TOL, NEUTRAL_TOL) if lo < e < hi]
                unresolved.append(
                    f" The {fam}'s interval reaches across "
                    + " and ".join(_rate(e) for e in edges)
                    + " decades per step: the data do not resolve whether its gradient "
                    + " or ".join(_VERBS[k][0] for k in spanned)
                    + "."
                )
    out = "Median decay rate of the spectral norm of the Jacobian product: " + "; ".join(parts)
    return out + "." + "".join(unresolved)


def _overlaps(name: str, lo: float, hi: float, tol: float = NEUTRAL_TOL) -> bool:
    """Whether ``[lo, hi]`` meets the rates of regime ``name``."""
    if name == "vanishing":
        return lo < -tol
    if name == "exploding":
        return hi > tol
    return lo <= tol and hi >= -tol


def rate_ratio(base: DecayRate, other: DecayRate) -> Interval | None:
    """``base.median / other.median`` (how many times more slowly gradients fade in
    ``other`` than in ``base``) with the bootstrap interval of that ratio of medians, each
    cell's draws resampled independently (:func:`~gradflow.analysis.uncertainty.
    ratio_interval`); None unless both medians vanish (are negative) and both rates carry
    their runs with finite values."""
    b, r = base.median, other.median
    if b is None or r is None or not (b < 0 and r < 0):
        return None
    if base.runs is None or other.runs is None:
        return None
    return ratio_interval(base.runs.values, base.runs.draws, other.runs.values, other.runs.draws)


def _ratio_text(name: str, base: DecayRate, other: DecayRate) -> str | None:
    """How many times more slowly gradients fade in ``name`` than in the RNN, with the
    bootstrap interval of the ratio of median rates; None where the medians do not both
    vanish."""
    b, r = base.median, other.median
    if b is None or r is None or not (b < 0 and r < 0):
        return None
    fam = _FAMILY_NAMES.get(name, name)
    q = b / r
    if base.runs is None or other.runs is None:
        return f"{q:.1f} times more slowly in the {fam}"
    iv = rate_ratio(base, other)
    if iv is None:
        return f"{q:.1f} times more slowly in the {fam} (no interval: a run has no finite rate)"
    lo, hi = iv.low, iv.high
    ci = f"[{lo:.1f}, {hi:.1f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    if 1.0 < lo and math.isfinite(hi):
        return f"{q:.1f} {ci} times more slowly in the {fam}"
    if 0.0 < lo and hi < 1.0:
        return f"{1.0 / q:.1f} [{1.0 / hi:.1f}, {1.0 / lo:.1f}] times faster in the {fam}"
    return (
        f"{q:.1f} times more slowly in the {fam}, but the ratio's interval "
        f"{ci or 'has an unbounded end'}{' includes 1' if lo <= 1.0 <= hi else ''}: the "
        "data do not resolve which fades faster"
    )


def summary_sentences(experiment: ExperimentResult) -> list[str]:
    """The headline numbers in sentences, each with its 95 % bootstrap interval where the
    result carries per-run values (schema version 4), and the conditions said once.

    Sentences: the conditions; the median decay rates (with the runs' band) and norms at
    ``k = T`` of the headline cells; how many times more slowly gradients fade in the gated
    cells than in the RNN (the ratio of median rates, each cell's draws resampled
    independently); the LSTM's additive path at ``k = T``; the regimes of all cells, with how
    many of their intervals reach across the neutral band. Where an interval crosses a
    boundary (zero, the neutral band, a ratio of 1) the sentence says that the data do not
    resolve it.
    """
    cells = experiment.cells
    names = headline_cells(experiment)
    out = [conditions_sentence(experiment), _rate_sentence(experiment, names)]
    base = cells["rnn"].decay_rate if "rnn" in names else None
    ratios = [
        t
        for n in names
        if n != "rnn" and base is not None
        if (t := _ratio_text(n, base, cells[n].decay_rate)) is not None
    ]
    if ratios:
        how = (
            " (the ratio of the median rates; its interval resamples each cell's draws "
            "independently)"
            if any(cells[n].decay_rate.runs is not None for n in names)
            else ""
        )
        sentence = f"Relative to the vanilla RNN{how}, gradients fade {' and '.join(ratios)}."
        lstm = cells.get("lstm")
        add = lstm.quantity("log10_spectral_norm", "additive") if lstm is not None else None
        if lstm is not None and add is not None:
            rv = lstm.log10_norm_final.get("additive")
            sentence += (
                f" The LSTM's additive path alone (the cell state's diag(f_t), no weight "
                f"matrix) keeps {power10(float(add.median[-1]))}{_power_ci(rv)} at "
                f"k = {lstm.steps}; the RNN has no additive path."
            )
        out.append(sentence)
    out.append(_regime_sentence(experiment))
    return out


def _regime_sentence(experiment: ExperimentResult) -> str:
    cells = experiment.cells
    counts: dict[str, int] = {}
    across, no_interval = [], []
    for name, s in cells.items():
        r = s.decay_rate
        counts[regime(r.median)] = counts.get(regime(r.median), 0) + 1
        if r.runs is None or r.median is None:
            continue
        if r.runs.interval is None:
            no_interval.append(name)
        elif regime(r.runs.low) != regime(r.runs.high):
            across.append(name)
    verbs = {**_VERBS, "neutral": ("is neutral", "are neutral")}
    out = (
        f"Of the {len(cells)} cells, "
        + ", ".join(f"{n} {verbs[k][n != 1]}" for k in verbs if (n := counts.get(k, 0)))
        + f" (neutral: within ±{NEUTRAL_TOL:g} decades per step)"
    )
    if any(s.decay_rate.runs is not None for s in cells.values()):
        if across:
            out += (
                f"; the rate's 95 % interval reaches across ±{NEUTRAL_TOL:g} for "
                f"{len(across)} of them ({', '.join(across)}), whose regime the data do not "
                "resolve"
            )
        else:
            out += "; no cell's 95 % interval reaches across the neutral band's edges"
        if no_interval:
            out += (
                f"; {', '.join(no_interval)} {'has' if len(no_interval) == 1 else 'have'} no "
                "interval (a run's product is exactly zero)"
            )
    return out + "."


def natural_key(key: str) -> tuple[tuple[int, float, str], ...]:
    """Sort key that orders numbers inside names by value: ``_2`` before ``_12``."""
    parts = re.split(r"(-?\d+(?:\.\d+)?)", key)
    return tuple((1, float(p), "") if i % 2 else (0, 0.0, p) for i, p in enumerate(parts) if p)


def _unitless(key: str, value: float) -> tuple[str, str]:
    """``(number, unit)`` of one measured float, the unit inferred from its key."""
    if key.startswith("rate_") or "slope" in key or key.endswith("_growth"):
        return _rate(value), " decades/step"
    if "slack" in key:
        return f"{value:.1f}".replace("-", "−"), " decades"
    if "fraction" in key:
        return f"{100 * value:.0f}", " %"
    if "tail_share" in key:
        return f"{value:.3f}", ""
    if "lag" in key or key.startswith("log10_"):
        return power10(value), ""
    if "relative_error" in key:
        return f"{100 * value:.1f}", " %"
    if key.startswith("ratio"):
        return f"{value:.4g}", ""
    if value.is_integer() and abs(value) < 1e9:
        return f"{int(value):d}", ""
    return f"{value:.3g}".replace("-", "−"), ""


def format_measured(key: str, value: Any, interval: Mapping[str, Any] | None = None) -> str:
    """One measured number of a claim, rounded and with its unit (inferred from its key);
    with its bootstrap interval ``[low, high]`` when one is given."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")
    if not isinstance(value, float):
        return str(value)
    number, unit = _unitless(key, value)
    if interval is None:
        return number + unit
    lo, hi = (_unitless(key, float(interval[e]))[0] for e in ("low", "high"))
    return f"{number} [{lo}, {hi}]{unit}"


def measured_rows(
    measured: Mapping[str, Any], intervals: Mapping[str, Mapping[str, Any]] | None = None
) -> list[tuple[str, str]]:
    """``(label, formatted value)`` in natural order of the keys, each with its interval.

    A ``log10_`` key's value is shown as the power it stands for, so its label drops the
    prefix (``log10_gradient_norm = 5.2`` is shown as ``gradient_norm = 1.6 × 10⁵``); the data
    files keep the key and the log10 value."""
    iv = intervals or {}
    return [
        (k.removeprefix("log10_"), format_measured(k, measured[k], iv.get(k)))
        for k in sorted(measured, key=natural_key)
    ]


def cli_lines(experiment: ExperimentResult, index: str, seconds: float) -> list[str]:
    """What ``gradflow report`` prints when it ends: the headline rates, where the report is
    and how long it took."""
    rates = []
    with_ci = True
    for name in headline_cells(experiment):
        r = experiment.cells[name].decay_rate
        iv = r.interval
        with_ci = with_ci and iv is not None
        ci = f" [{_rate(iv['low'])}, {_rate(iv['high'])}]" if iv is not None else ""
        rates.append(f"{name} {_rate(r.median)}{ci} [{_rate(r.low)}, {_rate(r.high)}]")
    minutes, secs = divmod(seconds, 60.0)
    took = f"{int(minutes)} min {secs:.0f} s" if minutes else f"{secs:.1f} s"
    what = "median [95 % CI] [band]" if with_ci and rates else "median [band]"
    return [
        f"decay rates, decades per step ({what}): " + ", ".join(rates),
        f"report written in {took}: {index}",
    ]

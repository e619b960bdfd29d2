"""The story of a report in words: the headline cells, sentences with measured numbers, and
numbers formatted for people (units, rounding, natural order).

Everything here reads the typed results; raw values stay in the report's data files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..results import ExperimentResult

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


def summary_sentences(experiment: ExperimentResult) -> list[str]:
    """Three or four sentences with the headline numbers and their bands."""
    cells = experiment.cells
    names = headline_cells(experiment)
    first = cells[names[0]]
    band = first.decay_rate.levels
    band_text = f"{round(100 * band[0])}–{round(100 * band[2])} %"
    cfg = experiment.config
    inputs = cfg.get("inputs") or {}
    kind = _INPUTS.get(str(inputs.get("kind", "gaussian")), "user")
    out = [
        f"{len(cells)} cells, n = {first.hidden_size} hidden units, T = {first.steps} steps of "
        f"{kind} inputs (d = {first.input_size}), {first.runs} runs per cell; "
        f"{init_text(cfg)}."
    ]
    parts = []
    for name in names:
        r = cells[name].decay_rate
        final = float(cells[name].log10_spectral_norm.median[-1])
        parts.append(
            f"{_FAMILY_NAMES.get(name, name)} {_rate(r.median)} decades per step "
            f"({band_text} band {_rate(r.low)} to {_rate(r.high)}), norm "
            f"{power10(final)} at k = {cells[name].steps}"
        )
    out.append(
        "Median decay rate of the spectral norm of the Jacobian product: " + "; ".join(parts) + "."
    )
    rates = {n: cells[n].decay_rate.median for n in names}
    base = rates.get("rnn")
    ratios = {
        n: base / r
        for n, r in rates.items()
        if n != "rnn" and base is not None and r is not None and base < 0 and r < 0
    }
    if ratios:
        slower = " and ".join(
            f"{q:.1f} times more slowly in the {_FAMILY_NAMES.get(n, n)}" for n, q in ratios.items()
        )
        sentence = f"Relative to the vanilla RNN, gradients fade {slower}."
        lstm = cells.get("lstm")
        add = lstm.quantity("log10_spectral_norm", "additive") if lstm is not None else None
        if lstm is not None and add is not None:
            sentence += (
                f" The LSTM's additive path alone (the cell state's diag(f_t), no weight "
                f"matrix) keeps {power10(float(add.median[-1]))} at k = {lstm.steps}; the RNN "
                "has no additive path."
            )
        out.append(sentence)
    counts: dict[str, int] = {}
    for s in cells.values():
        counts[regime(s.decay_rate.median)] = counts.get(regime(s.decay_rate.median), 0) + 1
    verbs = {
        "vanishing": ("vanishes", "vanish"),
        "neutral": ("is neutral", "are neutral"),
        "exploding": ("explodes", "explode"),
        "no finite rate": ("has no finite rate", "have no finite rate"),
    }
    out.append(
        f"Of the {len(cells)} cells, "
        + ", ".join(f"{n} {verbs[k][n != 1]}" for k in verbs if (n := counts.get(k, 0)))
        + f" (neutral: within ±{NEUTRAL_TOL:g} decades per step)."
    )
    return out


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
    for name in headline_cells(experiment):
        r = experiment.cells[name].decay_rate
        rates.append(f"{name} {_rate(r.median)} [{_rate(r.low)}, {_rate(r.high)}]")
    minutes, secs = divmod(seconds, 60.0)
    took = f"{int(minutes)} min {secs:.0f} s" if minutes else f"{secs:.1f} s"
    return [
        "decay rates, decades per step (median [band]): " + ", ".join(rates),
        f"report written in {took}: {index}",
    ]

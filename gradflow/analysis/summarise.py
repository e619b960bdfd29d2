"""Summarising an experiment: the runs of one cell reduced to a typed :class:`CellSummary`.

Runs (``seeds x batch`` of them) become quantile :class:`~gradflow.results.Band` s per lag, a
decay rate with its band, the Pascanu bound where it applies and the mean-field prediction where
it applies.

References:
    [pascanu2013] for the bound; [poole2016] for the mean-field prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

import numpy as np

from ..cells import CATALOGUE, Cell
from ..errors import UsageError
from ..initialisers import Init
from ..results import (
    AnalysisResult,
    Band,
    CellCard,
    CellSummary,
    DecayRate,
    MeanField,
    PascanuBound,
    level_name,
)
from .bounds import pascanu_log10_bound
from .config import ExperimentConfig
from .decay import decay_rate
from .meanfield import predicted_log10_slope, tanh_fixed_point

Run = tuple[AnalysisResult, dict[str, np.ndarray], np.ndarray]
INIT_KEYS = tuple(f.name for f in fields(Init))


def band_names(quantiles: tuple[float, float]) -> tuple[str, str, str]:
    """Labels of the lower band, the median and the upper band: ``q10, median, q90`` for the
    default quantiles, ``q5, median, q95`` for ``(0.05, 0.95)`` (used in tables only)."""
    return level_name(quantiles[0]), "median", level_name(quantiles[1])


def run_decay_rates(log10_norms: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Decay rate of each run (column); ``-inf`` for a run whose product is exactly zero
    somewhere in the window (every unit of a ReLU cell inactive at one step)."""
    seg = log10_norms[window[0] : window[1] + 1]
    finite = np.isfinite(seg).all(axis=0)
    rates = np.full(log10_norms.shape[1], -np.inf)
    if finite.any():
        rates[finite] = decay_rate(log10_norms[:, finite], window)
    return rates


def _stack(arrays: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float) for a in arrays], axis=-1)


def _finite(value: float | np.ndarray) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def summarise_cell(
    config: ExperimentConfig,
    cell: Cell,
    init: Init,
    runs: list[Run],
    card: CellCard | None = None,
) -> CellSummary:
    """Reduce the runs of one cell (one per seed, ``B`` sequences each) to its summary."""
    res = [r for r, _, _ in runs]
    qs = config.quantiles
    spec = _stack(r.log10_spectral_norm for r in res)  # (T + 1, seeds * B)
    k0, k1 = config.window
    rates = Band.of(run_decay_rates(spec, (k0, k1)), qs, axis=0)
    return CellSummary(
        cell=cell.name,
        hidden_size=config.hidden_size,
        input_size=config.input_size,
        steps=config.steps,
        batch=config.batch,
        runs=int(spec.shape[1]),
        quantiles=qs,
        init={k: getattr(init, k) for k in INIT_KEYS},
        log10_spectral_norm=Band.of(spec, qs),
        log10_frobenius_norm=Band.of(_stack(r.log10_frobenius_norm for r in res), qs),
        log10_spectral_norm_hidden=Band.of(_stack(r.log10_spectral_norm_hidden for r in res), qs),
        paths={
            p: Band.of(_stack(r.paths[p]["log10_spectral_norm"] for r in res), qs)
            for p in (res[0].paths or {})
        },
        log10_singular_values={
            lag: np.concatenate([r.log10_singular_values[lag] for r in res])
            for lag in sorted(res[0].log10_singular_values or {})
        },
        lyapunov_exponents=(
            np.concatenate([r.lyapunov_exponents for r in res if r.lyapunov_exponents is not None])
            if res[0].lyapunov_exponents is not None
            else None
        ),
        log10_gradient_norm=(
            Band.of(_stack(r.log10_gradient_norm for r in res), qs)  # type: ignore[misc]
            if res[0].log10_gradient_norm is not None
            else None
        ),
        decay_rate=DecayRate(
            median=_finite(rates.median),
            low=_finite(rates.low),
            high=_finite(rates.high),
            levels=rates.levels,
            window=(k0, k1),
        ),
        pascanu=_pascanu(cell, runs),
        meanfield=_meanfield(config, cell, init, runs),
        card=card,
    )


def _pascanu(cell: Cell, runs: list[Run]) -> PascanuBound | None:
    """The Pascanu bound per run (median over runs) and whether every run stays below it."""
    bounds, holds = [], True
    for result, params, _ in runs:
        try:
            b = np.asarray(pascanu_log10_bound(cell, params, result.lags), dtype=float)
        except UsageError:
            return None
        spec = np.asarray(result.log10_spectral_norm, dtype=float)
        holds = holds and bool(np.all(spec <= b[:, None] + 1e-9))
        bounds.append(np.repeat(b[:, None], spec.shape[1], axis=1))
    median = np.median(np.concatenate(bounds, axis=1), axis=1)
    return PascanuBound(median, holds)


def _meanfield(
    config: ExperimentConfig, cell: Cell, init: Init, runs: list[Run]
) -> MeanField | None:
    """The mean-field slope for the tanh RNN with Gaussian weights, else None."""
    if cell != CATALOGUE["rnn"] or init.scheme != "gaussian" or init.spectral_radius is not None:
        return None
    kind = config.inputs.kind
    if kind == "gaussian":
        input_var = config.inputs.scale**2
    elif kind == "constant":
        input_var = config.inputs.value**2
    elif kind == "zeros":
        input_var = 0.0
    else:  # a file: the empirical second moment of the inputs
        input_var = float(np.mean([np.mean(x**2) for _, _, x in runs]))
    q_star, chi = tanh_fixed_point(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    slope = predicted_log10_slope(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    return MeanField(float(slope), float(chi), float(q_star))

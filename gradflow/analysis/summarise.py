"""Summarising an experiment: the runs of one cell reduced to a typed :class:`CellSummary`.

Runs (``seeds x batch`` of them) become quantile :class:`~gradflow.results.Band` s per lag, a
decay rate with its band, the Pascanu bound where it applies, the certified singular values and
the path expansion of the exact pass (:func:`gradflow.analysis.exact.experiment_exact`), and the
annealed mean field (:func:`gradflow.analysis.annealed.cell_meanfield`) for every cell it
applies to.

References:
    [pascanu2013] for the bound; [poole2016] and [chen2018minimalrnn] for the mean field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import numpy as np
import sympy as sp

from ..cells import CATALOGUE, Cell
from ..decomposition import PathExpansion
from ..diagonal import jacobian_structure
from ..errors import UsageError
from ..initialisers import Init, recurrent_vectors, sigmoid_gates
from ..paper_inits import PAPER_INITS
from ..prodsvd import ProductSpectrum
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
from ..results.diagnostics import AnnealedGrowth, PathTerms
from ..results.experiment import ONE_SVD
from ..results.runs import RunValues
from .annealed import cell_meanfield
from .bounds import pascanu_log10_bound
from .config import ExperimentConfig
from .decay import decay_rate
from .exact import EXACT_DRAWS
from .lyapunov import experiment_lyapunov
from .meanfield import predicted_log10_slope, tanh_fixed_point
from .tied_trajectory import trajectory_meanfield
from .uncertainty import run_interval

Run = tuple[AnalysisResult, dict[str, np.ndarray], np.ndarray]
Exact = tuple[ProductSpectrum | None, PathExpansion | None]
#: Population, burn-in and measured steps of the annealed mean field in an experiment (the
#: defaults of :func:`~gradflow.analysis.annealed.cell_meanfield` are 2^16, 150, 300: about
#: 60 times the cost, for a sampling error about 8 times smaller).
MEANFIELD_RUN = {"samples": 2**10, "burn_in": 100, "steps": 200}
#: The tied-weight mean field of gated cells (per-unit trajectories): population and matrix
#: size, window (about 0.5 s per LSTM; sampling scatter about 0.003 decades per step).
TIED_RUN = {"samples": 512, "lags": (10, 60), "burn_in": 100}
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
    exact: Exact | None = None,
) -> CellSummary:
    """Reduce the runs of one cell (one per seed, ``B`` sequences each) to its summary.

    ``exact`` is the exact pass over the runs (:func:`gradflow.analysis.exact.experiment_exact`):
    its certified singular values replace those of the engine's single SVD."""
    res = [r for r, _, _ in runs]
    qs = config.quantiles
    spec = _stack(r.log10_spectral_norm for r in res)  # (T + 1, seeds * B)
    k0, k1 = config.window
    per_run = run_decay_rates(spec, (k0, k1))
    rates = Band.of(per_run, qs, axis=0)
    draws = np.asarray(config.seeds)[run_draws(res)]  # each run's weight draw, by its seed
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
        **_singular_values(res, exact),
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
            runs=run_values(per_run, draws),
        ),
        log10_norm_final=_final_norms(res, spec, draws),
        pascanu=_pascanu(cell, runs),
        meanfield=_meanfield(config, cell, init, runs),
        card=card,
        path_terms=_path_terms(exact[1] if exact else None, res),
        annealed=_annealed(config, cell, init, runs) if _diagnostics(config) else None,
        state_free=_state_free(res[0]),
        # every exponent with error bars, D_KY, entropy rate, det check (analysis.lyapunov)
        lyapunov=(
            experiment_lyapunov(cell, [(p, x) for _, p, x in runs[:EXACT_DRAWS]])
            if config.quantities.lyapunov
            else None
        ),
    )


def run_draws(res: list[AnalysisResult]) -> np.ndarray:
    """The weight draw of each run: the index of its result in ``res`` (one per seed),
    repeated for its ``B`` sequences (the order of :func:`_stack`)."""
    return np.concatenate([np.full(r.batch, i, dtype=int) for i, r in enumerate(res)])


def run_values(values: np.ndarray, draws: np.ndarray) -> RunValues:
    """Per-run values (non-finite ones stored as NaN) with their draws (seeds) and the 95 %
    two-stage bootstrap interval of the median
    (:func:`~gradflow.analysis.uncertainty.run_interval`; None with a non-finite run).

    The runs are put in the order of their seeds (stably: a draw's sequences keep their
    order), so the stored values and the interval do not depend on the order the config
    lists its seeds in."""
    d = np.asarray(draws)
    order = np.argsort(d, kind="stable")
    v = np.asarray(values, dtype=float)[order]
    iv = run_interval(v, d[order])
    return RunValues(
        values=np.where(np.isfinite(v), v, np.nan),
        draws=d[order],
        interval=iv.to_dict() if iv is not None else None,
    )


def _final_norms(
    res: list[AnalysisResult], spec: np.ndarray, draws: np.ndarray
) -> dict[str, RunValues]:
    """``log10 ||ds_T/ds_0||_2`` of every run for the full product and, where the cell has
    one, the additive path's chain (the two norms at ``k = T`` a report's summary quotes)."""
    out = {"full": run_values(spec[-1], draws)}
    if "additive" in (res[0].paths or {}):
        add = _stack(r.paths["additive"]["log10_spectral_norm"] for r in res)
        out["additive"] = run_values(add[-1], draws)
    return out


def _state_free(result: AnalysisResult) -> bool | None:
    """``meta["structure"]["state_free"]`` of a run, when the engine records it."""
    structure = result.meta.get("structure")
    flag = structure.get("state_free") if isinstance(structure, dict) else None
    return bool(flag) if isinstance(flag, bool) else None


def _diagnostics(config: ExperimentConfig) -> bool:
    """Whether the experiment asks for more than norms (paths, singular values or Lyapunov
    exponents): the annealed mean field comes with those (a sweep of plain norms skips it)."""
    q = config.quantities
    return bool(q.paths or q.singular_lags or q.lyapunov)


def _singular_values(res: list[AnalysisResult], exact: Exact | None) -> dict[str, Any]:
    """The singular values, certified where the exact pass made them (else the engine's)."""
    sp = exact[0] if exact else None
    if sp is None:
        return {
            "log10_singular_values": {
                lag: np.concatenate([r.log10_singular_values[lag] for r in res])
                for lag in sorted(res[0].log10_singular_values or {})
            },
            "singular_values_method": ONE_SVD,
        }
    return {
        "log10_singular_values": {k: sp.log10_singular_values[i] for i, k in enumerate(sp.lags)},
        "singular_values_certified": {k: sp.certified[i] for i, k in enumerate(sp.lags)},
        "singular_values_method": sp.method + f" (tolerance {sp.tol:g} decades)",
    }


def _path_terms(e: PathExpansion | None, res: list[AnalysisResult]) -> PathTerms | None:
    """The typed record of an expansion (runs along the second axis), with the additive
    share at its lags over every run (:func:`additive_share_intervals`)."""
    if e is None:
        return None
    return PathTerms(
        lags=e.lags,
        log10_full_norm=e.log10_full_norm,
        log10_additive_norm=e.log10_additive_norm,
        log10_multiplicative_norm=e.log10_multiplicative_norm,
        log10_term_norm=e.log10_term_norm,
        resolved=e.resolved,
        blocks=dict(e.blocks),
        additive_share_interval=additive_share_intervals(res, e.lags),
    )


def additive_share_intervals(
    res: list[AnalysisResult], lags: Iterable[int]
) -> dict[int, dict[str, Any]]:
    r"""``{lag: interval}`` of ``log10 (||S_0||_F / ||P_k||_F)`` over every run.

    ``S_0 = prod_t A_t`` is the engine's additive chain and ``P_k`` its full product, both
    followed for every sequence of every seed (the expansion itself, ``O(K^2)`` matrix
    products, covers one sequence): the median over the runs with its 95 % percentile-bootstrap
    interval (:func:`~gradflow.analysis.uncertainty.bootstrap_interval`). The sequences of one
    seed share its weights, so with two or more seeds the interval resamples both stages (the
    seeds, then the sequences within each); with one seed, the sequences alone (the interval
    then says nothing about other weight draws). A lag without two runs of finite share (no
    additive chain, a product exactly zero) is left out.
    """
    if not res[0].paths or "additive" not in res[0].paths:
        return {}
    add = _stack(r.paths["additive"]["log10_frobenius_norm"] for r in res)
    full = _stack(r.log10_frobenius_norm for r in res)
    seed = run_draws(res)
    out = {}
    for k in lags:
        if not 0 < k < add.shape[0]:
            continue
        with np.errstate(invalid="ignore"):
            share = add[k] - full[k]
        ok = np.isfinite(share)
        iv = run_interval(share[ok], seed[ok])
        if iv is not None:
            out[int(k)] = iv.to_dict()
    return out


def _input_var(config: ExperimentConfig, runs: list[Run]) -> float:
    """The variance of one input entry: from the config, or measured on a file's inputs."""
    kind = config.inputs.kind
    if kind == "gaussian":
        return float(config.inputs.scale**2)
    if kind == "constant":
        return float(config.inputs.value**2)
    if kind == "zeros":
        return 0.0
    return float(np.mean([np.mean(x**2) for _, _, x in runs]))


def _annealed(
    config: ExperimentConfig, cell: Cell, init: Init, runs: list[Run]
) -> AnnealedGrowth | None:
    """The annealed mean-field growth rate of ``E||P_k||_F^2`` (None where the theory has no
    random ensemble: the identity scheme, fixed or paper-specific weights)."""
    try:
        mf = cell_meanfield(
            cell,
            init,
            config.hidden_size,
            config.input_size,
            _input_var(config, runs),
            **MEANFIELD_RUN,
        )
    except UsageError:
        return None
    warnings = list(mf.warnings)
    tied = float("nan")
    if sigmoid_gates(cell):
        if mf.applies:
            tied = trajectory_meanfield(
                cell,
                init,
                config.hidden_size,
                config.input_size,
                _input_var(config, runs),
                **TIED_RUN,  # type: ignore[arg-type]
            ).slope
        warnings.append(
            "gated cell: the annealed theory redraws the weights at every step (untied "
            "weights); a network reuses them and its gradients decay markedly slower below the "
            "critical gain"
            + (
                ", so the column shows the tied-weight mean field with per-unit trajectories "
                "instead (within 5 % of the growth rate of tied n = 1024 networks for rnn, "
                "minimalrnn, lstm and gru from 0.5 to 2 times the critical gain; docs/theory.md "
                "section 8.3); both rates are in decay_rates.csv"
                if np.isfinite(tied)
                else " (docs/theory.md section 8)"
            )
        )
    warnings += diagonal_warnings(cell, init, config.hidden_size)
    dead = dead_product_warning(_stack(r.log10_frobenius_norm for r, _, _ in runs))
    if dead:
        warnings.append(dead)

    def fin(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return AnnealedGrowth(
        growth_rate=fin(mf.growth_rate) if mf.applies else None,
        stderr=fin(mf.growth_rate_stderr) if mf.applies else None,
        additive_growth_rate=fin(mf.additive_growth_rate),
        multiplicative_growth_rate=fin(mf.multiplicative_growth_rate),
        applies=mf.applies,
        warnings=tuple(warnings),
        assumptions=mf.assumptions,
        tied_growth_rate=fin(tied),
    )


def diagonal_warnings(cell: Cell, init: Init, n: int) -> list[str]:
    """Why the annealed rate does not describe a network whose state Jacobian is diagonal (a
    unit-by-unit recurrence: IndRNN, minGRU, RG-LRU, ...), and, for a recurrent vector that
    multiplies each unit's Jacobian entry (IndRNN's ``u``) under PyTorch's fan-in rule, why
    the rate is so low.

    With a dense ``W`` each step's Jacobian sums over ``n`` units, which averages the weights,
    so the tied network follows the annealed ensemble (weights redrawn every step; exactly for
    the tanh RNN, docs/theory.md section 8). A diagonal Jacobian has no such sum: each unit is
    a chain of its own, and the annealed rate (the log of the units' mean squared factor) is
    not the network's, whose norm follows its slowest units."""
    s = jacobian_structure(cell)
    if s.pattern != "diagonal":
        return []
    out = [
        "diagonal Jacobian: each unit is a chain of its own and no sum over units averages "
        "the weights, so the annealed rate (weights redrawn every step: the mean of the "
        "units' squared factors) is not the network's, whose norm follows its slowest units"
    ]
    vectors = recurrent_vectors(cell)
    if init.scheme != "torch" or not vectors:
        return out
    factors: set[str] = set()
    for state, node in cell.update:
        expr = cell.node_map[node].expr  # type: ignore[union-attr]
        coef = sp.diff(expr, cell.symbol(state))
        factors |= {str(f) for f in sp.Mul.make_args(coef)} & vectors
    for u in sorted(factors):
        bound = 1.0 / math.sqrt(n)
        out.append(
            f"PyTorch's fan-in rule draws the recurrent vector {u} from U(-1/sqrt(n), "
            f"1/sqrt(n)), a bound meant for a weight summed over n units: every |{u}_i| < "
            f"{bound:.2g} at n = {n}, and {u} multiplies each unit's Jacobian entry, so every "
            f"unit's chain falls by at least {-math.log10(bound):.2f} decades per step at any "
            "input; hence the low annealed rate"
            + (
                " (init scheme 'paper' draws the cell paper's own values)"
                if cell.name in PAPER_INITS
                else ""
            )
        )
    return out


def dead_product_warning(log10_norms: np.ndarray) -> str | None:
    """A warning when the product of some runs (columns) is exactly zero at some lag: every
    unit inactive at one step (a ReLU unit's chain ends at its first inactive step, dead for
    gradients), so those runs have no decay rate while the annealed average has one."""
    dead = ~np.isfinite(np.asarray(log10_norms, dtype=float)) & (np.asarray(log10_norms) < 0)
    dead_runs = dead.any(axis=0)
    if not dead_runs.any():
        return None
    first = dead.argmax(axis=0)[dead_runs]
    runs = int(dead_runs.size)
    when = f"by lag {int(first.max())}" if dead_runs.all() else f"first at lag {int(first.min())}"
    return (
        f"the product is exactly zero in {int(dead_runs.sum())} of {runs} runs ({when}): every "
        "unit's chain met an exact zero factor (a ReLU unit's at its first inactive step: dead "
        "for gradients); such a run has no decay rate, the annealed average over redrawn "
        "weights still has one"
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
    input_var = _input_var(config, runs)
    q_star, chi = tanh_fixed_point(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    slope = predicted_log10_slope(init.sigma_w, init.sigma_u, init.sigma_b, input_var)
    return MeanField(float(slope), float(chi), float(q_star))

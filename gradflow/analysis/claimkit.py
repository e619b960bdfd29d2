"""Shared parts of the claims (:mod:`gradflow.analysis.claims`): one weight draw, a number
with its bootstrap interval over draws, and the typed :class:`~gradflow.results.Claim`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..cells import get_cell
from ..engine import analyze, split_draws
from ..initialisers import initialise
from ..results import Claim
from .config import ExperimentConfig
from .decay import decay_rate
from .run import cell_init, experiment_inputs, seed_sequence
from .uncertainty import bootstrap_interval

Tick = Callable[[], None]


def draw(
    config: ExperimentConfig, seed: int, *, dtype: str = "float64", **init: Any
) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    """One weight draw of the config's first cell: ``(AnalysisResult, params, inputs)``.

    Parameters and inputs come from the seeds of :func:`gradflow.analysis.run.run_cell`, so
    the same draw at another ``sigma_w`` has the same standard-normal weights, rescaled."""
    cell = get_cell(config.cells[0])
    ini = replace(cell_init(config.init, cell), **init)
    rng = np.random.default_rng(seed_sequence(seed, cell.name))
    params = initialise(cell, config.hidden_size, config.input_size, ini, rng)
    x = experiment_inputs(config, seed)
    kw = config.quantities.analyze_kwargs()
    res = analyze(cell, params, x, backend=config.backend, dtype=dtype, hidden=False, **kw)
    return res, params, x


def draw_all(
    config: ExperimentConfig, *, dtype: str = "float64", **init: Any
) -> list[tuple[Any, dict[str, np.ndarray], np.ndarray]]:
    """:func:`draw` for every seed of the config, in ONE grouped call of the engine
    (``draws = len(config.seeds)``, one spectral-norm estimator per draw): the same
    parameters, inputs and numbers as the loop over :func:`draw`, bit for bit, at the per-step
    overhead of one call. A backend other than NumPy runs the loop."""
    if config.backend != "numpy" or len(config.seeds) < 2:
        return [draw(config, seed, dtype=dtype, **init) for seed in config.seeds]
    cell = get_cell(config.cells[0])
    ini = replace(cell_init(config.init, cell), **init)
    n, d = config.hidden_size, config.input_size
    params = [
        initialise(cell, n, d, ini, np.random.default_rng(seed_sequence(seed, cell.name)))
        for seed in config.seeds
    ]
    xs = [experiment_inputs(config, seed) for seed in config.seeds]
    D = len(config.seeds)
    res = analyze(
        cell,
        {k: np.stack([p[k] for p in params]) for k in params[0]},
        np.concatenate(xs, axis=1),
        dtype=dtype,
        hidden=False,
        draws=D,
        spectral_per_draw=True,
        **config.quantities.analyze_kwargs(),
    )
    return list(zip(split_draws(res, D), params, xs, strict=True))


def add_interval(
    measured: dict[str, Any], intervals: dict[str, Any], key: str, values: Any
) -> None:
    """Record the median over draws of ``values`` and its bootstrap interval under ``key``."""
    iv = bootstrap_interval(values)
    measured[key] = iv.estimate
    intervals[key] = iv.to_dict()


def slope(series: np.ndarray, window: tuple[int, int]) -> float:
    """One draw's decay rate: the least-squares slope of ``series`` over ``window``."""
    return float(decay_rate(np.asarray(series, dtype=float), window))


def ci_text(iv: dict[str, Any], fmt: str = "{:+.3f}") -> str:
    """``estimate [low, high]`` of an interval dict, each number formatted with ``fmt``."""
    return f"{fmt.format(iv['estimate'])} [{fmt.format(iv['low'])}, {fmt.format(iv['high'])}]"


def power_text(iv: dict[str, Any]) -> str:
    """``10^estimate [10^low, 10^high]`` of an interval dict of log10 values (one decimal):
    a fraction too small for a percentage, with its interval."""
    return "10^{:.1f} [10^{:.1f}, 10^{:.1f}]".format(iv["estimate"], iv["low"], iv["high"])


def make_claim(cid: str, title: str, statement: str, conditions: str, **kw: Any) -> Claim:
    """A :class:`~gradflow.results.Claim`; ``configs`` (experiment configs) saved as dicts."""
    configs: Sequence[ExperimentConfig] = kw.pop("configs")
    return Claim(
        id=cid,
        title=title,
        statement=statement,
        conditions=conditions,
        configs=tuple(c.to_dict() for c in configs),
        **kw,
    )


def draws_text(cfg: ExperimentConfig) -> str:
    """The draws of a config in words, for a claim's conditions."""
    return f"{len(cfg.seeds)} weight draws (seeds 0-{len(cfg.seeds) - 1}), one sequence each"

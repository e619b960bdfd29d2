r"""Tied-weight mean field with per-unit trajectories: the pairings of :mod:`.tied` without
the time-independence of a unit's factors.

:mod:`gradflow.analysis.tied` sums the non-crossing pairings of the tied weights in
``(1/n) E tr P_k P_k^T`` and averages each *level* (the diagonal factors of both sides between
two consecutive paired weights: ``phi = (1/n) tr``, the mean over units) as a product of
per-step moments, taking a unit's factors at different steps independent. In a network they
are not: the LSTM's ``c_{t-1} f'``, the GRU's ``(h_{t-1} - n) z'`` and the minimalRNN's
``(h_{t-1} - z) u'`` have mean 0 but a positive correlation in time through the unit's own
state, so the paths that pair the same weight at different times, which time independence
drops, carry weight. And with a finite input size ``d`` one input vector feeds every unit: a
unit's input term ``U_u . x_t`` is correlated across time through ``x_t . x_s / d``, which a
fresh Gaussian per step ignores.

Here a level's average is the mean over a **population of unit trajectories** of the product
of that unit's factors at all the times the level holds, left and right: the population is the
tied forward mean field of :mod:`.annealed` (recurrent pre-activations a Gaussian process in
time with the two-time covariance of tied weights; Sompolinsky, Crisanti & Sommers 1988; Can,
Krishnamurthy & Schwab 2020), each unit with its own rows of the input weights and one input
sequence shared by all, so every per-unit correlation in time is that of the trajectories.
The transfer operator of :mod:`.tied` would have to carry, for every open level, a function of
the unit (a tensor over units per pending level). Instead the sum is evaluated with the
identity it comes from: for ``S -> infinity`` a Gaussian matrix drawn **independently of the
population** is asymptotically free from its diagonal factors (Mingo & Speicher 2017, ch. 4),
so ``(1/S) E tr P_k P_k^T`` with one such matrix per weight type, tied over time, and the
population's diagonals is the non-crossing pairing sum with the per-unit trajectory moments
(up to ``O(1/S)`` crossing terms). It is a Monte Carlo evaluation: ``S^2`` operations per
weighted term and step (``S = 1024`` to ``2048``; seconds), with the sampling scatter stated
where it is used. When a unit's factors are independent in time (the population permuted over
units at every step) the sum reduces to that of :mod:`.tied`. The weights of the backward
pass are independent of those of the forward pass (the gradient-independence assumption; Yang
2019): for the LSTM at ``0.5 sigma_w*`` a network's own forward pass with an independent tied
backward matrix gives ``-0.0848`` against ``-0.0851`` decades per step with its own weights
(2 seeds, ``n = 1024``).

References:
    J. A. Mingo, R. Speicher, *Free Probability and Random Matrices*, Fields Institute
    Monographs 35, Springer 2017 (asymptotic freeness, ch. 4). H. Sompolinsky, A. Crisanti,
    H.-J. Sommers, "Chaos in random neural networks", PRL 61, 259, 1988. T. Can,
    K. Krishnamurthy, D. J. Schwab, "Gating creates slow modes and controls phase-space
    complexity in GRUs and LSTMs", MSML 2020. G. Yang, "Tensor Programs I",
    arXiv:1910.12478, 2019. [gilboa2019], [chen2018minimalrnn].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cells import Cell, get_cell
from ..errors import UsageError
from ..initialisers import Init
from .annealed import _chains, _Population
from .tied import WINDOW, StepFactors, _cell_steps, _slope

#: Population size and probe vectors of the default evaluation.
SAMPLES = 2048
PROBES = 32

ASSUMPTIONS = (
    "tied Gaussian weights, n -> infinity, backward weights free from the units' factors "
    "(non-crossing pairings); per-unit factors from unit trajectories of the tied forward mean "
    "field (recurrent pre-activations a Gaussian process in time), each unit with its own input "
    "rows and one shared input sequence; evaluated with one independent Gaussian matrix per "
    "weight type on a finite population (Monte Carlo)"
)


def trajectory_log_norms(
    steps: Sequence[StepFactors],
    wvar: dict[str, float],
    *,
    probes: int = PROBES,
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """``log10 (1/S) ||P_k||_F^2`` for ``k = 1..K``, ``P_k = J_K ... J_{K-k+1}`` the product of
    the last ``k`` of the ``K`` steps (as a network's backward pass), with one Gaussian matrix
    per weight type (entries ``N(0, wvar / S)``, the same at every step, independent of the
    factors), estimated with ``probes`` Gaussian vectors (``E ||v^T P||^2 = ||P||_F^2``).

    For ``S -> infinity`` this is the non-crossing pairing sum of :func:`~.tied.tied_log_norms`
    with every level averaged over the units' *joint* factors at all its times (module
    docstring); with factors independent in time both agree.
    """
    if not steps:
        return np.zeros(0)
    S, b = steps[0].A.shape[0], steps[0].A.shape[1]
    rng = np.random.default_rng(seed)
    W: dict[str, np.ndarray] = {}
    G = rng.standard_normal((probes, b, S))
    out: list[float] = []
    scale = 0.0
    for f in reversed(steps):
        new = np.einsum("pis,sij->pjs", G, f.A)
        for ch in f.chains:
            x = np.einsum("pis,si->ps", G, ch.d0)  # v^T diag(d_0)
            for s, w in enumerate(ch.weights):
                if w not in W:
                    W[w] = rng.standard_normal((S, S)) * math.sqrt(wvar[w] / S)
                x = x @ W[w]
                if s < len(ch.mids):
                    x = x * ch.mids[s]
            new += x[:, None, :] * ch.dr.T[None]
        m = float(np.mean(np.sum(new * new, axis=(1, 2)))) / S
        if not (m > 0 and math.isfinite(m)):
            out.extend([-math.inf] * (len(steps) - len(out)))
            break
        scale += math.log10(m)
        out.append(scale)
        G = new / math.sqrt(m)
    return np.asarray(out)


@dataclass(frozen=True)
class TrajectoryGrowth:
    """The tied-weight growth of ``E||P_k||_F^2`` with per-unit trajectory moments.

    Attributes:
        cell: cell name.
        slope: least-squares slope of ``0.5 log10 (1/n) E||P_k||_F^2`` over ``lags``, decades
            per step of the Frobenius norm.
        lags: the fitted window ``(lo, hi)``.
        log_sq_norm: ``log10 (1/n) E||P_k||_F^2`` for ``k = 1..hi`` (products ending at the
            last step).
        samples: population size (units and matrix size).
        assumptions: the approximations, in words.
    """

    cell: str
    slope: float
    lags: tuple[int, int]
    log_sq_norm: tuple[float, ...]
    samples: int
    assumptions: str = ASSUMPTIONS


def trajectory_meanfield(
    cell: Cell | str,
    init: Init,
    n: int,
    d: int,
    input_var: float,
    *,
    inputs: np.ndarray | None = None,
    lags: tuple[int, int] = (10, 60),
    samples: int = SAMPLES,
    probes: int = PROBES,
    burn_in: int = 100,
    seed: int = 0,
    window: int = WINDOW,
) -> TrajectoryGrowth:
    """Tied-weight growth of ``E||ds_T/ds_{T-k}||_F^2`` with a unit's factors correlated in
    time (module docstring): the population of :func:`~.annealed.cell_meanfield` run with the
    tied forward pass, then the pairing sum of its trajectories.

    Args:
        cell: a catalogue or user cell (independent Gaussian weight entries).
        init: the initialisation (as for ``cell_meanfield``).
        n: hidden size (the biases' draw).
        d: input size.
        input_var: variance of each input entry (when ``inputs`` is None).
        inputs: the input sequence ``(burn_in + lags[1], d)`` that feeds every unit (None:
            drawn ``N(0, input_var)`` from ``seed``). The prediction for a network driven by
            a given sequence.
        lags: the window ``(lo, hi)`` of the fitted slope; the product ends at the last step.
        samples: population size ``S`` (``S x S`` matrices: cost ``S^2`` per term and step).
        probes: probe vectors of the norm estimate.
        burn_in: population steps before the product's window (from the zero state).
        seed: seed of the population, the matrices and the probes.
        window: past steps a unit's recurrent pre-activation is conditioned on.

    Raises:
        UsageError: bad window, sizes or inputs; cells with matrix definitions.
    """
    c = get_cell(cell) if isinstance(cell, str) else cell
    lo, hi = lags
    if not (1 <= lo < hi) or samples < 64 or probes < 1 or burn_in < 0 or window < 1:
        raise UsageError(
            "need 1 <= lo < hi, samples >= 64, probes >= 1, burn_in >= 0 and window >= 1"
        )
    if c.matrices:
        raise UsageError(f"{c.name}: the tied mean field assumes independent Gaussian entries")
    T = burn_in + hi
    if inputs is None:
        rng = np.random.default_rng([seed, 1])
        inputs = math.sqrt(input_var) * rng.standard_normal((T, d))
    x = np.asarray(inputs, dtype=float)
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] < T or not np.isfinite(x).all():
        raise UsageError(f"inputs must be a finite ({T}, {d}) array, got shape {x.shape}")
    pop = _Population(c, init, n, d, input_var, samples, seed, tied_window=window, inputs=x[:T])
    steps = list(_cell_steps(c, pop, _chains(c, "full"), burn_in, hi))
    y = trajectory_log_norms(steps, pop.wvar, probes=probes, seed=[seed, 2])
    return TrajectoryGrowth(c.name, _slope(y, lo), (lo, hi), tuple(float(v) for v in y), samples)

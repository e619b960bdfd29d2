r"""Tied-weight mean field: non-crossing pairings of the same weights at different times.

The annealed mean field (:mod:`gradflow.analysis.annealed`) redraws the weights at every step.
In a real network the weights are *tied*: the Jacobian ``J_t = A_t + sum_x B_{x,t} W_x C_{x,t}``
(``A_t`` the weight-free per-unit ``b x b`` blocks, ``B_{x,t}``, ``C_{x,t}`` per-unit diagonals
of the chain through ``W_x``, read from the SymPy derivation) carries the *same* Gaussian
``W_x`` (entries ``N(0, sigma_x^2 / n)``) at every step. For ``n -> infinity`` Gaussian
matrices are asymptotically free from the diagonal algebra (Mingo & Speicher 2017, ch. 4), so

.. math:: \tfrac1n \mathbb{E}\,\mathrm{tr}\, P_k P_k^T, \qquad P_k = J_k \cdots J_1,

is a sum over the **non-crossing pairings** of the ``W``'s in ``P_k`` with the ``W^T``'s in
``P_k^T``: nested, the ``j``-th ``W`` from the inside on the left with the ``j``-th from the
inside on the right, of the same type, **possibly at different times** (the annealed theory
keeps only the time-aligned pairings). Each pair ``W X W^T -> sigma^2 phi(X)`` closes a
*level*; inside a level the diagonal factors of both sides are averaged over units together
(``phi``, the mean over units, evaluated on the population sampler of ``annealed``). A factor
of the left and one of the right at the **same time and the same level** are averaged jointly
(a second moment, e.g. ``E[a_t^2]``); factors at different times are taken independent
(``E[a_t] E[a_s]``: the *time-independence* assumption, exact for gates drawn afresh, broken
by per-unit factors that persist, such as the LSTM's ``c_{t-1}`` in the forget-gate term).

The sum is computed by a transfer operator: processing times inside out, the state is
``delta`` = (left ``W``'s) - (right ``W``'s) so far, the queue of the leading side's unmatched
weight types (the lagging side must emit them in order), and a ``b x b`` matrix ``C`` (left
open block index x right open block index). At ``delta = 0`` one step is the annealed Gram
step ``C -> E[J C J^T]``; away from it the two sides are independent walkers with mean factors
``E[A]``, ``E[B_x]``. Scalar check (``A = a I``, ``B = b I``, one ``W``):
``(1/n) E||P_k||_F^2 = sum_j C(k, j)^2 a^{2(k-j)} (sigma b)^{2j}``, whose growth per step is
``(|a| + sigma |b|)^2`` against the annealed ``a^2 + sigma^2 b^2``; the tanh RNN (``A = 0``)
cannot leave ``delta = 0`` and keeps the annealed rate.

The per-step factors come from the population sampler of ``annealed`` run either as there
(pre-activations drawn afresh at every step) or, by default, with the forward pass of tied
weights: a unit's recurrent pre-activation is a Gaussian process in time with covariance
``sum_x sigma_x^2 (1/n) src_x(t) . src_x(s)`` (the dynamic mean field; Sompolinsky, Crisanti
& Sommers, PRL 61, 259, 1988; for gated cells Can, Krishnamurthy & Schwab, MSML 2020).
What neither captures: a unit's factors correlated across time through its own state and its
own input weights in the *backward* pairings (``E[d_t d_s] != E[d_t] E[d_s]`` inside a
level); :mod:`gradflow.analysis.tied_trajectory` averages each level over per-unit
trajectories instead (``benchmarks/meanfield_slope.py``, ``docs/theory.md`` section 8.3).

References:
    J. A. Mingo, R. Speicher, *Free Probability and Random Matrices*, Fields Institute
    Monographs 35, Springer 2017 (non-crossing pairings; asymptotic freeness of Gaussian
    matrices from deterministic matrices, ch. 4). J. Pennington, S. Schoenholz, S. Ganguli,
    "The emergence of spectral universality in deep networks", AISTATS 2018. G. Yang, "Tensor
    Programs I", arXiv:1910.12478, 2019 (gradient independence). [pennington2017],
    [chen2018minimalrnn], [gilboa2019].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..cells import Cell, get_cell
from ..errors import UsageError
from ..initialisers import Init
from .annealed import _Chains, _chains, _Population

#: States whose matrix is below this fraction of the largest are dropped (their paths carry
#: less than this share of the sum; the lost mass is bounded by it per step).
PRUNE = 1e-9
#: Largest queue (|delta|) kept.
MAX_DELTA = 64
#: Past steps a unit's recurrent pre-activation is conditioned on (tied forward pass).
WINDOW = 12

ASSUMPTIONS = (
    "tied Gaussian weights, n -> infinity (free from the per-unit diagonals: non-crossing "
    "pairings); per-unit Jacobian factors independent across time; forward statistics of the "
    "annealed population (independent Gaussian pre-activations per affine node)"
)


@dataclass(frozen=True)
class Chain:
    """One weighted Jacobian term ``diag(d_0) W_1 diag(d_1) ... W_r diag(d_r)`` at one step.

    Attributes:
        weights: ``(W_1, ..., W_r)`` (outside in, as in the derivation).
        d0: ``(S, b)`` the outer diagonal on its output block (zero in the other blocks).
        mids: ``r - 1`` arrays ``(S,)``, the diagonals between the weights.
        dr: ``(S, b)`` the inner diagonal on its input block (zero in the other blocks).
    """

    weights: tuple[str, ...]
    d0: np.ndarray
    mids: tuple[np.ndarray, ...]
    dr: np.ndarray


@dataclass(frozen=True)
class StepFactors:
    """The Jacobian of one step on a population of ``S`` units: ``A`` ``(S, b, b)`` (the
    weight-free part) and the weighted chains."""

    A: np.ndarray
    chains: tuple[Chain, ...]


_Piece = tuple[int, np.ndarray, str]  # (level, per-unit array (S, ...), index labels)


def _pieces(ch: Chain | None, A: np.ndarray, level: int, out: str, inn: str) -> list[_Piece]:
    if ch is None:
        return [(level, A, out + inn)]
    r = len(ch.weights)
    ps: list[_Piece] = [(level, ch.dr, inn)]
    for s, m in enumerate(reversed(ch.mids)):
        ps.append((level + 1 + s, m, ""))
    ps.append((level + r, ch.d0, out))
    return ps


def _kernel(f: StepFactors, cl: Chain | None, cr: Chain | None, delta: int) -> np.ndarray:
    """``K[I, L, i, l]``: ``C' = sum K C`` for the left taking ``cl`` (None: ``A``) and the
    right ``cr``, the left ``delta`` levels above the right; factors at the same level are
    averaged over the population together, the others apart."""
    S = f.A.shape[0]
    groups: dict[int, list[tuple[np.ndarray, str]]] = {}
    for lvl, arr, lab in _pieces(cl, f.A, delta, "I", "i") + _pieces(cr, f.A, 0, "L", "l"):
        groups.setdefault(lvl, []).append((arr, lab))
    ops: list[np.ndarray] = []
    labels: list[str] = []
    for grp in groups.values():
        lab = "".join(lb for _, lb in grp)
        spec = ",".join("u" + lb for _, lb in grp) + "->" + lab
        ops.append(np.einsum(spec, *(a for a, _ in grp)) / S)
        labels.append(lab)
    return np.asarray(np.einsum(",".join(labels) + "->ILil", *ops))


def _match(
    queue: tuple[str, ...], lead: int, left: Sequence[str], right: Sequence[str]
) -> tuple[int, tuple[str, ...], list[str]] | None:
    """Pair the new weights (inside-out order) with the pending ones; None if a type
    mismatches. Returns (new delta, new queue, the matched weight names)."""
    pl = list(queue) if lead > 0 else []
    pr = list(queue) if lead < 0 else []
    pl += left
    pr += right
    matched: list[str] = []
    while pl and pr:
        if pl[0] != pr[0]:
            return None
        matched.append(pl.pop(0))
        pr.pop(0)
    return len(pl) - len(pr), tuple(pl or pr), matched


def tied_log_norms(
    steps: Iterable[StepFactors],
    wvar: dict[str, float],
    *,
    max_delta: int = MAX_DELTA,
    prune: float = PRUNE,
) -> np.ndarray:
    """``log10 (1/n) E||P_k||_F^2`` for ``k = 1, 2, ...`` (one per step of ``steps``, inside
    out), under non-crossing pairings of tied weights (module docstring).

    ``max_delta = 0`` keeps only the time-aligned pairings: the annealed Gram recursion.
    """
    states: dict[tuple[int, tuple[str, ...]], np.ndarray] | None = None
    out: list[float] = []
    scale = 0.0
    for f in steps:
        b = f.A.shape[1]
        if states is None:
            states = {(0, ()): np.eye(b)}
        choices: list[Chain | None] = [None, *f.chains]
        inv = [() if c is None else tuple(reversed(c.weights)) for c in choices]
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        reach = max((len(c.weights) for c in f.chains), default=0)
        new: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}
        for (delta, queue), C in states.items():
            for a, cl in enumerate(choices):
                for c, cr in enumerate(choices):
                    m = _match(queue, delta, inv[a], inv[c])
                    if m is None or abs(m[0]) > max_delta:
                        continue
                    key = (a, c, delta if abs(delta) <= reach else reach + 1)
                    if key not in cache:
                        cache[key] = _kernel(f, cl, cr, key[2])
                    gain = math.prod(wvar[w] for w in m[2])
                    nxt = gain * np.einsum("ILil,il->IL", cache[key], C)
                    k2 = (m[0], m[1])
                    new[k2] = new[k2] + nxt if k2 in new else nxt
        top = max((float(np.max(np.abs(v))) for v in new.values()), default=0.0)
        if not top > 0 or not math.isfinite(top):
            out.append(-math.inf)
            states = {(0, ()): np.eye(b)}
            continue
        states = {k: v / top for k, v in new.items() if float(np.max(np.abs(v))) > prune * top}
        scale += math.log10(top)
        c0 = states.get((0, ()))
        tr = float(np.trace(c0)) if c0 is not None else 0.0
        out.append(scale + math.log10(tr) if tr > 0 else -math.inf)
    return np.asarray(out)


def _cell_steps(
    c: Cell, pop: _Population, chains: _Chains, burn_in: int, steps: int
) -> Iterator[StepFactors]:
    """The Jacobian factors of the cell's derivation on ``steps`` population steps after
    ``burn_in`` (every term ``diag(d_0) W_1 ... W_r diag(d_r)`` of block ``(i, j)`` becomes
    a :class:`Chain` with ``d_0`` in row ``i`` and ``d_r`` in column ``j``)."""
    b, S = len(c.state), pop.size
    for t in range(burn_in + steps):
        vals, _ = pop.step()
        if t < burn_in:
            continue
        A = np.zeros((S, b, b))
        for i, j, e in chains.diag:
            A[:, i, j] += e(vals, S)
        out: list[Chain] = []
        for w, terms in chains.weighted.items():
            for i, j, ds in terms:
                ev = [np.broadcast_to(np.asarray(dg(vals, S), dtype=float), (S,)) for dg in ds]
                d0 = np.zeros((S, b))
                d0[:, i] = ev[0]
                dr = np.zeros((S, b))
                dr[:, j] = ev[-1]
                out.append(Chain(w, d0, tuple(ev[1:-1]), dr))
        yield StepFactors(A, tuple(out))


@dataclass(frozen=True)
class TiedGrowth:
    """The tied-weight mean-field growth of ``E||P_k||_F^2`` of one cell and initialisation.

    Attributes:
        cell: cell name.
        slope: least-squares slope of ``0.5 log10 (1/n) E||P_k||_F^2`` over ``lags``, decades
            per step of the Frobenius norm (the window the benchmarks fit).
        lags: the fitted window ``(lo, hi)``.
        log_sq_norm: ``log10 (1/n) E||P_k||_F^2`` for ``k = 1..hi``.
        annealed_slope: the same slope with the time-aligned pairings only (the annealed
            recursion on the same population draws).
        assumptions: the approximations, in words.
    """

    cell: str
    slope: float
    lags: tuple[int, int]
    log_sq_norm: tuple[float, ...]
    annealed_slope: float
    assumptions: str = ASSUMPTIONS


def _slope(y: np.ndarray, lo: int) -> float:
    ks = np.arange(1, len(y) + 1)
    w = ks >= lo
    if not np.isfinite(y[w]).all():
        return -math.inf
    return float(0.5 * np.polyfit(ks[w], y[w], 1)[0])


def tied_meanfield(
    cell: Cell | str,
    init: Init,
    n: int,
    d: int,
    input_var: float,
    *,
    lags: tuple[int, int] = (10, 60),
    samples: int = 2**14,
    burn_in: int = 100,
    seed: int = 0,
    max_delta: int = MAX_DELTA,
    prune: float = PRUNE,
    forward: str = "tied",
    window: int = WINDOW,
    shared_input: bool = True,
) -> TiedGrowth:
    """Tied-weight growth of ``E||ds_T/ds_{T-k}||_F^2`` from the cell's derivation (module
    docstring), on the forward population of :func:`~gradflow.analysis.annealed.cell_meanfield`.

    Args:
        cell: a catalogue or user cell (independent Gaussian weight entries).
        init: the initialisation (as for ``cell_meanfield``).
        n: hidden size (the biases' draw).
        d: input size.
        input_var: variance of each input entry.
        lags: the window ``(lo, hi)`` of the fitted slope.
        samples: population size.
        burn_in: population steps before the product starts (stationary state).
        seed: the population's seed.
        max_delta: the largest level difference kept.
        prune: states below this fraction of the largest are dropped.
        forward: ``"tied"``: the recurrent pre-activations of a unit form a Gaussian process
            in time with the two-time covariance of tied weights (dynamic mean field,
            conditioned on the last ``window`` steps); ``"annealed"``: drawn afresh at every
            step (the population of ``cell_meanfield``). ``annealed_slope`` always uses the
            annealed forward pass, a fixed input variance and the time-aligned pairings.
        window: see ``forward``.
        shared_input: one input vector of ``d`` Gaussian entries per step feeds every unit,
            so the input term's variance across units is ``input_var |x_t|^2 / d``, drawn
            per step from ``chi^2_d / d`` (False: fixed at ``input_var``, as in
            ``cell_meanfield``). Matters for small ``d`` (the benchmarks use ``d = 4``).

    Raises:
        UsageError: bad window or sizes; cells with matrix definitions.
    """
    c = get_cell(cell) if isinstance(cell, str) else cell
    lo, hi = lags
    if not (1 <= lo < hi) or samples < 64 or burn_in < 0:
        raise UsageError("need 1 <= lo < hi, samples >= 64 and burn_in >= 0")
    if c.matrices:
        raise UsageError(f"{c.name}: the tied mean field assumes independent Gaussian entries")
    if forward not in ("tied", "annealed") or window < 1:
        raise UsageError(f"forward must be 'tied' or 'annealed' and window >= 1, got {forward!r}")
    ys = []
    win, dim = (window if forward == "tied" else 0), (d if shared_input else 0)
    for keep, w, m in ((max_delta, win, dim), (0, 0, 0)):
        pop = _Population(c, init, n, d, input_var, samples, seed, tied_window=w, input_dim=m)
        steps = _cell_steps(c, pop, _chains(c, "full"), burn_in, hi)
        ys.append(tied_log_norms(steps, pop.wvar, max_delta=keep, prune=prune))
    return TiedGrowth(
        c.name, _slope(ys[0], lo), (lo, hi), tuple(float(v) for v in ys[0]), _slope(ys[1], lo)
    )

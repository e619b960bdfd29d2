r"""Mean-field theory of any cell, from its symbolic Jacobian: variances and gradient growth.

For a catalogue or user cell with Gaussian weights (``W_ij ~ N(0, sigma_w^2/n)`` on recurrent
and internal sources, ``U_ij ~ N(0, sigma_u^2/d)`` on inputs), given biases and inputs of
variance ``input_var``, this module computes

* the **stationary statistics of the units**: the pre-activation variance ``q_a`` of every
  affine node (the fixed point of the variance map, [poole2016], [chen2018minimalrnn]) and the
  second moment of every state vector; and
* the **annealed growth rate** of ``E ||ds_T/ds_{T-k}||_F^2`` from the full Jacobian, in
  decades per step of ``||ds_T/ds_{T-k}||_F`` (so ``0.5 log10`` of the per-step factor of the
  squared norm), with the share of the squared norm in each block row (``h``, ``c``), and the
  same rate for the pure additive and the pure multiplicative chains.

**Method (population dynamics).** A population of ``S`` independent units is run through the
cell's own equations (lambdified from its SymPy nodes with the kernels' printer): at every step
each affine node's pre-activation is drawn as ``N(mu_a, q_a)``, with ``q_a`` the weight
variances times the *current* population second moments of its sources (the biases are those
the initialiser draws for the actual ``n``, so forget-gate, update-gate and chrono options are
covered). Elementwise nodes are evaluated exactly, so a state that is not Gaussian (the LSTM
cell state ``c``) is represented by its samples, and every Jacobian diagonal is evaluated on
them. Every Jacobian term is a chain ``diag(d_0) W_1 diag(d_1) \cdots W_r diag(d_r)`` from the
derivation (DESIGN decision 2). The ``b x b`` Gram matrix ``G[i, l]`` of the block rows of the
forward product ``Q_k = J_t \cdots J_{t-k+1}`` (same law as ``P_k`` in the stationary state;
``E||P_k||_F^2 = n tr G``) evolves linearly: weight-free terms give
``sum E[D_ij D_lk] G[j, k]`` with ``D`` the sum of a block's weight-free diagonals, and two
weighted terms of rows ``i, l`` with the same weight chain add

.. math:: \mathbb{E}[d_0 d_0'] \prod_s \sigma_{W_s}^2 \prod_{0<s<r}
          \mathbb{E}[d_s d_s'] \; \mathbb{E}[d_r d_r']\, G[j, j'];

terms with different weight chains, or a weighted and a weight-free term, do not correlate
(zero-mean weights). The squared norm grows by ``tr G' / tr G`` per step; the rate is the
average over ``steps`` steps after ``burn_in`` steps, with a batch-means standard error of
the sampling.

**Assumptions.** Weights are redrawn at every step (the *annealed* or untied-weights
approximation of [chen2018minimalrnn] and [gilboa2019]); pre-activations of different affine
nodes are independent Gaussians, independent of a unit's own past (cross terms are
``O(1/sqrt n)``); inputs are Gaussian and independent across steps; a unit's Jacobian
entries at one step are uncorrelated with the accumulated Gram of its rows (exact for a gate
drawn afresh, e.g. the additive chain ``diag(f)``, whose rate is ``0.5 log10 E[f^2]``; an
approximation for entries that depend on the unit's own state, such as ``tanh'(c_t)``).
It is compared with
``n = 1024`` networks with tied weights in ``benchmarks/meanfield_slope.py``
(``docs/theory.md``); :mod:`gradflow.analysis.tied` adds the pairings of tied weights.
It fails where the state diverges: a ReLU network above its critical
gain grows geometrically, the inputs stop mattering and the set of active units freezes, so
successive Jacobians are not independent; the result then carries a warning and
``applies = False``.

References:
    [poole2016], [schoenholz2017], [chen2018minimalrnn], [gilboa2019].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..cells import Cell, get_cell
from ..cells.graph import Affine, Elementwise
from ..codegen import HELPERS, print_expr
from ..errors import UsageError
from ..initialisers import Init, initialise
from ..symbolic.jacobian import Term, state_jacobian
from .meanfield import Ensemble

#: Population size, burn-in and measured steps of the default run.
SAMPLES = 2**16
BURN_IN = 150
STEPS = 300
#: A state second moment above this is taken as divergence.
DIVERGED = 1e12

ASSUMPTIONS = (
    "annealed (untied) Gaussian weights redrawn every step; independent Gaussian "
    "pre-activations per affine node; Gaussian inputs independent across steps"
)


@dataclass(frozen=True)
class CellMeanField:
    """The mean-field statistics and annealed gradient growth of one cell and initialisation.

    Attributes:
        cell: cell name.
        growth_rate: decades per step of ``||ds_T/ds_{T-k}||_F`` (annealed, full Jacobian).
        growth_rate_stderr: batch-means standard error of ``growth_rate`` (sampling only).
        additive_growth_rate: the same for the pure additive chain (``-inf`` when none).
        multiplicative_growth_rate: the same for the pure multiplicative chain.
        row_share: ``{state vector: share of E||Q||_F^2 in its block row}`` (stationary).
        preactivation_variance: ``{affine node: q_a}`` at the fixed point.
        preactivation_mean: ``{affine node: mu_a}`` (the mean of its biases).
        state_second_moment: ``{state vector: E[s^2]}`` at the fixed point.
        applies: False when the state diverged (see ``warnings``).
        warnings: why the prediction should not be trusted, if it should not.
        assumptions: the approximations, in words.
    """

    cell: str
    growth_rate: float
    growth_rate_stderr: float
    additive_growth_rate: float
    multiplicative_growth_rate: float
    row_share: dict[str, float]
    preactivation_variance: dict[str, float]
    preactivation_mean: dict[str, float]
    state_second_moment: dict[str, float]
    applies: bool = True
    warnings: tuple[str, ...] = ()
    assumptions: str = ASSUMPTIONS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``growth_rate`` in decades per step)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _function(expr: sp.Expr) -> tuple[Callable[..., Any], tuple[str, ...]]:
    """``expr`` as a NumPy function of its symbols' names (the kernels' own printer)."""
    names = tuple(sorted(str(s) for s in expr.free_symbols))
    # the printer calls the tail-exact helpers (_sigmoid, _sech2) the kernels define
    src = f"{HELPERS}\ndef f({', '.join(names)}):\n    return {print_expr(expr)}\n"
    ns: dict[str, Any] = {"xp": np}
    # built from validated identifiers and SymPy's printer, never from raw user text
    exec(compile(src, "<gradflow mean field>", "exec"), ns)
    return ns["f"], names


class _Eval:
    """Evaluate a SymPy expression on the population's values (constant expressions too)."""

    def __init__(self, expr: sp.Expr) -> None:
        self.const = None if expr.free_symbols else float(expr)
        self.key = sp.srepr(expr)
        if self.const is None:
            self.f, self.names = _function(expr)

    def __call__(self, vals: dict[str, Any], size: int) -> Any:
        """The values on the population (a float for a constant), cached per step in
        ``vals`` under the expression's own key."""
        if self.const is not None:
            return self.const
        key = f"#{self.key}"
        if key not in vals:
            with np.errstate(over="ignore", invalid="ignore"):
                out = self.f(*(vals[nm] for nm in self.names))
            vals[key] = np.broadcast_to(np.asarray(out, dtype=float), (size,))
        return vals[key]


@dataclass
class _Chains:
    """The Jacobian's terms grouped for the Gram recursion."""

    diag: list[tuple[int, int, _Eval]]  # (row, col, d0)
    weighted: dict[tuple[str, ...], list[tuple[int, int, list[_Eval]]]]


def _chains(cell: Cell, path: str) -> _Chains:
    jac = state_jacobian(cell)
    if path == "additive":
        jac = jac.additive()
    elif path == "multiplicative":
        jac = jac.multiplicative()
    diag: list[tuple[int, int, _Eval]] = []
    weighted: dict[tuple[str, ...], list[tuple[int, int, list[_Eval]]]] = {}
    for i, j, t in jac.terms():
        assert isinstance(t, Term)
        if not t.weights:
            diag.append((i, j, _Eval(t.diags[0])))
        else:
            weighted.setdefault(t.weights, []).append((i, j, [_Eval(d) for d in t.diags]))
    return _Chains(diag, weighted)


def _gram_step(
    G: np.ndarray,
    ch: _Chains,
    vals: dict[str, Any],
    wvar: dict[str, float],
    b: int,
) -> np.ndarray:
    """One step of the Gram recursion ``G -> E[J G J^T]`` (module docstring)."""
    S = next(v for v in vals.values() if isinstance(v, np.ndarray)).shape[0]
    D: dict[tuple[int, int], Any] = {}
    for i, j, e in ch.diag:
        D[i, j] = D.get((i, j), 0.0) + e(vals, S)
    out = np.zeros((b, b))
    for (i, j), dij in D.items():
        for (r, k), drk in D.items():
            out[i, r] += float(np.mean(dij * drk)) * G[j, k]
    for weights, terms in ch.weighted.items():
        gain = math.prod(wvar[w] for w in weights)
        for i, j, di in terms:
            for r, jj, dl in terms:
                mid = 1.0
                for s in range(1, len(weights)):
                    mid *= float(np.mean(di[s](vals, S) * dl[s](vals, S)))
                tail = float(np.mean(di[-1](vals, S) * dl[-1](vals, S)))
                lead = float(np.mean(di[0](vals, S) * dl[0](vals, S)))
                out[i, r] += lead * gain * mid * tail * G[j, jj]
    return out


class _Population:
    """``S`` independent units run through the cell's own equations (module docstring): each
    affine node's pre-activation is drawn afresh as ``N(mu_a, q_a)`` from the current
    population second moments of its sources; elementwise nodes are evaluated exactly."""

    def __init__(
        self,
        c: Cell,
        init: Init,
        n: int,
        d: int,
        input_var: float,
        samples: int,
        seed: int,
        tied_window: int = 0,
        input_dim: int = 0,
        inputs: np.ndarray | None = None,
    ) -> None:
        ens = Ensemble.from_init(init, n, d)
        # input_dim > 0: one input vector per step is shared by all units, so the input term's
        # variance across units is input_var * |x_t|^2 / d, a chi^2_d / d draw per step
        self.input_dim = int(input_dim)
        # inputs (T, d): the one input sequence that feeds every unit; each unit keeps its own
        # rows of the input weights (entries N(0, u2 / d)), so its input term U_u . x_t is
        # correlated across time through x_t . x_s / d, as in a network of finite input size
        self.inputs = None if inputs is None else np.asarray(inputs, dtype=float)
        self.rows: dict[str, np.ndarray] = {}
        self.t = 0
        # tied_window > 0: recurrent pre-activations as a Gaussian process (tied weights)
        self.window = int(tied_window)
        self.past: dict[str, tuple[list[list[tuple[float, Any]]], list[Any], Any]] = {}
        self.cell, self.ens, self.input_var = c, ens, input_var
        self.rng = rng = np.random.default_rng(seed)
        params = initialise(c, n, d, init, rng)
        self.size = S = int(samples)
        pick = rng.integers(0, n, size=S)  # each population unit borrows a unit's own biases
        self.bias: dict[str, np.ndarray] = {}
        for nd in c.nodes:
            if isinstance(nd, Affine):
                tot = sum((params[bn] for bn in nd.biases), np.zeros(n))
                self.bias[nd.name] = np.asarray(tot)[pick]
        self.vectors = {p.name: params[p.name][pick] for p in c.parameters if p.kind == "vector"}
        self.wvar = {
            p.name: (ens.u2 if p.shape == ("n", "d") else ens.w2)
            for p in c.parameters
            if p.kind == "weight"
        }
        self.evals = {nd.name: _Eval(nd.expr) for nd in c.nodes if isinstance(nd, Elementwise)}
        self.state = {s: np.zeros(S) for s in c.state}

    def step(self) -> tuple[dict[str, Any], dict[str, float]]:
        """One step: the unit values (states at ``t-1``, nodes at ``t``) and each affine
        node's pre-activation variance ``q_a``; the population's state moves to ``t``."""
        c, ens, S = self.cell, self.ens, self.size
        vals: dict[str, Any] = {**self.state, **self.vectors}
        qs: dict[str, float] = {}
        iv = self.input_var
        x = None
        if self.inputs is not None:
            x = self.inputs[self.t % len(self.inputs)]
            iv = float(x @ x) / len(x)
        elif self.input_dim:
            iv *= float(self.rng.chisquare(self.input_dim)) / self.input_dim
        self.t += 1
        for nd in c.nodes:
            if isinstance(nd, Affine):
                q, qin, rec, proj = 0.0, 0.0, [], np.zeros(S)
                for w, src in nd.terms:
                    if src == c.input:
                        q += ens.u2 * iv
                        qin += ens.u2 * iv
                        if x is not None:
                            proj = proj + self._rows(w, len(x)) @ x
                    else:
                        wv = self.wvar[w] if w in self.wvar else ens.w2
                        rec.append((wv, vals[src]))
                        q += wv * float(np.mean(vals[src] ** 2))
                if self.window:
                    r, _ = self._recurrent(nd.name, rec)
                    if x is None:
                        fresh = math.sqrt(qin) * self.rng.standard_normal(S)
                    else:
                        fresh = proj
                    vals[nd.name] = self.bias[nd.name] + r + fresh
                elif x is not None:
                    noise = math.sqrt(max(q - qin, 0.0)) * self.rng.standard_normal(S)
                    vals[nd.name] = self.bias[nd.name] + noise + proj
                else:
                    vals[nd.name] = self.bias[nd.name] + math.sqrt(q) * self.rng.standard_normal(S)
                qs[nd.name] = q
            else:
                vals[nd.name] = self.evals[nd.name](vals, S)
        self.state = {s: vals[u] for s, u in dict(c.update).items()}
        return vals, qs

    def _rows(self, weight: str, d: int) -> np.ndarray:
        """The units' own rows ``(S, d)`` of an input weight (drawn once, entries
        ``N(0, u2 / d)``)."""
        if weight not in self.rows:
            sd = math.sqrt(self.ens.u2 / d)
            self.rows[weight] = sd * self.rng.standard_normal((self.size, d))
        return self.rows[weight]

    def _recurrent(self, node: str, rec: list[tuple[float, Any]]) -> tuple[Any, float]:
        """The recurrent part ``r_t = sum_x W_x src_x`` of a node's pre-activation with the
        weights tied: per unit a Gaussian process in ``t`` with covariance
        ``K(t, s) = sum_x sigma_x^2 mean_units(src_x(t) src_x(s))`` (the dynamic mean field of
        Sompolinsky, Crisanti & Sommers, PRL 61, 259, 1988), drawn conditionally on the
        unit's last ``window`` values.
        Returns ``r_t`` and ``K(t, t)``."""
        srcs, rs, K = self.past.setdefault(node, ([], [], np.zeros((0, 0))))
        srcs.append(rec)
        m = len(srcs)
        row = np.array(
            [
                sum(wv * float(np.mean(x * y)) for (wv, x), (_, y) in zip(old, rec, strict=True))
                for old in srcs
            ]
        )
        Kn = np.zeros((m, m))
        Kn[: m - 1, : m - 1] = K
        Kn[-1, :] = Kn[:, -1] = row
        kt = float(row[-1])
        if m > 1 and kt > 0:
            w = np.linalg.lstsq(Kn[:-1, :-1], row[:-1], rcond=1e-10)[0]
            mean = np.tensordot(w, np.asarray(rs), 1)
            var = max(kt - float(row[:-1] @ w), 0.0)
        else:
            mean, var = np.zeros(self.size), max(kt, 0.0)
        r = mean + math.sqrt(var) * self.rng.standard_normal(self.size)
        rs.append(r)
        if m > self.window:
            srcs.pop(0)
            rs.pop(0)
            Kn = Kn[1:, 1:]
        self.past[node] = (srcs, rs, Kn)
        return r, kt


def cell_meanfield(
    cell: Cell | str,
    init: Init,
    n: int,
    d: int,
    input_var: float,
    *,
    samples: int = SAMPLES,
    burn_in: int = BURN_IN,
    steps: int = STEPS,
    seed: int = 0,
) -> CellMeanField:
    """The mean-field statistics and annealed gradient growth of ``cell`` (module docstring).

    Args:
        cell: a catalogue or user cell.
        init: the initialisation (``gaussian``, ``orthogonal`` or ``torch``; gate options and
            chrono included: the biases are those :func:`~gradflow.initialisers.initialise`
            draws for hidden size ``n``).
        n: hidden size.
        d: input size.
        input_var: variance of each input entry.
        samples: population size ``S``.
        burn_in: steps to reach the stationary state (from the zero state).
        steps: steps over which the growth rate is averaged.
        seed: the population's seed (results are deterministic for a seed).

    Raises:
        UsageError: ``identity`` scheme, bad sizes or variances.

    References:
        [poole2016], [chen2018minimalrnn], [gilboa2019].
    """
    c = get_cell(cell) if isinstance(cell, str) else cell
    if not (math.isfinite(input_var) and input_var >= 0):
        raise UsageError(f"input_var must be a finite number >= 0, got {input_var!r}")
    if samples < 64 or burn_in < 0 or steps < 10:
        raise UsageError("need samples >= 64, burn_in >= 0 and steps >= 10")
    if c.matrices:
        # M = W - W^T - gamma I has correlated entries and a fixed part: not the independent
        # Gaussian entries the annealed closure assumes (AntisymmetricRNN, Lipschitz RNN, S6).
        raise UsageError(
            f"{c.name}: the annealed mean field assumes independent Gaussian weight entries; "
            f"its matrix definitions ({', '.join(m.name for m in c.matrices)}) are not"
        )
    pop = _Population(c, init, n, d, input_var, samples, seed)
    S, b, wvar = pop.size, len(c.state), pop.wvar
    chains = {p: _chains(c, p) for p in ("full", "additive", "multiplicative")}
    grams = {p: np.eye(b) for p in chains}
    logs = {p: np.zeros(steps) for p in chains}
    moments = np.zeros(steps)  # log10 of the largest state second moment, measured steps
    qsum = {nd.name: 0.0 for nd in c.nodes if isinstance(nd, Affine)}
    warnings: list[str] = []
    for t in range(burn_in + steps):
        vals, qs = pop.step()
        if t >= burn_in:
            for k, q in qs.items():
                qsum[k] += q
        for p, ch in chains.items():
            if not ch.diag and not ch.weighted:
                continue
            g = _gram_step(grams[p], ch, vals, wvar, b)
            tr = float(np.trace(g))
            if t >= burn_in:
                logs[p][t - burn_in] = math.log10(tr) if tr > 0 else -math.inf
            grams[p] = g / (tr if tr > 0 and math.isfinite(tr) else 1.0)
        big = max(float(np.mean(v * v)) for v in pop.state.values())
        if t >= burn_in:
            moments[t - burn_in] = math.log10(big) if big > 0 else -300.0
        if not math.isfinite(big) or big > DIVERGED:
            warnings.append(
                f"the state diverges (E[s^2] > {DIVERGED:g} at step {t + 1}): no fixed point, "
                "the active set freezes and the independent-steps mean field does not apply"
            )
            break
    if not warnings:
        # a second moment still growing geometrically has no fixed point either
        rise = float(np.polyfit(np.arange(steps), moments, 1)[0]) * steps
        if rise > 1.0:
            warnings.append(
                f"the state diverges (E[s^2] rose {rise:.1f} decades over the last {steps} "
                "steps): no fixed point, the active set freezes and the independent-steps mean "
                "field does not apply"
            )
    if warnings:
        nan = float("nan")
        return CellMeanField(c.name, nan, nan, nan, nan, {}, {}, {}, {}, False, tuple(warnings))

    def rate(p: str) -> tuple[float, float]:
        if not chains[p].diag and not chains[p].weighted:
            return -math.inf, 0.0
        x = 0.5 * logs[p]
        if not np.isfinite(x).all():
            return -math.inf, math.nan
        blocks = x[: (len(x) // 10) * 10].reshape(10, -1).mean(axis=1)
        return float(np.mean(x)), float(np.std(blocks, ddof=1) / math.sqrt(10))

    full, se = rate("full")
    if not math.isfinite(full):
        warnings.append(
            "no sampled unit has a nonzero Jacobian entry (saturated units): the population "
            f"of {S} is too small to resolve the growth rate; the product vanishes faster "
            "than any rate it can show"
        )
    g = grams["full"]
    share = np.diag(g).copy()
    share = share / share.sum() if share.sum() > 0 else np.full(b, math.nan)
    return CellMeanField(
        cell=c.name,
        growth_rate=full,
        growth_rate_stderr=se,
        additive_growth_rate=rate("additive")[0],
        multiplicative_growth_rate=rate("multiplicative")[0],
        row_share={s: float(share[i]) for i, s in enumerate(c.state)},
        preactivation_variance={k: v / steps for k, v in qsum.items()},
        preactivation_mean={k: float(np.mean(v)) for k, v in pop.bias.items()},
        state_second_moment={k: float(np.mean(v * v)) for k, v in pop.state.items()},
        applies=not warnings,
        warnings=tuple(warnings),
    )

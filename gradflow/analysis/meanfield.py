r"""Mean-field predictions of the gradient decay rate.

**Elman RNN** ``h_t = phi(a_t)``, ``a_t = W h_{t-1} + U x_t + b`` with ``W_ij ~ N(0, sigma_w^2/n)``,
``U_ij ~ N(0, sigma_u^2/d)``, ``b_i ~ N(0, sigma_b^2)`` (total bias variance) and inputs of
variance ``input_var``: at large ``n`` the pre-activations are Gaussian with variance ``q``
following [poole2016], [schoenholz2017] (for RNNs [chen2018minimalrnn])

.. math::
    q_{t} = \sigma_w^2\,\mathbb{E}_z[\phi(\sqrt{q_{t-1}} z)^2] + \sigma_u^2 v + \sigma_b^2,
    \qquad \chi = \sigma_w^2\,\mathbb{E}_z[\phi'(\sqrt{q^*} z)^2],

``z ~ N(0, 1)``. ``q*`` is the limit of this map from ``q = 0``, the zero initial state the engine
uses (with no input and no bias the state stays exactly 0: ``q* = 0`` and ``chi = sigma_w^2``).
``chi`` is the mean squared gain of one Jacobian ``diag(phi') W`` on a random direction, so
``||ds_T/ds_{T-k}||_F^2 ~ n chi^k``: the **predicted slope** of ``log10 ||ds_T/ds_{T-k}||_F``
against the lag ``k`` is ``0.5 log10(chi)`` decades per step (vanishing for ``chi < 1``,
exploding for ``chi > 1``). For ReLU, ``chi = sigma_w^2 / 2`` exactly, for ``sigma_w < sqrt(2)``
(above it the state grows geometrically, the inputs stop mattering and the set of active units
freezes, so successive Jacobians are no longer independent: measured slopes at
``sigma_w = 2`` exceeded the prediction by 13-39 %, and gradflow refuses to predict there).

**Gated cells** (LSTM, GRU, MGU, MinimalRNN; the mean-field theory of [gilboa2019] and
[chen2018minimalrnn]): the weight-free (additive) path multiplies by ``diag(kappa_t)`` each step,
``kappa = g`` for a gate that keeps the old state (LSTM ``f``, GRU ``z``, MinimalRNN ``u``) and
``kappa = 1 - g`` for one that writes the new state (MGU ``f``). With the gate's pre-activation
``a ~ N(mu, q_gate)`` (``mu`` the forget/update bias, ``q_gate`` from the weight variances and the
state's fixed-point second moment ``Q_h``), the predicted slope of the geometric mean over units
of the additive product is ``E[log10 kappa(sigmoid(a))]`` decades per step. Approximations,
documented and checked numerically in the tests: different gates' pre-activations are
independent Gaussians, independent of the previous state (cross terms are ``O(1/sqrt(n))``); the
LSTM cell state is treated as Gaussian inside ``tanh``; peephole terms (``O(1/n)``) are dropped.

Expectations use the trapezoidal rule on a grid in ``z`` fine enough to resolve the poles of
``tanh``/``sigmoid`` (exponentially convergent for analytic integrands, [trefethen2014]); a
101-point Gauss-Hermite rule was measured to be wrong by 1e-4 already at ``q = 5``.

Examples:
    >>> q, chi = tanh_fixed_point(1.0, 0.0, 0.0, 0.0)
    >>> (q, chi)
    (0.0, 1.0)
    >>> round(predicted_log10_slope(0.5), 6)
    -0.30103

References:
    [poole2016], [schoenholz2017], [chen2018minimalrnn], [gilboa2019], [trefethen2014].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..cells import get_cell
from ..cells.graph import Affine, Cell
from ..errors import NumericalError, UsageError
from ..initialisers import Init, memory_gates, update_gate
from .bounds import elman_structure

_H_U = 0.2  # grid step in the integration variable itself: resolves poles at distance pi/2
_Z_MAX = 13.0  # N(0,1) tail beyond 13 is below 1e-37
_LN10 = math.log(10.0)
#: Beyond this many trapezoid points (``sqrt(var) > 154``) Gauss-Legendre panels take over.
_TRAPEZOID_MAX = 20001


def gaussian_expectation(
    f: Callable[[np.ndarray], np.ndarray], mean: float = 0.0, var: float = 1.0
) -> float:
    r"""``E[f(mean + sqrt(var) z)]`` for ``z ~ N(0, 1)``, by the trapezoidal rule.

    Accurate to about 1e-15 for functions analytic in the strip ``|Im u| < pi/2`` (``tanh``,
    ``sigmoid``, ``log sigmoid``) and of at most polynomial growth.

    Examples:
        >>> round(gaussian_expectation(lambda u: u**2, 0.0, 2.0), 12)
        2.0
    """
    if not (math.isfinite(mean) and math.isfinite(var) and var >= 0):
        raise UsageError(f"need a finite mean and variance >= 0, got {mean!r}, {var!r}")
    if var == 0:
        return float(f(np.array([float(mean)]))[0])
    s = math.sqrt(var)
    h = min(_H_U / s, 0.5)
    m = math.ceil(_Z_MAX / h)
    if 2 * m + 1 > _TRAPEZOID_MAX:
        return _graded_expectation(f, mean, s)
    z = np.arange(-m, m + 1) * h
    w = h * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return float(np.sum(w * f(mean + s * z)))


def _graded_expectation(f: Callable[[np.ndarray], np.ndarray], mean: float, s: float) -> float:
    """``E[f(mean + s z)]`` for a large ``s``, on Gauss-Legendre panels (issue 13).

    The trapezoid rule would need ``O(s)`` points to resolve ``f``'s poles at distance
    ``pi/2`` from the real axis. Instead: 16 panels of width 5 in the argument
    ``y = mean + s z`` over ``|y| <= 40`` (where ``tanh``/``sigmoid`` bend; 48 nodes per
    panel converge like ``1.8^-96``), then panels in ``z`` as wide as their distance from the
    feature ``z_f = -mean/s`` (the nearest singularity stays a panel width away), out to
    ``|z| = 13``. About 2,000 evaluations whatever ``s``.
    """
    zf = -mean / s
    near = [zf + k * 5.0 / s for k in range(-8, 9)]
    far = [zf + sign * (40.0 / s) * 2.0**j for j in range(0, 64) for sign in (-1.0, 1.0)]
    pts = np.unique(np.clip(np.array(near + far + [-_Z_MAX, _Z_MAX]), -_Z_MAX, _Z_MAX))
    x, w = np.polynomial.legendre.leggauss(48)
    a, b = pts[:-1], pts[1:]
    keep = b > a
    a, b = a[keep], b[keep]
    z = (0.5 * (b - a))[:, None] * x[None, :] + (0.5 * (a + b))[:, None]
    wz = (0.5 * (b - a))[:, None] * w[None, :] * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return float(np.sum(wz * f(mean + s * z)))


def _tanh2(u: np.ndarray) -> np.ndarray:
    return np.asarray(np.tanh(u) ** 2)


def _dtanh2(u: np.ndarray) -> np.ndarray:
    return np.asarray((1.0 - np.tanh(u) ** 2) ** 2)


def _sig(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _smallest_fixed_point(fmap: Callable[[float], float], upper: float) -> float:
    """The smallest ``q >= 0`` with ``fmap(q) = q``, ``fmap`` mapping ``[0, upper]`` into itself.

    A scan on 64 points finds the first sign change of ``fmap(q) - q``; bisection then runs to
    machine precision. This is the limit of iterating ``fmap`` from 0 when ``fmap`` increases.
    """
    if fmap(0.0) <= 0.0:
        return 0.0
    grid = upper * (np.arange(1, 65) / 64.0) ** 2
    lo = 0.0
    for hi in grid:
        if fmap(float(hi)) - hi <= 0.0:
            break
        lo = float(hi)
    else:
        raise NumericalError(f"mean-field map has no fixed point below {upper:g}")
    hi = float(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if fmap(mid) - mid > 0.0:
            lo = mid
        else:
            hi = mid
    if not hi - lo <= 4e-16 * max(hi, 1e-300) + 1e-300:
        raise NumericalError(f"mean-field fixed point did not converge ({lo!r}, {hi!r})")
    return 0.5 * (lo + hi)


def tanh_fixed_point(
    sigma_w: float, sigma_u: float = 0.0, sigma_b: float = 0.0, input_var: float = 0.0
) -> tuple[float, float]:
    r"""``(q*, chi)`` of the tanh RNN with Gaussian weights (module docstring).

    Args:
        sigma_w: recurrent gain, ``W_ij ~ N(0, sigma_w^2 / n)``.
        sigma_u: input gain, ``U_ij ~ N(0, sigma_u^2 / d)``.
        sigma_b: total bias standard deviation (``b_ih + b_hh ~ N(0, sigma_b^2)``).
        input_var: variance of each input entry (``x ~ N(0, input_var)``).

    Returns:
        ``q*``, the fixed-point pre-activation variance reached from the zero state, and
        ``chi = sigma_w^2 E[tanh'(sqrt(q*) z)^2]``.

    References:
        [poole2016], [schoenholz2017], [chen2018minimalrnn].
    """
    for name, v in (
        ("sigma_w", sigma_w),
        ("sigma_u", sigma_u),
        ("sigma_b", sigma_b),
        ("input_var", input_var),
    ):
        if not (math.isfinite(v) and v >= 0):
            raise UsageError(f"{name} must be a finite number >= 0, got {v!r}")
    w2 = sigma_w**2
    const = sigma_u**2 * input_var + sigma_b**2
    q = _smallest_fixed_point(
        lambda q: w2 * gaussian_expectation(_tanh2, 0.0, q) + const, w2 + const + 1.0
    )
    return q, w2 * gaussian_expectation(_dtanh2, 0.0, q)


def predicted_log10_slope(
    sigma_w: float, sigma_u: float = 0.0, sigma_b: float = 0.0, input_var: float = 0.0
) -> float:
    """``0.5 log10(chi)``: decades per step of ``||ds_T/ds_{T-k}||_F`` (tanh RNN)."""
    chi = tanh_fixed_point(sigma_w, sigma_u, sigma_b, input_var)[1]
    return 0.5 * math.log10(chi) if chi > 0 else -math.inf


def gate_log10_slope(mean: float, var: float, keeps: bool = True) -> float:
    r"""``E[log10 kappa]`` with ``kappa = sigmoid(a)`` (``keeps``) or ``1 - sigmoid(a)``,
    ``a ~ N(mean, var)``: the predicted decades per step of the additive (gate) product.

    Examples:
        >>> round(gate_log10_slope(0.0, 0.0), 6)  # log10(1/2)
        -0.30103
    """
    sign = -1.0 if keeps else 1.0
    # log sigmoid(a) = -logaddexp(0, -a), stable for both signs.
    return gaussian_expectation(lambda a: -np.logaddexp(0.0, sign * a), mean, var) / _LN10


@dataclass(frozen=True)
class Ensemble:
    """Weight variances of an initialisation, as the mean field sees them.

    Attributes:
        w2: ``n`` times the variance of a recurrent ``(n, n)`` weight entry.
        u2: ``d`` times the variance of an input weight entry.
        b2: bias variance: the total of a node when ``split``, else per bias vector.
        split: True when ``b2`` is shared among a node's bias vectors (``gaussian`` scheme).
        fixed: affine nodes whose biases were set to a constant (variance 0).
    """

    w2: float
    u2: float
    b2: float
    split: bool = True
    fixed: frozenset[str] = frozenset()

    @classmethod
    def from_init(cls, init: Init, n: int, d: int) -> Ensemble:
        """``torch``: ``U(-1/sqrt n, 1/sqrt n)`` has variance ``1/(3n)`` per entry. A spectral
        radius ``r`` gives ``w2 = r^2`` (circular law for i.i.d. entries; exact for orthogonal).
        ``identity`` is not a random ensemble and raises :class:`UsageError`."""
        if init.scheme == "identity":
            raise UsageError("mean-field theory needs random weights; scheme 'identity' has none")
        if init.scheme == "torch":
            ens = cls(1.0 / 3.0, d / (3.0 * n), 1.0 / (3.0 * n), split=False)
        else:
            ens = cls(init.sigma_w**2, init.sigma_u**2, init.sigma_b**2)
        if init.spectral_radius is not None:
            ens = replace(ens, w2=init.spectral_radius**2)
        return ens

    def node_var(self, cell: Cell, node: str, moments: dict[str, float]) -> float:
        """Variance of affine ``node``'s pre-activation given its sources' second moments."""
        nd = cell.node_map[node]
        if not isinstance(nd, Affine):
            raise UsageError(f"cell {cell.name!r}: {node!r} is not an affine node")
        k = len(nd.biases)
        total = 0.0 if (k == 0 or node in self.fixed) else (self.b2 if self.split else k * self.b2)
        for _, src in nd.terms:
            total += (self.u2 if src == cell.input else self.w2) * moments[src]
        return total


@dataclass(frozen=True)
class MeanFieldPrediction:
    """What the mean field predicts for one cell and initialisation.

    Attributes:
        cell: cell name.
        predicted_slope: decades per step. For Elman cells: of ``log10 ||ds_T/ds_{T-k}||_F``;
            for gated cells: of the geometric mean over units of the additive-path product.
        chi: per-step mean squared gain ``sigma_w^2 E[phi'^2]`` of the Jacobian (Elman);
            ``nan`` for gated cells, where no such gain is computed here (the gated number
            is a gate mean, ``gate_factor``; the full Jacobian's gain is
            :func:`gradflow.analysis.annealed.cell_meanfield`).
        q_star: fixed-point pre-activation variance (Elman) or hidden second moment ``Q_h``.
        quantity: ``"frobenius"`` or ``"additive"``.
        gate: the memory gate's affine node (gated cells), else None.
        gate_mean: ``mu`` of the gate pre-activation (gated cells).
        gate_var: ``q_gate`` (gated cells).
        gate_factor: ``10**(2 * predicted_slope)``, the squared geometric-mean gate factor
            per step (gated cells).
    """

    cell: str
    predicted_slope: float
    chi: float
    q_star: float
    quantity: str
    gate: str | None = None
    gate_mean: float = 0.0
    gate_var: float = 0.0
    gate_factor: float | None = None


def _elman(cell: Cell, ens: Ensemble, input_var: float) -> MeanFieldPrediction:
    act, _ = elman_structure(cell)
    affine = cell.nodes[0]
    const = ens.node_var(cell, affine.name, {cell.input: input_var, cell.state[0]: 0.0})
    if act == "tanh":
        q, chi = tanh_fixed_point(math.sqrt(ens.w2), 1.0, 0.0, const)
    elif act == "relu":
        if const == 0.0:
            raise UsageError(
                f"cell {cell.name!r}: with no input and no bias the ReLU state stays 0 and its "
                "Jacobian is exactly zero; give inputs or biases"
            )
        if ens.w2 >= 2.0:
            raise UsageError(
                f"cell {cell.name!r}: with sigma_w >= sqrt(2) the ReLU state grows without "
                "bound, the inputs become negligible and the active units freeze, so the "
                "independent-steps mean field does not apply"
            )
        q, chi = const / (1.0 - ens.w2 / 2.0), ens.w2 / 2.0
    else:
        raise UsageError(f"cell {cell.name!r}: the mean field covers tanh and relu, not {act}")
    return MeanFieldPrediction(cell.name, 0.5 * math.log10(chi), chi, q, "frobenius")


def _sq(mean: float, var: float, keeps: bool = True) -> float:
    """``E[kappa^2]``, ``kappa = sigmoid(a)`` or ``1 - sigmoid(a)``, ``a ~ N(mean, var)``."""
    sign = 1.0 if keeps else -1.0
    return gaussian_expectation(lambda a: _sig(sign * a) ** 2, mean, var)


def _t2(var: float) -> float:
    return gaussian_expectation(_tanh2, 0.0, var)


GATED = ("lstm", "lstm-cifg", "lstm-peephole", "gru", "gru-reset-before", "mgu", "minimalrnn")

GatedMap = Callable[[float], tuple[float, float]]


def _gated_map(cell: Cell, ens: Ensemble, v: float, mu: float) -> GatedMap:
    """``Q_h -> (Q_h', q_gate)``, the linear part of the memory recursion solved in closed form
    (e.g. LSTM ``Q_c = E[i^2] E[g^2] / (1 - E[f^2])``)."""
    name = cell.name
    nv = ens.node_var

    def lstm(qh: float) -> tuple[float, float]:
        m = {"x": v, "h": qh}
        qf = nv(cell, "a_f", m)
        ff = _sq(mu, qf)
        ii = _sq(mu, qf, keeps=False) if name == "lstm-cifg" else _sq(0.0, nv(cell, "a_i", m))
        qc = ii * _t2(nv(cell, "a_g", m)) / (1.0 - ff)
        return _sq(0.0, nv(cell, "a_o", m)) * _t2(qc), qf

    def gru(qh: float) -> tuple[float, float]:
        m = {"x": v, "h": qh}
        qz, qr = nv(cell, "a_z", m), nv(cell, "a_r", m)
        if name == "gru":  # n = tanh(a_nx + r a_nh): average over r of a Gaussian in tanh
            qx, qhn = nv(cell, "a_nx", m), nv(cell, "a_nh", m)
            nn = gaussian_expectation(
                lambda a: np.array([_t2(qx + s * s * qhn) for s in _sig(a)]), 0.0, qr
            )
        else:
            m["rh"] = _sq(0.0, qr) * qh
            nn = _t2(nv(cell, "a_n", m))
        return _sq(mu, qz, keeps=False) * nn / (1.0 - _sq(mu, qz)), qz

    def mgu(qh: float) -> tuple[float, float]:
        m = {"x": v, "h": qh}
        qf = nv(cell, "a_f", m)
        ff = _sq(mu, qf)
        m["fh"] = ff * qh
        return ff * _t2(nv(cell, "a_n", m)) / (1.0 - _sq(mu, qf, keeps=False)), qf

    def minimal(qh: float) -> tuple[float, float]:
        zz = _t2(nv(cell, "a_z", {"x": v}))
        qu = nv(cell, "a_u", {"h": qh, "z": zz})
        return _sq(mu, qu, keeps=False) * zz / (1.0 - _sq(mu, qu)), qu

    if name not in GATED:
        raise UsageError(f"cell {name!r}: the gated mean field covers {', '.join(GATED)}")
    fam = name.split("-")[0]
    return {"lstm": lstm, "gru": gru, "mgu": mgu, "minimalrnn": minimal}[fam]


def meanfield_prediction(
    cell: Cell | str, init: Init, n: int, d: int, input_var: float
) -> MeanFieldPrediction:
    """The mean-field prediction for ``cell`` initialised by ``init``, inputs of variance
    ``input_var`` (module docstring).

    Args:
        cell: a cell or catalogue name: Elman-type (``rnn``, ``rnn-relu``) or one of
            :data:`GATED`.
        init: the initialisation (``torch``, ``gaussian`` or ``orthogonal``).
        n: hidden size (enters the ``torch`` variances).
        d: input size (enters the ``torch`` variances).
        input_var: variance of each input entry.

    Raises:
        UsageError: when no prediction applies (``identity`` scheme, chrono initialisation,
            a cell the theory does not cover).

    References:
        [poole2016], [schoenholz2017], [chen2018minimalrnn], [gilboa2019].
    """
    cell = get_cell(cell) if isinstance(cell, str) else cell
    if not (math.isfinite(input_var) and input_var >= 0):
        raise UsageError(f"input_var must be a finite number >= 0, got {input_var!r}")
    ens = Ensemble.from_init(init, n, d)
    gates = memory_gates(cell)
    if not gates:
        try:
            elman_structure(cell)
        except UsageError:
            raise UsageError(
                f"cell {cell.name!r}: the mean field covers Elman-type cells (rnn, rnn-relu) "
                f"and the gated cells {', '.join(GATED)}"
            ) from None
        return _elman(cell, ens, input_var)
    if init.chrono_tmax is not None:
        raise UsageError("the mean-field prediction does not cover chrono initialisation")
    mg = gates[0]
    ug = update_gate(cell)
    mu: float | None = None
    if mg.node == "a_f" and init.forget_bias is not None:
        mu = float(init.forget_bias)
    elif ug is not None and ug.node == mg.node and init.update_bias is not None:
        mu = float(init.update_bias)
    if mu is None:
        mu = 0.0
    else:  # a set gate bias replaces the random ones on that gate
        ens = replace(ens, fixed=frozenset({mg.node}))
    fmap = _gated_map(cell, ens, input_var, mu)
    qh = _smallest_fixed_point(lambda q: fmap(q)[0], 1.0)
    qg = fmap(qh)[1]
    slope = gate_log10_slope(mu, qg, mg.keeps)
    return MeanFieldPrediction(
        cell.name, slope, math.nan, qh, "additive", mg.node, mu, qg, 10.0 ** (2 * slope)
    )

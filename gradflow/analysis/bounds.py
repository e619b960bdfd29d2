r"""The Pascanu-Mikolov-Bengio upper bound on the Jacobian product of an Elman RNN.

For ``h_t = phi(W_hh h_{t-1} + W_ih x_t + b)`` the state Jacobian is
``ds_t/ds_{t-1} = diag(phi'(a_t)) W_hh``, so by submultiplicativity

.. math::
    \left\|\frac{\partial s_t}{\partial s_k}\right\|_2
    \le \prod_{j=k+1}^{t} \|\operatorname{diag}(\phi'(a_j))\|_2\,\|W_{hh}\|_2
    \le \left(\gamma\,\sigma_{\max}(W_{hh})\right)^{t-k},

with ``gamma = sup |phi'|``: 1 for tanh and ReLU, 1/4 for the logistic sigmoid [pascanu2013]
(the vanishing-gradient argument of [bengio1994]). gradflow reports it in log10,
``k log10(gamma sigma_max)``, and checks in its tests that every measured
``log10 ||ds_T/ds_{T-k}||_2`` lies below it.

Examples:
    >>> import numpy as np
    >>> params = {"W_hh": 0.5 * np.eye(3)}
    >>> pascanu_log10_bound("rnn", params, [0, 1, 2]).round(6).tolist()
    [0.0, -0.30103, -0.60206]

References:
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, ICML, section 2.1. [bengio1994].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from ..cells import get_cell
from ..cells.functions import relu, sigmoid
from ..cells.graph import Affine, Cell, Elementwise
from ..errors import UsageError

#: ``sup |phi'|`` for the activations the bound covers.
GAMMA = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}

_FUNCS = {sp.tanh: "tanh", relu: "relu", sigmoid: "sigmoid"}


def _as_cell(cell: Cell | str) -> Cell:
    return get_cell(cell) if isinstance(cell, str) else cell


def elman_structure(cell: Cell | str) -> tuple[str, str]:
    """``(activation, recurrent weight name)`` of an Elman-type cell, else :class:`UsageError`.

    Elman-type: one state vector ``s``, one affine node ``a = W s + (input terms) + biases`` and
    the update ``s_t = phi(a)`` with ``phi`` in tanh, relu, sigmoid (the cell's own elementwise
    function, read from its SymPy expression).
    """
    cell = _as_cell(cell)
    why = ""
    if len(cell.state) != 1 or len(cell.nodes) != 2:
        why = "it needs one state vector and exactly two nodes (affine, activation)"
    else:
        affine, act = cell.nodes
        state = cell.state[0]
        if not (isinstance(affine, Affine) and isinstance(act, Elementwise)):
            why = "its nodes are not (affine, elementwise)"
        elif dict(cell.update)[state] != act.name:
            why = "the activation node does not update the state"
        elif type(act.expr) not in _FUNCS or act.expr.args[0] != cell.symbol(affine.name):
            why = "the update is not tanh, relu or sigmoid of the affine node"
        else:
            rec = [w for w, src in affine.terms if src == state]
            other = [src for w, src in affine.terms if src not in (state, cell.input)]
            if len(rec) != 1 or other:
                why = "the affine node needs exactly one recurrent weight and input terms only"
            else:
                return _FUNCS[type(act.expr)], rec[0]
    raise UsageError(
        f"the Pascanu bound applies to Elman-type cells (rnn, rnn-relu); cell {cell.name!r} is "
        f"not one: {why}"
    )


def elman_activation(cell: Cell | str) -> str:
    """The activation name (``tanh``, ``relu``, ``sigmoid``) of an Elman-type cell."""
    return elman_structure(cell)[0]


def gamma_for(cell: Cell | str) -> float:
    """``sup |phi'|`` of the cell's activation: 1 (tanh, relu) or 1/4 (sigmoid).

    Examples:
        >>> gamma_for("rnn"), gamma_for("rnn-relu")
        (1.0, 1.0)
    """
    return GAMMA[elman_activation(cell)]


def pascanu_log10_bound(
    cell: Cell | str, params: dict[str, np.ndarray], lags: ArrayLike
) -> np.ndarray:
    r"""``log10`` of ``(gamma sigma_max(W_hh))^k`` for every lag ``k``.

    Args:
        cell: an Elman-type cell or its catalogue name (``rnn``, ``rnn-relu``).
        params: the cell's parameters; only the recurrent weight is read.
        lags: non-negative lags ``k``, any shape.

    Returns:
        float64 array of the shape of ``lags``: ``k log10(gamma sigma_max)``.

    Raises:
        UsageError: the cell is not Elman-type, the weight is missing, malformed, non-finite
            or zero, or a lag is negative.

    References:
        [pascanu2013].
    """
    act, wname = elman_structure(cell)
    if wname not in params:
        raise UsageError(f"params lack the recurrent weight {wname!r}")
    w = np.asarray(params[wname], dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise UsageError(f"{wname} must be a square matrix, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise UsageError(f"{wname} contains NaN or inf")
    sigma = float(np.linalg.norm(w, 2))
    if not sigma > 0:
        raise UsageError(f"{wname} is zero: every lag k >= 1 has a zero Jacobian product")
    k = np.asarray(lags, dtype=np.float64)
    if not np.all(np.isfinite(k)) or np.any(k < 0):
        raise UsageError("lags must be finite and >= 0")
    return k * math.log10(GAMMA[act] * sigma) + 0.0  # + 0.0: lag 0 gives 0.0, not -0.0


def pascanu_check(
    cell: Cell | str,
    params: dict[str, np.ndarray],
    log10_spectral_norm: ArrayLike,
    atol: float = 1e-10,
) -> tuple[np.ndarray, bool]:
    """The bound for lags ``0..T`` and whether every measured norm lies below it.

    Args:
        cell: an Elman-type cell.
        params: its parameters.
        log10_spectral_norm: ``(T + 1, B)`` (or ``(T + 1,)``), the measured
            ``log10 ||ds_T/ds_{T-k}||_2``.
        atol: slack in log10 for rounding in the measurement.

    Returns:
        ``(bound (T + 1,), holds)``.
    """
    norms = np.asarray(log10_spectral_norm, dtype=np.float64)
    bound = pascanu_log10_bound(cell, params, np.arange(norms.shape[0]))
    excess = norms - (bound if norms.ndim == 1 else bound[:, None])
    return bound, bool(np.all(excess <= atol))


@dataclass(frozen=True)
class PascanuTightness:
    """The Pascanu bound beside the measured norms: how far above them it lies.

    Attributes:
        log10_bound: ``(T + 1,)`` the bound ``k log10(gamma sigma_max)``.
        log10_slack: ``(T + 1, B)`` bound minus measured ``log10 ||ds_T/ds_{T-k}||_2``
            (decades; ``>= 0`` where the bound holds).
        slack_growth: decades per step by which the slack grows (least squares over
            ``k >= T // 10``, median over the batch): a positive value means the bound says
            less and less about the norm as the lag grows.
        tolerance: ``(T + 1,)`` the allowance for rounding in the measured norms,
            ``atol + (8 k + 2 n + 64) eps_dtype / ln 10`` decades (``n`` the hidden size).
        holds: every slack is ``>= -tolerance``.
        violations: the number of (lag, sequence) pairs beyond the tolerance.
    """

    log10_bound: np.ndarray
    log10_slack: np.ndarray
    slack_growth: float
    tolerance: np.ndarray
    holds: bool
    violations: int


def pascanu_tightness(
    cell: Cell | str,
    params: dict[str, np.ndarray],
    log10_spectral_norm: ArrayLike,
    dtype: str = "float64",
    atol: float = 1e-10,
) -> PascanuTightness:
    """The Pascanu bound with its tightness, checked with a tolerance that fits ``dtype``.

    The measured norm at lag ``k`` comes from ``k`` rounded products of ``n x n`` factors
    (rounded to the dtype themselves) and one norm computed in the dtype; its log10 carries an
    error of a few ``k eps / ln 10`` plus a part that does not grow with ``k`` (``eps`` of the
    dtype the engine ran in). The check allows ``atol + (8 k + 2 n + 64) eps / ln 10``
    decades: ``1.7e-5`` at lag 30 for ``n = 16`` in float32, instead of flagging rounding as
    a violation. Where the bound is tight (orthogonal ``W`` and zero inputs, so
    ``||W^k|| = 1``, the bound itself) float32 runs exceed it at lag 1 by up to
    ``50 eps / ln 10`` (measured over 20 draws at ``n = 16`` and 64), which ``8 k eps / ln 10``
    alone flagged.

    Raises:
        UsageError: as :func:`pascanu_log10_bound`; an unknown dtype.

    References:
        [pascanu2013].
    """
    if dtype not in ("float64", "float32", "bfloat16", "float16"):
        raise UsageError(f"unknown dtype {dtype!r}")
    eps = {"float64": 2.0**-52, "float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}
    norms = np.asarray(log10_spectral_norm, dtype=np.float64)
    if norms.ndim == 1:
        norms = norms[:, None]
    T1 = norms.shape[0]
    k = np.arange(T1)
    bound = pascanu_log10_bound(cell, params, k)
    slack = bound[:, None] - norms
    n = int(np.shape(params[elman_structure(cell)[1]])[0])
    tol = atol + (8.0 * k + 2.0 * n + 64.0) * eps[dtype] / math.log(10.0)
    bad = slack < -tol[:, None]
    lo = max(1, (T1 - 1) // 10)
    growth = 0.0
    if T1 - lo >= 2:
        fin = np.isfinite(slack[lo:]).all(axis=0)
        if fin.any():
            slopes = np.polyfit(k[lo:], slack[lo:, fin], 1)[0]
            growth = float(np.median(np.atleast_1d(slopes)))
    return PascanuTightness(bound, slack, growth, tol, not bool(bad.any()), int(bad.sum()))

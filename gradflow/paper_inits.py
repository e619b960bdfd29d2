r"""The initialisation each cell's paper (or reference code) prescribes: ``Init(scheme="paper")``.

One function per catalogue cell, keyed by the cell's name in :data:`PAPER_INITS`; each draws
every parameter from ``rng`` (the same seed gives the same arrays) and says where its rule comes
from. The rules are those of docs/cells-2018-2026.md §3. ``U(a, b)`` is uniform; "nn.Linear
default" is PyTorch's ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases.

References:
    [li2018indrnn], [westhuizen2018janet], [tallec2018chrono], [gu2020urlstm],
    [feng2024minrnn], [rusch2021cornn], [rusch2022lem], [chung2014], [beck2024xlstm],
    [de2024griffin], [chang2019antisymmetric], [erichson2021lipschitz], [gu2023mamba],
    [paszke2019].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .cells.dynamical import mamba_s6_params
from .cells.graph import Cell
from .errors import UsageError

Arrays = dict[str, np.ndarray]
PaperInit = Callable[[Cell, int, int, np.random.Generator, "float | None"], Arrays]


def _uniform_all(cell: Cell, n: int, d: int, rng: np.random.Generator, bound: float) -> Arrays:
    return {p.name: rng.uniform(-bound, bound, size=p.numeric_shape(n, d)) for p in cell.parameters}


def _torch_rnn(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """PyTorch's ``RNNBase`` default, every tensor ``U(-1/sqrt(n), 1/sqrt(n))``: no other rule
    is given by Chung et al. (2014) [chung2014]; LEM's ``LEMCell.reset_parameters`` uses the
    same [rusch2022lem]."""
    return _uniform_all(cell, n, d, rng, 1.0 / math.sqrt(n))


def _linear_of_input(
    cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None
) -> Arrays:
    """minGRU, minLSTM: ``nn.Linear(d, n)`` default, ``U(-1/sqrt(d), 1/sqrt(d))`` for weights
    and biases; the paper prescribes no other [feng2024minrnn]."""
    return _uniform_all(cell, n, d, rng, 1.0 / math.sqrt(d))


def _cornn(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """coRNN: the code's ``nn.Linear(d + 2n, n)`` (``i2h``) default, bound
    ``1/sqrt(d + 2n)`` for every block of its weight and for its bias [rusch2021cornn]."""
    return _uniform_all(cell, n, d, rng, 1.0 / math.sqrt(d + 2 * n))


def _janet(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """JANET (authors' code): Glorot-uniform ``W_xh (d, 2n)`` and ``W_hh (n, 2n)`` (TensorFlow's
    ``tf.get_variable`` default, limit ``sqrt(6 / (fan_in + fan_out))``), ``b_c = 0`` and the
    chrono forget bias ``b_f = log U(1, T_max)`` (``chrono_init`` with ``maxval = t_max``), or
    ``b_f = 1`` without ``T_max`` [westhuizen2018janet, tallec2018chrono]."""
    lim_x = math.sqrt(6.0 / (d + 2 * n))
    lim_h = math.sqrt(6.0 / (n + 2 * n))
    out: Arrays = {}
    for w in ("W_c", "W_f"):
        out[w] = rng.uniform(-lim_x, lim_x, size=(n, d))
    for w in ("U_c", "U_f"):
        out[w] = rng.uniform(-lim_h, lim_h, size=(n, n))
    out["b_c"] = np.zeros(n)
    out["b_f"] = np.log(rng.uniform(1.0, t_max, size=n)) if t_max is not None else np.ones(n)
    return out


def _ur_lstm(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """UR-LSTM: uniform gate initialisation ``b_fg = logit(u)``, ``u ~ U(1/n, 1 - 1/n)`` per
    unit (for ``n <= 2`` the interval is the point 1/2); everything else PyTorch's LSTM default
    [gu2020urlstm]."""
    out = _torch_rnn(cell, n, d, rng, t_max)
    lo, hi = min(1.0 / n, 0.5), max(1.0 - 1.0 / n, 0.5)
    u = rng.uniform(lo, hi, size=n)
    out["b_fg"] = np.log(u) - np.log1p(-u)
    return out


def _indrnn(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """IndRNN: ``u ~ U(0, 2^(1/T_max))`` so that ``|u_i|^T_max <= 2`` (no unit explodes over the
    training length; the paper's ``gamma = 2``, the code's ``MAG``), biases 0, input weights the
    ``nn.Linear(d, n)`` default ``U(-1/sqrt(d), 1/sqrt(d))`` (the code's ``ini_in2hid`` is a
    command-line option) [li2018indrnn]. The paper's last layer draws ``u`` from
    ``U(2^(-1/T_max), 2^(1/T_max))`` instead, for long memory. Without ``t_max``: ``U(0, 1)``,
    the limit ``T_max -> inf`` (the ``[0, 1]`` range the paper recommends)."""
    upper = 1.0 if t_max is None else 2.0 ** (1.0 / t_max)  # no t_max: the T_max -> inf limit
    bound = 1.0 / math.sqrt(d)
    return {
        "W_xh": rng.uniform(-bound, bound, size=(n, d)),
        "b": np.zeros(n),
        "u": rng.uniform(0.0, upper, size=n),
    }


def _slstm(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """sLSTM (``sLSTMCellBase.reset_parameters`` at the ``sLSTMCellConfig`` defaults, one head
    and one block): recurrent weights zero (``recurrent_weight_init = "zeros"``, so ``J_t`` is
    purely additive at initialisation), the ``powerlaw_blockdependent`` forget bias
    ``b_f[j] = 5 - 12 (j / (n - 1))^0.3`` (from +5 down to -7 across the units), the other
    biases 0; input weights the ``nn.Linear(d, n)`` default (they belong to the xLSTM block,
    not to the cell) [beck2024xlstm]."""
    bound = 1.0 / math.sqrt(d)
    out: Arrays = {}
    for g in "ifzo":
        out[f"W_{g}"] = rng.uniform(-bound, bound, size=(n, d))
        out[f"R_{g}"] = np.zeros((n, n))
        out[f"b_{g}"] = np.zeros(n)
    ratio = np.arange(n) / (n - 1) if n > 1 else np.zeros(1)
    out["b_f"] = 5.0 - 12.0 * ratio**0.3
    return out


def _rglru(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """RG-LRU (recurrentgemma ``rnn_param_init``): ``a = sigma(-a_param)`` uniform in area on the
    ring ``[0.9, 0.999]``, i.e. ``a_param = softplus^{-1}(-0.5 log U(0.9^2, 0.999^2))``; gate
    weights ``N(0, 1/n)`` (``BlockDiagonalLinear`` with one head, ``w_init_variance_scale = 1``),
    biases 0; ``W_in = I`` (the bare RG-LRU; for ``d != n`` the ``nn.Linear`` default)
    [de2024griffin]."""
    a_real = 0.5 * np.log(rng.uniform(0.9**2, 0.999**2, size=n))
    bound = 1.0 / math.sqrt(d)
    w_in = np.eye(n) if d == n else rng.uniform(-bound, bound, size=(n, d))
    return {
        "W_in": w_in,
        "W_a": rng.standard_normal((n, n)) / math.sqrt(n),
        "b_a": np.zeros(n),
        "W_x": rng.standard_normal((n, n)) / math.sqrt(n),
        "b_x": np.zeros(n),
        "a_param": np.log(np.expm1(-a_real)),
    }


def _antisymmetric(
    cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None
) -> Arrays:
    """AntisymmetricRNN (the paper's appendix C): input-to-hidden ``V_h ~ N(0, 1/d)``,
    hidden-to-hidden ``W_h ~ N(0, sigma_w^2/n)`` with ``sigma_w = 1`` (the paper searches
    ``sigma_w`` in {0, 1, 2, 4, 8, 16}), biases 0 [chang2019antisymmetric]."""
    return {
        "W_h": rng.standard_normal((n, n)) / math.sqrt(n),
        "V_h": rng.standard_normal((n, d)) / math.sqrt(d),
        "b_h": np.zeros(n),
    }


def _lipschitz(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """Lipschitz RNN (authors' code): ``M_A, M_W ~ N(0, (init_std/n)^2)`` (``gaussian_init_``
    takes the standard deviation ``init_std / n``, not ``/ sqrt(n)``; ``init_std = 1``, the
    signature's default), ``U`` Xavier-normal (standard deviation ``sqrt(2/(n + d))``),
    ``b = 0`` [erichson2021lipschitz]."""
    return {
        "M_A": rng.standard_normal((n, n)) / n,
        "M_W": rng.standard_normal((n, n)) / n,
        "U": rng.standard_normal((n, d)) * math.sqrt(2.0 / (n + d)),
        "b": np.zeros(n),
    }


def _mamba(cell: Cell, n: int, d: int, rng: np.random.Generator, t_max: float | None) -> Arrays:
    """Mamba (``Mamba.__init__``, ``d_inner = n``): ``A_log[:, j] = log(j + 1)`` (S4D-Real),
    ``dt = exp(U(log 0.001, log 0.1))`` floored at 1e-4 with ``dt_bias = dt + log(-expm1(-dt))``
    (inverse softplus), ``dt_proj.weight ~ U(-R^-1/2, R^-1/2)`` with ``R = ceil(n / 32)``
    (``dt_rank = ceil(d_model / 16)``, ``d_inner = 2 d_model``), ``x_proj`` the ``nn.Linear``
    default ``U(-1/sqrt(n), 1/sqrt(n))``; ``W_dt = dt_proj.weight @ x_proj.weight[:R]`` and
    the rows ``w_Bj = x_proj.weight[R + j]`` as
    :func:`~gradflow.cells.dynamical.mamba_s6_params` builds them;
    ``W_in = I`` (the bare recurrence; for ``d != n`` the ``nn.Linear`` default)
    [gu2023mamba]."""
    d_state = len(cell.state)
    rank = math.ceil(n / 32)
    dt = np.maximum(np.exp(rng.uniform(math.log(1e-3), math.log(0.1), size=n)), 1e-4)
    bound = 1.0 / math.sqrt(n)
    tensors = {
        "A_log": np.log(np.tile(np.arange(1, d_state + 1, dtype=float), (n, 1))),
        "x_proj.weight": rng.uniform(-bound, bound, size=(rank + 2 * d_state, n)),
        "dt_proj.weight": rng.uniform(-(rank**-0.5), rank**-0.5, size=(n, rank)),
        "dt_proj.bias": dt + np.log(-np.expm1(-dt)),
    }
    w_in = np.eye(n) if d == n else rng.uniform(-1 / math.sqrt(d), 1 / math.sqrt(d), (n, d))
    return mamba_s6_params(tensors, w_in=w_in)


#: Cell name -> its paper initialisation (cells not listed get the ``torch`` scheme).
PAPER_INITS: dict[str, PaperInit] = {
    "gru-chung": _torch_rnn,
    "janet": _janet,
    "ur-lstm": _ur_lstm,
    "mingru": _linear_of_input,
    "minlstm": _linear_of_input,
    "cornn": _cornn,
    "cornn-explicit": _cornn,
    "lem": _torch_rnn,
    "indrnn": _indrnn,
    "slstm": _slstm,
    "rglru": _rglru,
    "antisymmetric-rnn": _antisymmetric,
    "lipschitz-rnn": _lipschitz,
    "mamba-s6": _mamba,
}


def paper_initialisation(
    cell: Cell, n: int, d: int, rng: np.random.Generator, *, t_max: float | None = None
) -> Arrays:
    """The parameters of ``cell`` drawn as its paper prescribes (see :data:`PAPER_INITS`).

    Raises:
        UsageError: the cell has no paper initialisation.
    """
    try:
        rule = PAPER_INITS[cell.name]
    except KeyError:
        raise UsageError(
            f"cell {cell.name!r} has no paper initialisation (known: {', '.join(PAPER_INITS)})"
        ) from None
    out = rule(cell, n, d, rng, t_max)
    missing = {p.name for p in cell.parameters} ^ set(out)
    if missing:  # a rule out of step with its cell's parameters: a bug, not bad input
        raise AssertionError(f"paper init of {cell.name!r} does not match its parameters")
    return {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in out.items()}

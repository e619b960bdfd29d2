r"""Cells from a dynamical-system view: AntisymmetricRNN, Lipschitz RNN and Mamba's S6 recurrence.

docs/cells-2018-2026.md §3.7, §3.10, §3.11. The first two use *matrix definitions* (F4): the
recurrence applies ``W_h - W_h^T - gamma I`` or ``(1 - beta)(M + M^T) + beta (M - M^T) - gamma I``
while the trained parameter is ``W_h`` or ``M``; the derivation keeps the built matrix as one
symbol (``diag(v) @ M_h``) and the parameter gradients go through it to the trained weights.
``mamba_s6`` stacks the columns of Mamba's ``(d_inner, d_state)`` state as ``d_state`` state
vectors (F5) and writes the per-step scalar ``B_t[j]`` broadcast over the channels (F9) as the
matrix ``rows(w_Bj)`` (:func:`mamba_s6_params` builds the parameters from Mamba's tensors).

References:
    [chang2019antisymmetric] AntisymmetricRNN; [erichson2021lipschitz] Lipschitz RNN;
    [gu2023mamba] Mamba (S6).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .grammar import parse_matrix
from .graph import Cell, MatrixDef
from .modern import _nodes

#: AntisymmetricRNN's step ``epsilon`` and diffusion ``gamma`` (the public re-implementations'
#: defaults, 0.01 each; the paper tunes both per task).
ANTISYMMETRIC_DEFAULTS: Mapping[str, float] = {"epsilon": 0.01, "gamma": 0.01}
#: Lipschitz RNN's defaults in the authors' code signature (``eps, beta, gamma``).
LIPSCHITZ_DEFAULTS: Mapping[str, float] = {"epsilon": 0.01, "beta": 0.8, "gamma": 0.01}
#: The catalogue's ``mamba-s6`` state size (Mamba's default is 16: ``mamba_s6(16)``).
MAMBA_D_STATE = 4


def _matrix(name: str, text: str, constants: Mapping[str, float]) -> MatrixDef:
    line = parse_matrix(text, dict(constants))
    return MatrixDef(name, line.terms, line.identity, line.heads, line.rows)


def antisymmetric_rnn(
    epsilon: float = ANTISYMMETRIC_DEFAULTS["epsilon"],
    gamma: float = ANTISYMMETRIC_DEFAULTS["gamma"],
) -> Cell:
    """AntisymmetricRNN (ungated), ``h_t = h + epsilon tanh(M_h h + V_h x + b_h)``.

    ``M_h = W_h - W_h^T - gamma I`` is built from the trained ``W_h`` (a matrix definition).

    ``J_t = I + epsilon diag(1 - tanh^2(a)) M_h``: the additive part is ``I``.

    References:
        [chang2019antisymmetric] Chang, Chen, Haber & Chi (2019), ICLR.
    """
    consts = {"epsilon": epsilon, "gamma": gamma}
    return Cell(
        name="antisymmetric-rnn",
        state=("h",),
        nodes=_nodes(
            (("a", "M_h @ h + V_h @ x + b_h"), ("h_new", "h + epsilon * tanh(a)")), consts
        ),
        update=(("h", "h_new"),),
        matrices=(_matrix("M_h", "W_h - transpose(W_h) - gamma * I", consts),),
        torch_layout=(("weight_hh", ("W_h",)), ("weight_ih", ("V_h",)), ("bias", ("b_h",))),
        reference=(
            "Chang, Chen, Haber & Chi (2019), AntisymmetricRNN: a dynamical system view on "
            "recurrent neural networks, ICLR: h_t = h_{t-1} + eps tanh((W_h - W_h^T - gamma I) "
            f"h_{{t-1}} + V_h x_t + b_h), eps = {epsilon:g}, gamma = {gamma:g}. weight_hh is the "
            "trained W_h (a row-vector code's C is W_h^T)."
        ),
        convention="forward Euler: h_t = h_{t-1} + eps tanh(a_t) (the old state is kept whole)",
        constants=(("epsilon", float(epsilon)), ("gamma", float(gamma))),
        citations=("chang2019antisymmetric",),
        description="AntisymmetricRNN: Euler step of an ODE with W - W^T - gamma I",
    )


def lipschitz_rnn(
    epsilon: float = LIPSCHITZ_DEFAULTS["epsilon"],
    beta: float = LIPSCHITZ_DEFAULTS["beta"],
    gamma: float = LIPSCHITZ_DEFAULTS["gamma"],
) -> Cell:
    """Lipschitz RNN: ``h_t = h + epsilon A h + epsilon tanh(W h + U x + b)``, forward Euler.

    ``A`` and ``W`` are built from the trained ``M_A``, ``M_W`` as
    ``(1 - beta)(M + M^T) + beta (M - M^T) - gamma I``. ``J_t = I + epsilon A +
    epsilon diag(1 - tanh^2(a)) W``: the additive part ``I + epsilon A`` holds a weight matrix.
    The authors' code multiplies row vectors with parameters ``B``, ``C``: ``M_A = B^T``,
    ``M_W = C^T``.

    References:
        [erichson2021lipschitz] Erichson, Azencot, Queiruga, Hodgkinson & Mahoney (2021), ICLR.
    """
    consts = {"epsilon": epsilon, "beta": beta, "gamma": gamma}
    form = "(1 - beta) * ({m} + transpose({m})) + beta * ({m} - transpose({m})) - gamma * I"
    return Cell(
        name="lipschitz-rnn",
        state=("h",),
        nodes=_nodes(
            (
                ("Ah", "A @ h"),
                ("a", "W @ h + U @ x + b"),
                ("h_new", "h + epsilon * Ah + epsilon * tanh(a)"),
            ),
            consts,
        ),
        update=(("h", "h_new"),),
        matrices=(
            _matrix("A", form.format(m="M_A"), consts),
            _matrix("W", form.format(m="M_W"), consts),
        ),
        reference=(
            "Erichson, Azencot, Queiruga, Hodgkinson & Mahoney (2021), Lipschitz recurrent "
            "neural networks, ICLR: h_t = h_{t-1} + eps A h_{t-1} + eps tanh(W h_{t-1} + U x_t "
            "+ b), A = (1 - beta)(M_A + M_A^T) + beta (M_A - M_A^T) - gamma I and W likewise "
            f"from M_W; eps = {epsilon:g}, beta = {beta:g}, gamma = {gamma:g}. The authors' code "
            "(row vectors) stores B = M_A^T, C = M_W^T, E = (U, b)."
        ),
        convention="forward Euler: h_t = h_{t-1} + eps (A h_{t-1} + tanh(a_t))",
        constants=(("epsilon", float(epsilon)), ("beta", float(beta)), ("gamma", float(gamma))),
        citations=("erichson2021lipschitz",),
        description="Lipschitz RNN: Euler step with I + eps A additive",
    )


def mamba_s6(d_state: int = MAMBA_D_STATE) -> Cell:
    """One Mamba block's selective SSM recurrence (S6), its state flattened column by column.

    With ``u = W_in @ x`` (the block's input projection; ``W_in = I`` for the bare recurrence,
    ``d = n = d_inner``), ``delta = softplus(W_dt u + dt_bias)``, ``B_t[j] = w_Bj . u`` and
    ``A[:, j] = -exp(A_log_j)``, column ``j`` of the state is
    ``h_j' = exp(delta * A[:, j]) * h_j + delta * u * B_t[j]``: the zero-order hold of ``A``
    and the Euler rule ``delta B u`` of ``selective_scan_ref``. ``B_t[j]`` is one scalar per
    step broadcast over the channels (F9): the matrix ``B{j} = rows(w_B{j})`` is
    ``1_n w_Bj^T`` with ``w_Bj = x_proj.weight[R + j]`` stored as it is. ``W_dt`` is the
    low-rank product ``dt_proj.weight @ x_proj.weight[:R]`` taken as one weight (its gradient
    is in that coordinate). :func:`mamba_s6_params` builds the parameters from Mamba's tensors.
    ``J_t`` is diagonal and depends on the inputs only.

    References:
        [gu2023mamba] Gu & Dao (2023), arXiv:2312.00752, Algorithm 2 and eq. (4).
    """
    if not isinstance(d_state, int) or not 1 <= d_state <= 64:
        raise ValueError(f"d_state must be an int in 1..64, got {d_state!r}")
    eqs: list[tuple[str, str]] = [
        ("u", "W_in @ x"),
        ("a_dt", "W_dt @ u + dt_bias"),
        ("delta", "softplus(a_dt)"),
    ]
    for j in range(d_state):
        eqs += [
            (f"b_{j}", f"B{j} @ u"),
            (f"A_{j}", f"-exp(A_log{j})"),
            (f"h{j}_new", f"exp(delta * A_{j}) * h{j} + delta * u * b_{j}"),
        ]
    return Cell(
        name="mamba-s6",
        state=tuple(f"h{j}" for j in range(d_state)),
        nodes=_nodes(eqs),
        update=tuple((f"h{j}", f"h{j}_new") for j in range(d_state)),
        matrices=tuple(_matrix(f"B{j}", f"rows(w_B{j})", {}) for j in range(d_state)),
        reference=(
            "Gu & Dao (2023), Mamba: linear-time sequence modeling with selective state spaces, "
            "arXiv:2312.00752, Algorithm 2 (S6), as selective_scan_ref computes it: "
            "X_t = exp(delta_t A) * X_{t-1} + (delta_t * u_t) B_t^T, delta_t = softplus(W_dt u_t "
            "+ dt_bias), A = -exp(A_log), B_t = x_proj(u_t)[R:R+N]; the state X (d_inner x "
            f"d_state = {d_state}) stacked column by column. u = W_in x (W_in = I: the bare "
            "recurrence after the block's projection, convolution and SiLU)."
        ),
        convention="exp(delta A) keeps the old state: h_j' = exp(delta A_j) h_j + delta u B_j",
        constants=(("d_state", float(d_state)),),
        citations=("gu2023mamba",),
        description="Mamba S6: selective diagonal state space, state flattened",
    )


def mamba_s6_params(
    tensors: Mapping[str, np.ndarray], *, w_in: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The parameters of :func:`mamba_s6` from Mamba's tensors (F10 by hand).

    Args:
        tensors: ``A_log (n, N)``, ``x_proj.weight (R + 2N, n)``, ``dt_proj.weight (n, R)``,
            ``dt_proj.bias (n,)`` (``D`` and the block's other tensors are ignored: ``D u`` is
            part of the output, not of the state).
        w_in: the input projection (default ``I``: the bare recurrence, ``d = n``).
    """
    a_log = np.asarray(tensors["A_log"], dtype=np.float64)
    x_proj = np.asarray(tensors["x_proj.weight"], dtype=np.float64)
    dt_w = np.asarray(tensors["dt_proj.weight"], dtype=np.float64)
    n, d_state = a_log.shape
    rank = dt_w.shape[1]
    out = {
        "W_in": np.eye(n) if w_in is None else np.asarray(w_in, dtype=np.float64),
        "W_dt": dt_w @ x_proj[:rank],
        "dt_bias": np.asarray(tensors["dt_proj.bias"], dtype=np.float64),
    }
    for j in range(d_state):
        out[f"w_B{j}"] = x_proj[rank + j].copy()
        out[f"A_log{j}"] = a_log[:, j].copy()
    return out


ANTISYMMETRIC_RNN = antisymmetric_rnn()
LIPSCHITZ_RNN = lipschitz_rnn()
MAMBA_S6 = mamba_s6()

#: The cells of this module in the order ``gradflow cells`` lists them.
DYNAMICAL_CELLS: tuple[Cell, ...] = (ANTISYMMETRIC_RNN, LIPSCHITZ_RNN, MAMBA_S6)

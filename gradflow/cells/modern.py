r"""Recurrent cells of 2014-2024 that the graph expresses as it is (docs/cells-2018-2026.md).

Each cell is written with the equations of its section in ``docs/cells-2018-2026.md`` (the
equation grammar of :mod:`gradflow.cells.grammar`), its update convention, its citation and,
where the rows of a PyTorch-style tensor hold it, its ``torch_layout``. Cells with
hyperparameters (JANET's shift ``beta``, coRNN's ``dt, gamma, epsilon``, LEM's ``dt``) are made
by a function of those hyperparameters (:func:`janet`, :func:`cornn`, :func:`lem`); the
catalogue holds each at its paper's default, and the hyperparameters enter the equations as
numbers (they are constants of the cell, never parameters of the weight file).

References:
    [chung2014] GRU with ``h_t = (1 - z_t) h_{t-1} + z_t h~_t``; [westhuizen2018janet] JANET;
    [gu2020urlstm] UR-LSTM; [feng2024minrnn] minGRU, minLSTM; [rusch2021cornn] coRNN;
    [rusch2022lem] LEM; [beck2024xlstm] sLSTM; [de2024griffin] RG-LRU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp

from .grammar import AffineLine, parse_line
from .graph import Affine, Cell, Elementwise, Node

#: Hyperparameters of the catalogue cells at their papers' (or code's) defaults.
JANET_BETA = 1.0
#: coRNN's sequential-MNIST defaults (the authors' task script): ``n_hid = 256``.
CORNN_DEFAULTS: Mapping[str, float] = {"dt": 0.042, "gamma": 2.7, "epsilon": 4.7}
#: LEM's ``dt`` default of ``LEMCell`` (the code's signature).
LEM_DT = 1.0


def _nodes(
    equations: Sequence[tuple[str, str]], constants: Mapping[str, float] | None = None
) -> tuple[Node, ...]:
    """Parse catalogue equation text; named constants are replaced by their float values."""
    swap = {sp.Symbol(k, real=True): sp.Float(v) for k, v in (constants or {}).items()}
    out: list[Node] = []
    for name, text in equations:
        line = parse_line(text)
        if isinstance(line, AffineLine):
            out.append(Affine(name, line.terms, line.biases))
        else:
            out.append(Elementwise(name, line.xreplace(swap) if swap else line))
    return tuple(out)


def _layout(*blocks: tuple[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((tensor, tuple(params)) for tensor, params in blocks)


GRU_CHUNG = Cell(
    name="gru-chung",
    state=("h",),
    nodes=_nodes(
        (
            ("a_r", "W_ir @ x + W_hr @ h + b_ir + b_hr"),
            ("a_z", "W_iz @ x + W_hz @ h + b_iz + b_hz"),
            ("r", "sigmoid(a_r)"),
            ("z", "sigmoid(a_z)"),
            ("rh", "r * h"),
            ("a_n", "W_in @ x + W_hn @ rh + b_in + b_hn"),
            ("n", "tanh(a_n)"),
            ("h_new", "(1 - z) * h + z * n"),
        )
    ),
    update=(("h", "h_new"),),
    torch_layout=_layout(
        ("weight_ih", ("W_ir", "W_iz", "W_in")),
        ("weight_hh", ("W_hr", "W_hz", "W_hn")),
        ("bias_ih", ("b_ir", "b_iz", "b_in")),
        ("bias_hh", ("b_hr", "b_hz", "b_hn")),
    ),
    reference=(
        "Chung, Gulcehre, Cho & Bengio (2014), Empirical evaluation of gated recurrent neural "
        "networks on sequence modeling, arXiv:1412.3555, Sec. 3.2: reset before the hidden "
        "matmul, h~_t = tanh(W x_t + U (r_t * h_{t-1})), h_t = (1 - z_t) h_{t-1} + z_t h~_t. "
        "Layout of nn.GRU (gates r, z, n) for convenience only: an nn.GRU checkpoint loaded "
        "here is a different cell."
    ),
    convention="z writes the new state: h_t = (1 - z_t) h_{t-1} + z_t h~_t",
    citations=("chung2014",),
    description="GRU of Chung et al. 2014: z writes, reset before the matmul",
)


def janet(beta: float = JANET_BETA) -> Cell:
    """JANET, the forget-gate-only LSTM, with input-gate shift ``beta`` (paper: 1).

    References:
        [westhuizen2018janet] van der Westhuizen & Lasenby (2018), arXiv:1804.04849.
    """
    return Cell(
        name="janet",
        state=("h",),
        nodes=_nodes(
            (
                ("s", "W_f @ x + U_f @ h + b_f"),
                ("f", "sigmoid(s)"),
                ("k", "sigmoid(s - beta)"),
                ("a_c", "W_c @ x + U_c @ h + b_c"),
                ("g", "tanh(a_c)"),
                ("h_new", "f * h + (1 - k) * g"),
            ),
            {"beta": beta},
        ),
        update=(("h", "h_new"),),
        torch_layout=_layout(
            ("weight_ih", ("W_c", "W_f")), ("weight_hh", ("U_c", "U_f")), ("bias", ("b_c", "b_f"))
        ),
        reference=(
            "van der Westhuizen & Lasenby (2018), The unreasonable effectiveness of the forget "
            "gate, arXiv:1804.04849: s_t = U_f h + W_f x + b_f, "
            "h_t = sigmoid(s_t) h_{t-1} + (1 - sigmoid(s_t - beta)) tanh(U_c h + W_c x + b_c), "
            f"beta = {beta:g}."
        ),
        convention="f keeps the old state: h_t = f_t h_{t-1} + (1 - k_t) g_t, k_t = σ(s_t - β)",
        constants=(("beta", float(beta)),),
        citations=("westhuizen2018janet",),
        description="JANET: forget gate only, input gate 1 - σ(s - β)",
    )


UR_LSTM = Cell(
    name="ur-lstm",
    state=("h", "c"),
    nodes=_nodes(
        (
            *((f"a_{g}", f"W_i{g} @ x + W_h{g} @ h + b_i{g} + b_h{g}") for g in "fruo"),
            ("f", "sigmoid(a_f + b_fg)"),
            ("r", "sigmoid(a_r - b_fg)"),
            ("g", "r * (1 - (1 - f)**2) + (1 - r) * f**2"),
            ("u", "tanh(a_u)"),
            ("o", "sigmoid(a_o)"),
            ("c_new", "g * c + (1 - g) * u"),
            ("h_new", "o * tanh(c_new)"),
        )
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    torch_layout=_layout(
        ("igates.weight", tuple(f"W_i{g}" for g in "fruo")),
        ("igates.bias", tuple(f"b_i{g}" for g in "fruo")),
        ("hgates.weight", tuple(f"W_h{g}" for g in "fruo")),
        ("hgates.bias", tuple(f"b_h{g}" for g in "fruo")),
        ("forget_bias", ("b_fg",)),
    ),
    reference=(
        "Gu, Gulcehre, Paine, Hoffman & Pascanu (2020), Improving the gating mechanism of "
        "recurrent neural networks, ICML (UR-LSTM pseudo-code): f = σ(L_f + b_fg), "
        "r = σ(L_r - b_fg), g = r (1 - (1 - f)^2) + (1 - r) f^2, c_t = g c_{t-1} + (1 - g) u, "
        "h_t = σ(L_o) tanh(c_t)."
    ),
    convention="g keeps the old state: c_t = g_t c_{t-1} + (1 - g_t) u_t",
    citations=("gu2020urlstm",),
    description="UR-LSTM: refine gate r and uniform gate initialisation",
)

MINGRU = Cell(
    name="mingru",
    state=("h",),
    nodes=_nodes(
        (
            ("a_z", "W_z @ x + b_z"),
            ("z", "sigmoid(a_z)"),
            ("h_tilde", "W_h @ x + b_h"),
            ("h_new", "(1 - z) * h + z * h_tilde"),
        )
    ),
    update=(("h", "h_new"),),
    torch_layout=_layout(
        ("linear_z.weight", ("W_z",)),
        ("linear_z.bias", ("b_z",)),
        ("linear_h.weight", ("W_h",)),
        ("linear_h.bias", ("b_h",)),
    ),
    reference=(
        "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi (2024), Were RNNs all we needed?, "
        "arXiv:2410.01201, Sec. 3.1 (sequential mode): z_t = σ(Linear_z(x_t)), "
        "h~_t = Linear_h(x_t), h_t = (1 - z_t) h_{t-1} + z_t h~_t; J_t = diag(1 - z_t) depends "
        "on the inputs only."
    ),
    convention="z writes the new state: h_t = (1 - z_t) h_{t-1} + z_t h~_t",
    citations=("feng2024minrnn",),
    description="minGRU: gate and candidate read the input only",
)

MINLSTM = Cell(
    name="minlstm",
    state=("h",),
    nodes=_nodes(
        (
            ("a_f", "W_f @ x + b_f"),
            ("a_i", "W_i @ x + b_i"),
            ("h_tilde", "W_h @ x + b_h"),
            ("f", "sigmoid(a_f)"),
            ("i", "sigmoid(a_i)"),
            ("fn", "f / (f + i)"),
            ("h_new", "fn * h + (1 - fn) * h_tilde"),
        )
    ),
    update=(("h", "h_new"),),
    torch_layout=_layout(
        *(
            (f"linear_{g}.{kind}", (f"{'W' if kind == 'weight' else 'b'}_{g}",))
            for g in "fih"
            for kind in ("weight", "bias")
        )
    ),
    reference=(
        "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi (2024), Were RNNs all we needed?, "
        "arXiv:2410.01201, Sec. 3.2 (normalised gates): f' = f / (f + i), "
        "h_t = f'_t h_{t-1} + (1 - f'_t) h~_t; J_t = diag(f'_t) depends on the inputs only."
    ),
    convention="f' keeps the old state: h_t = f'_t h_{t-1} + i'_t h~_t, f' + i' = 1",
    citations=("feng2024minrnn",),
    description="minLSTM: normalised forget/input gates of the input only",
)


def cornn(
    dt: float = CORNN_DEFAULTS["dt"],
    gamma: float = CORNN_DEFAULTS["gamma"],
    epsilon: float = CORNN_DEFAULTS["epsilon"],
    *,
    explicit: bool = False,
) -> Cell:
    """coRNN with step ``dt``, stiffness ``gamma`` and damping ``epsilon``.

    ``explicit=False``: the paper's IMEX scheme (damping at the new ``z``), cell ``cornn``;
    ``explicit=True``: the authors' code (``coRNNCell``, damping at the old ``z``), cell
    ``cornn-explicit``.

    References:
        [rusch2021cornn] Rusch & Mishra (2021), ICLR, eq. (3).
    """
    z_new = (
        "z + dt * (g - gamma * y - epsilon * z)"
        if explicit
        else "(z + dt * (g - gamma * y)) / (1 + dt * epsilon)"
    )
    values = f"dt = {dt:g}, gamma = {gamma:g}, epsilon = {epsilon:g}"
    return Cell(
        name="cornn-explicit" if explicit else "cornn",
        state=("y", "z"),
        nodes=_nodes(
            (
                ("a", "W @ y + W_z @ z + V @ x + b"),
                ("g", "tanh(a)"),
                ("z_new", z_new),
                ("y_new", "y + dt * z_new"),
            ),
            {"dt": dt, "gamma": gamma, "epsilon": epsilon},
        ),
        update=(("y", "y_new"), ("z", "z_new")),
        reference=(
            "Rusch & Mishra (2021), Coupled oscillatory recurrent neural network (coRNN), ICLR: "
            "y'' = tanh(W y + W_z y' + V u + b) - gamma y - epsilon y', "
            + (
                "discretised as the authors' code coRNNCell does (explicit damping), "
                if explicit
                else "IMEX discretisation of eq. (3) (implicit damping), "
            )
            + f"{values}. The code's i2h.weight (n, d + 2n) holds the columns [V | W_z | W]."
        ),
        convention="z first, then y from the new z: y_t = y_{t-1} + dt z_t",
        constants=(("dt", float(dt)), ("gamma", float(gamma)), ("epsilon", float(epsilon))),
        citations=("rusch2021cornn",),
        description=(
            "coRNN, explicit damping as the authors' code"
            if explicit
            else "coRNN: coupled oscillators, IMEX (paper)"
        ),
    )


def lem(dt: float = LEM_DT) -> Cell:
    """Long expressive memory with time step ``dt``; parameters in the paper's names.

    References:
        [rusch2022lem] Rusch, Mishra, Erichson & Mahoney (2022), ICLR.
    """
    return Cell(
        name="lem",
        state=("y", "z"),
        nodes=_nodes(
            (
                ("a_1", "W_1 @ y + V_1 @ x + b_1 + c_1"),
                ("a_2", "W_2 @ y + V_2 @ x + b_2 + c_2"),
                ("dt_n", "dt * sigmoid(a_1)"),
                ("dt_bar", "dt * sigmoid(a_2)"),
                ("a_z", "W_z @ y + V_z @ x + b_z + c_z"),
                ("z_new", "(1 - dt_n) * z + dt_n * tanh(a_z)"),
                ("a_y", "W_y @ z_new + V_y @ x + b_y + c_y"),
                ("y_new", "(1 - dt_bar) * y + dt_bar * tanh(a_y)"),
            ),
            {"dt": dt},
        ),
        update=(("y", "y_new"), ("z", "z_new")),
        # LEMCell's chunks (dt1, dt2, z, y) / (dt1, dt2, y) in the paper's symbols (docs §3.9)
        torch_layout=_layout(
            ("inp2hid.weight", ("V_2", "V_1", "V_y", "V_z")),
            ("inp2hid.bias", ("c_2", "c_1", "c_y", "c_z")),
            ("hid2hid.weight", ("W_2", "W_1", "W_z")),
            ("hid2hid.bias", ("b_2", "b_1", "b_z")),
            ("transform_z.weight", ("W_y",)),
            ("transform_z.bias", ("b_y",)),
        ),
        reference=(
            "Rusch, Mishra, Erichson & Mahoney (2022), Long expressive memory for sequence "
            "modeling, ICLR: dt_n = dt σ(W_1 y + V_1 u), dt_bar = dt σ(W_2 y + V_2 u), "
            "z_n = (1 - dt_n) z + dt_n tanh(W_z y + V_z u), "
            f"y_n = (1 - dt_bar) y + dt_bar tanh(W_y z_n + V_y u); dt = {dt:g}."
        ),
        convention="z first, then y from the new z; dt_n, dt_bar keep the old state",
        constants=(("dt", float(dt)),),
        citations=("rusch2022lem",),
        description="LEM: multiscale gated oscillator (z, then y)",
    )


SLSTM = Cell(
    name="slstm",
    state=("h", "c", "n"),
    nodes=_nodes(
        (
            *((f"a_{g}", f"W_{g} @ x + R_{g} @ h + b_{g}") for g in "ifzo"),
            ("i", "exp(a_i)"),
            ("f", "sigmoid(a_f)"),
            ("z", "tanh(a_z)"),
            ("o", "sigmoid(a_o)"),
            ("c_new", "f * c + i * z"),
            ("n_new", "f * n + i"),
            ("h_new", "o * c_new / n_new"),
        )
    ),
    update=(("h", "h_new"), ("c", "c_new"), ("n", "n_new")),
    torch_layout=_layout(
        ("weight_ih", ("W_i", "W_f", "W_z", "W_o")),
        ("recurrent_weight", ("R_i", "R_f", "R_z", "R_o")),
        ("bias", ("b_i", "b_f", "b_z", "b_o")),
    ),
    reference=(
        "Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter & Hochreiter "
        "(2024), xLSTM: extended long short-term memory, arXiv:2405.04517, Sec. 2.2: "
        "i = exp(ĩ), f = σ(f̃), c_t = f c + i z, n_t = f n + i, h_t = o c_t / n_t. The chain "
        "is taken over the paper's unstabilised state [h; c; n] (the stabiliser m rescales c "
        "and n by exp(-m) and leaves h and every dh/dh block unchanged; docs §3.12). R is one "
        "dense matrix per gate: xLSTM's head-wise kernel (H, n/H, 4 n/H) is its block-diagonal "
        "special case (recurrent_weight = the blocks' transposes on the diagonal)."
    ),
    convention="f keeps the old c and n: c_t = f_t c_{t-1} + i_t z_t, n_t = f_t n_{t-1} + i_t",
    citations=("beck2024xlstm",),
    description="sLSTM: exponential input gate with normaliser (xLSTM)",
)

#: RG-LRU's gate exponent ``c`` (De et al. 2024, eq. (4) and recurrentgemma).
RGLRU_C = 8.0


def rglru(c: float = RGLRU_C) -> Cell:
    """The real-gated linear recurrent unit of Griffin/Hawk with gate exponent ``c``.

    The RG-LRU multiplies its own input unit by unit (``i_t * x_t``, ``d = n``); gradflow feeds a
    cell through weights, so the catalogue cell starts with its block's input projection
    ``xin = W_in @ x`` (Griffin's ``linear_x``, temporal convolution omitted): ``W_in = I``
    (``d = n``) is the bare RG-LRU, as the paper initialisation sets it. The gates are dense
    ``(n, n)`` weights: recurrentgemma's ``BlockDiagonalLinear`` (``H`` heads) is their
    block-diagonal special case. ``J_t = diag(a_t)`` depends on the inputs only.

    References:
        [de2024griffin] De, Smith, Fernando et al. (2024), arXiv:2402.19427, Sec. 2.4.
    """
    return Cell(
        name="rglru",
        state=("h",),
        nodes=_nodes(
            (
                ("xin", "W_in @ x"),
                ("a_r", "W_a @ xin + b_a"),
                ("a_i", "W_x @ xin + b_x"),
                ("r", "sigmoid(a_r)"),
                ("i", "sigmoid(a_i)"),
                ("log_a", "-c * r * softplus(a_param)"),  # a^(c r), a = sigmoid(-a_param)
                ("a", "exp(log_a)"),
                ("h_new", "a * h + sqrt(1 - a**2) * i * xin"),
            ),
            {"c": c},
        ),
        update=(("h", "h_new"),),
        reference=(
            "De, Smith, Fernando et al. (2024), Griffin: mixing gated linear recurrences with "
            "local attention for efficient language models, arXiv:2402.19427, Sec. 2.4: "
            "r = σ(W_a x + b_a), i = σ(W_x x + b_x), a_t = σ(Λ)^(c r_t), "
            f"h_t = a_t h_{{t-1}} + sqrt(1 - a_t^2) (i_t x_t), c = {c:g}; as recurrentgemma "
            "computes it, log a_t = -c r_t softplus(a_param) with a_param = -Λ. Here x_t is "
            "W_in x (the block's input projection; W_in = I for the bare RG-LRU)."
        ),
        convention="a keeps the old state: h_t = a_t h_{t-1} + sqrt(1 - a_t^2) i_t x_t",
        citations=("de2024griffin",),
        description="RG-LRU (Griffin/Hawk): gated diagonal linear recurrence",
        constants=(("c", float(c)),),
    )


RGLRU = rglru()
JANET = janet()
CORNN = cornn()
CORNN_EXPLICIT = cornn(explicit=True)
LEM = lem()

#: The cells of this module in the order ``gradflow cells`` lists them.
MODERN_CELLS: tuple[Cell, ...] = (
    GRU_CHUNG,
    JANET,
    UR_LSTM,
    MINGRU,
    MINLSTM,
    CORNN,
    CORNN_EXPLICIT,
    LEM,
    SLSTM,
    RGLRU,
)

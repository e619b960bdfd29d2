r"""Long short-term memory cells.

State ``s_t = [h_t; c_t]``. The cell path ``c_t = f_t c_{t-1} + i_t g_t`` is additive: its
Jacobian block ``dc_t/dc_{t-1}`` is ``diag(f_t)`` with no weight matrix.
"""

from __future__ import annotations

import sympy as sp

from .functions import sigmoid
from .graph import Affine, Cell, Elementwise

_S = sp.Symbol


def _v(name: str) -> sp.Symbol:
    return _S(name, real=True)


i, f, g, o, c, c_new = (_v(s) for s in ("i", "f", "g", "o", "c", "c_new"))


def _torch_gate(gate: str) -> Affine:
    return Affine(
        f"a_{gate}", ((f"W_i{gate}", "x"), (f"W_h{gate}", "h")), (f"b_i{gate}", f"b_h{gate}")
    )


def _gate(gate: str, extra: sp.Expr = sp.S.Zero) -> Affine:
    return Affine(f"a_{gate}", ((f"W_x{gate}", "x"), (f"W_h{gate}", "h")), (f"b_{gate}",))


LSTM = Cell(
    name="lstm",
    state=("h", "c"),
    nodes=(
        _torch_gate("i"),
        _torch_gate("f"),
        _torch_gate("g"),
        _torch_gate("o"),
        Elementwise("i", sigmoid(_v("a_i"))),
        Elementwise("f", sigmoid(_v("a_f"))),
        Elementwise("g", sp.tanh(_v("a_g"))),
        Elementwise("o", sigmoid(_v("a_o"))),
        Elementwise("c_new", f * c + i * g),
        Elementwise("h_new", o * sp.tanh(c_new)),
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    torch_layout=tuple(
        (tensor, tuple(f"{prefix}{gate}" for gate in "ifgo"))
        for tensor, prefix in (
            ("weight_ih_l0", "W_i"),
            ("weight_hh_l0", "W_h"),
            ("bias_ih_l0", "b_i"),
            ("bias_hh_l0", "b_h"),
        )
    ),
    reference=(
        "Gers, Schmidhuber & Cummins (2000), Learning to forget: continual prediction with "
        "LSTM, Neural Computation 12(10); PyTorch nn.LSTM (gates i, f, g, o; two biases)."
    ),
    citations=("gers2000forget", "hochreiter1997"),
    description="LSTM with forget gate (PyTorch nn.LSTM)",
)

LSTM_NOFG = Cell(
    name="lstm-nofg",
    state=("h", "c"),
    nodes=(
        _gate("i"),
        _gate("g"),
        _gate("o"),
        Elementwise("i", sigmoid(_v("a_i"))),
        Elementwise("g", sp.tanh(_v("a_g"))),
        Elementwise("o", sigmoid(_v("a_o"))),
        Elementwise("c_new", c + i * g),
        Elementwise("h_new", o * sp.tanh(c_new)),
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    reference=(
        "Hochreiter & Schmidhuber (1997), Long short-term memory, Neural Computation 9(8): "
        "no forget gate, the constant error carousel c_t = c_{t-1} + i_t g_t."
    ),
    citations=("hochreiter1997",),
    description="LSTM without forget gate: constant error carousel",
)

LSTM_PEEPHOLE = Cell(
    name="lstm-peephole",
    state=("h", "c"),
    nodes=(
        _gate("i"),
        _gate("f"),
        _gate("g"),
        _gate("o"),
        Elementwise("i", sigmoid(_v("a_i") + _v("p_i") * c)),
        Elementwise("f", sigmoid(_v("a_f") + _v("p_f") * c)),
        Elementwise("g", sp.tanh(_v("a_g"))),
        Elementwise("c_new", f * c + i * g),
        Elementwise("o", sigmoid(_v("a_o") + _v("p_o") * c_new)),
        Elementwise("h_new", o * sp.tanh(c_new)),
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    reference=(
        "Gers & Schmidhuber (2000), Recurrent nets that time and count, IJCNN: diagonal "
        "peepholes p_i, p_f on c_{t-1} and p_o on c_t."
    ),
    citations=("gers2000peephole",),
    description="LSTM with diagonal peephole connections",
)

LSTM_CIFG = Cell(
    name="lstm-cifg",
    state=("h", "c"),
    nodes=(
        _gate("f"),
        _gate("g"),
        _gate("o"),
        Elementwise("f", sigmoid(_v("a_f"))),
        Elementwise("g", sp.tanh(_v("a_g"))),
        Elementwise("o", sigmoid(_v("a_o"))),
        Elementwise("c_new", f * c + (1 - f) * g),
        Elementwise("h_new", o * sp.tanh(c_new)),
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    reference=(
        "Greff et al. (2017), LSTM: a search space odyssey, IEEE TNNLS 28(10): coupled input "
        "and forget gate, i_t = 1 - f_t."
    ),
    citations=("greff2017",),
    description="LSTM with coupled input and forget gates (i = 1 - f)",
)

r = _v("r")

LSTM_PROJ = Cell(
    name="lstm-proj",
    state=("h", "c"),
    nodes=(
        _torch_gate("i"),
        _torch_gate("f"),
        _torch_gate("g"),
        _torch_gate("o"),
        Elementwise("i", sigmoid(_v("a_i"))),
        Elementwise("f", sigmoid(_v("a_f"))),
        Elementwise("g", sp.tanh(_v("a_g"))),
        Elementwise("o", sigmoid(_v("a_o"))),
        Elementwise("c_new", f * c + i * g),
        Elementwise("r", o * sp.tanh(c_new)),
        Affine("h_new", (("W_hr", "r"),)),
    ),
    update=(("h", "h_new"), ("c", "c_new")),
    torch_layout=(
        *(LSTM.torch_layout or ()),
        ("weight_hr_l0", ("W_hr",)),
    ),
    sizes=(("h", "p"), ("h_new", "p")),
    reference=(
        "Sak, Senior & Beaufays (2014), Long short-term memory recurrent neural network "
        "architectures for large scale acoustic modeling, Interspeech: the recurrent "
        "projection h_t = W_hr (o_t * tanh(c_t)) of p < n units; PyTorch nn.LSTM(proj_size=p) "
        "(gates i, f, g, o; two biases; W_hi etc. of shape (n, p))."
    ),
    citations=("sak2014lstmp", "gers2000forget"),
    description="LSTM with a recurrent projection, h of size p (nn.LSTM(proj_size=p))",
)

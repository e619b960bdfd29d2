r"""Minimal gated and elementwise recurrent cells."""

from __future__ import annotations

import sympy as sp

from .functions import relu, sigmoid
from .graph import Affine, Cell, Elementwise


def _v(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


MGU = Cell(
    name="mgu",
    state=("h",),
    nodes=(
        Affine("a_f", (("W_xf", "x"), ("W_hf", "h")), ("b_f",)),
        Elementwise("f", sigmoid(_v("a_f"))),
        Elementwise("fh", _v("f") * _v("h")),
        Affine("a_n", (("W_xn", "x"), ("W_hn", "fh")), ("b_n",)),
        Elementwise("n", sp.tanh(_v("a_n"))),
        Elementwise("h_new", (1 - _v("f")) * _v("h") + _v("f") * _v("n")),
    ),
    update=(("h", "h_new"),),
    reference=(
        "Zhou, Wu, Zhang & Zhou (2016), Minimal gated unit for recurrent neural networks, "
        "IJAC 13(3): one forget gate f_t used as reset and update, "
        "h_t = (1 - f_t) h_{t-1} + f_t n_t."
    ),
    convention="f writes the new state: h_t = (1 - f_t) h_{t-1} + f_t n_t",
    citations=("zhou2016",),
    description="Minimal gated unit: a single forget gate",
)

INDRNN = Cell(
    name="indrnn",
    state=("h",),
    nodes=(
        Affine("a", (("W_xh", "x"),), ("b",)),
        Elementwise("h_new", relu(_v("a") + _v("u") * _v("h"))),
    ),
    update=(("h", "h_new"),),
    reference=(
        "Li, Li, Cook, Zhu & Gao (2018), Independently recurrent neural network (IndRNN), "
        "CVPR: h_t = relu(W x_t + u * h_{t-1} + b), an elementwise recurrence; its Jacobian is "
        "diagonal (weight-free), so the whole chain is the additive path."
    ),
    citations=("li2018indrnn",),
    description="IndRNN: elementwise recurrent weights u",
)

MINIMALRNN = Cell(
    name="minimalrnn",
    state=("h",),
    nodes=(
        Affine("a_z", (("W_xz", "x"),), ("b_z",)),
        Elementwise("z", sp.tanh(_v("a_z"))),
        Affine("a_u", (("U_h", "h"), ("U_z", "z")), ("b_u",)),
        Elementwise("u", sigmoid(_v("a_u"))),
        Elementwise("h_new", _v("u") * _v("h") + (1 - _v("u")) * _v("z")),
    ),
    update=(("h", "h_new"),),
    reference=(
        "Chen, Pennington & Schoenholz (2018), Dynamical isometry and a mean field theory of "
        "RNNs: gating enables signal propagation in recurrent neural networks, ICML: "
        "z_t = tanh(W_x x_t + b_z), "
        "u_t = sigmoid(U_h h_{t-1} + U_z z_t + b_u), h_t = u_t h_{t-1} + (1 - u_t) z_t."
    ),
    convention="u keeps the old state: h_t = u_t h_{t-1} + (1 - u_t) z_t",
    citations=("chen2018minimalrnn",),
    description="MinimalRNN: input mapped once, one update gate",
)

r"""Elman recurrent networks: ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``."""

from __future__ import annotations

import sympy as sp

from .functions import relu
from .graph import Affine, Cell, Elementwise

_S = sp.Symbol
_a = _S("a", real=True)


def _elman(name: str, activation: sp.Expr, nonlinearity: str) -> Cell:
    return Cell(
        name=name,
        state=("h",),
        nodes=(
            Affine("a", (("W_ih", "x"), ("W_hh", "h")), ("b_ih", "b_hh")),
            Elementwise("h_new", activation),
        ),
        update=(("h", "h_new"),),
        torch_layout=(
            ("weight_ih_l0", ("W_ih",)),
            ("weight_hh_l0", ("W_hh",)),
            ("bias_ih_l0", ("b_ih",)),
            ("bias_hh_l0", ("b_hh",)),
        ),
        reference=(
            "Elman (1990), Finding structure in time, Cognitive Science 14(2); "
            f"PyTorch nn.RNN(nonlinearity='{nonlinearity}')."
        ),
        citations=("elman1990",),
        description=f"Elman RNN, {nonlinearity}: h_t = {nonlinearity}(W_ih x + W_hh h + b)",
    )


#: ``rnn``: Elman network with tanh (PyTorch ``nn.RNN``). Jacobian ``diag(1 - h_t^2) W_hh``.
RNN = _elman("rnn", sp.tanh(_a), "tanh")

#: ``rnn-relu``: Elman network with ReLU (PyTorch ``nn.RNN(nonlinearity="relu")``).
RNN_RELU = _elman("rnn-relu", relu(_a), "relu")

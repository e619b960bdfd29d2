r"""Gated recurrent units.

Two update conventions appear in the literature; both are expressible as data:

* *z keeps the old state*: ``h_t = z_t h_{t-1} + (1 - z_t) n_t`` (Cho et al. 2014, PyTorch,
  TensorFlow, Keras). Both GRUs here use it: the additive path is ``diag(z_t)``.
* *z writes the new state*: ``h_t = (1 - z_t) h_{t-1} + z_t n_t`` (Chung et al. 2014; the MGU
  of Zhou et al. 2016 in :mod:`gradflow.cells.minimal`): the additive path is ``diag(1 - z_t)``.
"""

from __future__ import annotations

import sympy as sp

from .functions import sigmoid
from .graph import Affine, Cell, Elementwise


def _v(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


r, z, n, h = (_v(s) for s in ("r", "z", "n", "h"))

GRU = Cell(
    name="gru",
    state=("h",),
    nodes=(
        Affine("a_r", (("W_ir", "x"), ("W_hr", "h")), ("b_ir", "b_hr")),
        Affine("a_z", (("W_iz", "x"), ("W_hz", "h")), ("b_iz", "b_hz")),
        Affine("a_nx", (("W_in", "x"),), ("b_in",)),
        Affine("a_nh", (("W_hn", "h"),), ("b_hn",)),
        Elementwise("r", sigmoid(_v("a_r"))),
        Elementwise("z", sigmoid(_v("a_z"))),
        Elementwise("n", sp.tanh(_v("a_nx") + r * _v("a_nh"))),
        Elementwise("h_new", (1 - z) * n + z * h),
    ),
    update=(("h", "h_new"),),
    torch_layout=tuple(
        (tensor, tuple(f"{prefix}{gate}" for gate in "rzn"))
        for tensor, prefix in (
            ("weight_ih_l0", "W_i"),
            ("weight_hh_l0", "W_h"),
            ("bias_ih_l0", "b_i"),
            ("bias_hh_l0", "b_h"),
        )
    ),
    reference=(
        "Cho et al. (2014), Learning phrase representations using RNN encoder-decoder, EMNLP; "
        "as in PyTorch nn.GRU / cuDNN: reset applied after the hidden matmul, "
        "n_t = tanh(W_in x + b_in + r_t (W_hn h + b_hn)), h_t = (1 - z_t) n_t + z_t h_{t-1}."
    ),
    convention="z keeps the old state: h_t = (1 - z_t) n_t + z_t h_{t-1}",
    citations=("cho2014",),
    description="GRU, reset after the hidden matmul (PyTorch nn.GRU, cuDNN)",
)

GRU_RESET_BEFORE = Cell(
    name="gru-reset-before",
    state=("h",),
    nodes=(
        Affine("a_r", (("W_xr", "x"), ("W_hr", "h")), ("b_r",)),
        Affine("a_z", (("W_xz", "x"), ("W_hz", "h")), ("b_z",)),
        Elementwise("r", sigmoid(_v("a_r"))),
        Elementwise("z", sigmoid(_v("a_z"))),
        Elementwise("rh", r * h),
        Affine("a_n", (("W_xn", "x"), ("W_hn", "rh")), ("b_n",)),
        Elementwise("n", sp.tanh(_v("a_n"))),
        Elementwise("h_new", z * h + (1 - z) * n),
    ),
    update=(("h", "h_new"),),
    reference=(
        "Cho et al. (2014), EMNLP, eq. (5)-(8); TensorFlow GRUCell: candidate "
        "n_t = tanh(W_xn x + W_hn (r_t * h_{t-1}) + b_n), h_t = z_t h_{t-1} + (1 - z_t) n_t."
    ),
    convention="z keeps the old state: h_t = z_t h_{t-1} + (1 - z_t) n_t",
    citations=("cho2014",),
    description="GRU, reset before the hidden matmul (Cho et al. 2014, TF GRUCell)",
)

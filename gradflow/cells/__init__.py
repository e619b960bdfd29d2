"""The cell catalogue and the cell representation.

Examples:
    >>> from gradflow.cells import get_cell
    >>> get_cell("lstm").parameter_count(n=8, d=3) == 4 * (8 * 3 + 8 * 8 + 2 * 8)
    True
"""

from __future__ import annotations

import difflib

from ..errors import CellError
from .functions import FUNCTIONS as FUNCTIONS
from .functions import relu as relu
from .functions import sigmoid as sigmoid
from .functions import softplus as softplus
from .graph import Affine as Affine
from .graph import Cell as Cell
from .graph import Elementwise as Elementwise
from .graph import Parameter as Parameter
from .gru import GRU, GRU_RESET_BEFORE
from .lstm import LSTM, LSTM_CIFG, LSTM_NOFG, LSTM_PEEPHOLE
from .minimal import INDRNN, MGU, MINIMALRNN
from .parse import define_cell as define_cell
from .parse import load_cell_file as load_cell_file
from .rnn import RNN, RNN_RELU

#: Every built-in cell by name, in the order ``gradflow cells`` lists them.
CATALOGUE: dict[str, Cell] = {
    c.name: c
    for c in (
        RNN,
        RNN_RELU,
        LSTM,
        LSTM_NOFG,
        LSTM_PEEPHOLE,
        LSTM_CIFG,
        GRU,
        GRU_RESET_BEFORE,
        MGU,
        INDRNN,
        MINIMALRNN,
    )
}


def get_cell(name: str) -> Cell:
    """The catalogue cell called ``name``; an unknown name gets a did-you-mean suggestion."""
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(CATALOGUE), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CellError(f"unknown cell {name!r}{hint} (known: {', '.join(CATALOGUE)})") from None


__all__ = [
    "CATALOGUE",
    "FUNCTIONS",
    "Affine",
    "Cell",
    "Elementwise",
    "Parameter",
    "define_cell",
    "get_cell",
    "load_cell_file",
    "relu",
    "sigmoid",
    "softplus",
]

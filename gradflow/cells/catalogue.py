"""The catalogue: every built-in cell by name, and the lookup with a did-you-mean."""

from __future__ import annotations

from ..errors import CellError, did_you_mean
from .dynamical import DYNAMICAL_CELLS
from .graph import Cell
from .gru import GRU, GRU_RESET_BEFORE
from .lstm import LSTM, LSTM_CIFG, LSTM_NOFG, LSTM_PEEPHOLE, LSTM_PROJ
from .minimal import INDRNN, MGU, MINIMALRNN
from .modern import MODERN_CELLS
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
        LSTM_PROJ,
        GRU,
        GRU_RESET_BEFORE,
        MGU,
        INDRNN,
        MINIMALRNN,
        *MODERN_CELLS,
        *DYNAMICAL_CELLS,
    )
}


#: The cells of the seeds' era (before issue 11), which the default report shows.
CLASSIC: tuple[str, ...] = (
    "rnn",
    "rnn-relu",
    "lstm",
    "lstm-nofg",
    "lstm-peephole",
    "lstm-cifg",
    "gru",
    "gru-reset-before",
    "mgu",
    "indrnn",
    "minimalrnn",
)

#: Every catalogue cell by family, for listings and reports that group them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "Elman": ("rnn", "rnn-relu"),
    "LSTM": (
        "lstm",
        "lstm-nofg",
        "lstm-peephole",
        "lstm-cifg",
        "lstm-proj",
        "ur-lstm",
        "janet",
        "slstm",
    ),
    "GRU": ("gru", "gru-reset-before", "gru-chung", "mgu", "minimalrnn"),
    "diagonal": ("indrnn", "mingru", "minlstm", "rglru", "mamba-s6"),
    "oscillator": ("cornn", "cornn-explicit", "lem"),
    "ODE": ("antisymmetric-rnn", "lipschitz-rnn"),
}


def get_cell(name: str) -> Cell:
    """The catalogue cell called ``name``; an unknown name gets a did-you-mean suggestion."""
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        hint = did_you_mean(str(name), list(CATALOGUE))
        raise CellError(f"unknown cell {name!r}{hint} (known: {', '.join(CATALOGUE)})") from None

"""The catalogue: every built-in cell by name, and the lookup with a did-you-mean.

The catalogue is lazy: its names are listed here, and a cell's module (which builds its SymPy
graph) is imported the first time one of its cells is looked up. So naming, listing and
checking catalogue names costs neither SymPy nor the cells' construction.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import CellError, did_you_mean

if TYPE_CHECKING:
    from .graph import Cell

#: Every built-in cell: ``(name, module under gradflow.cells, attribute)``, in the order
#: ``gradflow cells`` lists them.
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("rnn", "rnn", "RNN"),
    ("rnn-relu", "rnn", "RNN_RELU"),
    ("lstm", "lstm", "LSTM"),
    ("lstm-nofg", "lstm", "LSTM_NOFG"),
    ("lstm-peephole", "lstm", "LSTM_PEEPHOLE"),
    ("lstm-cifg", "lstm", "LSTM_CIFG"),
    ("lstm-proj", "lstm", "LSTM_PROJ"),
    ("gru", "gru", "GRU"),
    ("gru-reset-before", "gru", "GRU_RESET_BEFORE"),
    ("mgu", "minimal", "MGU"),
    ("indrnn", "minimal", "INDRNN"),
    ("minimalrnn", "minimal", "MINIMALRNN"),
    ("gru-chung", "modern", "GRU_CHUNG"),
    ("janet", "modern", "JANET"),
    ("ur-lstm", "modern", "UR_LSTM"),
    ("mingru", "modern", "MINGRU"),
    ("minlstm", "modern", "MINLSTM"),
    ("cornn", "modern", "CORNN"),
    ("cornn-explicit", "modern", "CORNN_EXPLICIT"),
    ("lem", "modern", "LEM"),
    ("slstm", "modern", "SLSTM"),
    ("rglru", "modern", "RGLRU"),
    ("antisymmetric-rnn", "dynamical", "ANTISYMMETRIC_RNN"),
    ("lipschitz-rnn", "dynamical", "LIPSCHITZ_RNN"),
    ("mamba-s6", "dynamical", "MAMBA_S6"),
)


class Catalogue(Mapping[str, "Cell"]):
    """A read-only mapping of cell names to cells that builds a cell when it is first looked up.

    Iterating, ``len`` and ``in`` use the names alone; ``catalogue[name]`` imports the module
    that defines the cell (once) and returns its one :class:`~gradflow.cells.graph.Cell`
    object, the same object every time.
    """

    def __init__(self, sources: tuple[tuple[str, str, str], ...]) -> None:
        self._sources = {name: (module, attr) for name, module, attr in sources}

    def __getitem__(self, name: str) -> Cell:
        module, attr = self._sources[name]
        cell: Cell = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        if cell.name != name:  # the table above and the modules disagree: a bug, said plainly
            raise CellError(f"catalogue entry {name!r} holds the cell {cell.name!r}")
        return cell

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._sources

    def __repr__(self) -> str:
        return f"Catalogue({list(self._sources)})"


#: Every built-in cell by name, in the order ``gradflow cells`` lists them (built on lookup).
CATALOGUE: Catalogue = Catalogue(SOURCES)


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
    if name in CATALOGUE:
        return CATALOGUE[name]
    hint = did_you_mean(str(name), list(CATALOGUE))
    raise CellError(f"unknown cell {name!r}{hint} (known: {', '.join(CATALOGUE)})")

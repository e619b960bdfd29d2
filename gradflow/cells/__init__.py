"""The cell catalogue and the cell representation.

Names are loaded on first use (PEP 562 module ``__getattr__``), and the catalogue builds a cell
when it is first looked up (:class:`~gradflow.cells.catalogue.Catalogue`): importing this
package imports neither SymPy nor any cell's graph.

Examples:
    >>> from gradflow.cells import get_cell
    >>> get_cell("lstm").parameter_count(n=8, d=3) == 4 * (8 * 3 + 8 * 8 + 2 * 8)
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and readers
    from .catalogue import CATALOGUE as CATALOGUE
    from .catalogue import get_cell as get_cell
    from .functions import FUNCTIONS as FUNCTIONS
    from .functions import relu as relu
    from .functions import sigmoid as sigmoid
    from .functions import softplus as softplus
    from .graph import Affine as Affine
    from .graph import Cell as Cell
    from .graph import Elementwise as Elementwise
    from .graph import Origin as Origin
    from .graph import Parameter as Parameter
    from .spec import define_cell as define_cell
    from .spec import load_cell_file as load_cell_file

#: Each public name and the submodule that defines it, imported when the name is first used.
_LAZY: dict[str, str] = {
    "CATALOGUE": "catalogue",
    "FUNCTIONS": "functions",
    "Affine": "graph",
    "Cell": "graph",
    "Elementwise": "graph",
    "Origin": "graph",
    "Parameter": "graph",
    "define_cell": "spec",
    "get_cell": "catalogue",
    "load_cell_file": "spec",
    "relu": "functions",
    "sigmoid": "functions",
    "softplus": "functions",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its submodule on first use (then cached)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gradflow.cells' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

"""The cell catalogue and the cell representation.

Examples:
    >>> from gradflow.cells import get_cell
    >>> get_cell("lstm").parameter_count(n=8, d=3) == 4 * (8 * 3 + 8 * 8 + 2 * 8)
    True
"""

from __future__ import annotations

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

__all__ = [
    "CATALOGUE",
    "FUNCTIONS",
    "Affine",
    "Cell",
    "Elementwise",
    "Origin",
    "Parameter",
    "define_cell",
    "get_cell",
    "load_cell_file",
    "relu",
    "sigmoid",
    "softplus",
]

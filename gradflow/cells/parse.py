"""Former home of the cell file reader, kept so that ``from gradflow.cells.parse import ...``
keeps working: the grammar now lives in :mod:`gradflow.cells.grammar` and the cell
specification (TOML files, :func:`define_cell`) in :mod:`gradflow.cells.spec`."""

from .spec import define_cell as define_cell
from .spec import load_cell_file as load_cell_file

__all__ = ["define_cell", "load_cell_file"]

"""gradflow: exact symbolic Jacobians and log-domain products for recurrent cells.

Examples:
    >>> import gradflow
    >>> print(gradflow.get_cell("rnn").jacobian())
    dh_t/dh_{t-1} = diag(1 - h_t**2) @ W_hh
"""

from ._version import __version__ as __version__
from .cells import CATALOGUE as CATALOGUE
from .cells import Cell as Cell
from .cells import define_cell as define_cell
from .cells import get_cell as get_cell
from .cells import load_cell_file as load_cell_file
from .engine import analyze as analyze
from .engine import rollout as rollout
from .engine import state_jacobians as state_jacobians
from .errors import GradflowError as GradflowError
from .initialisers import Init as Init
from .initialisers import initialise as initialise
from .results import AnalysisResult as AnalysisResult
from .symbolic import state_jacobian as state_jacobian
from .weights import load_inputs as load_inputs
from .weights import load_weights as load_weights
from .weights import save_weights as save_weights

__all__ = [
    "CATALOGUE",
    "AnalysisResult",
    "Cell",
    "GradflowError",
    "Init",
    "__version__",
    "analyze",
    "define_cell",
    "get_cell",
    "initialise",
    "load_cell_file",
    "load_inputs",
    "load_weights",
    "rollout",
    "save_weights",
    "state_jacobian",
    "state_jacobians",
]

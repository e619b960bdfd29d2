"""gradflow: exact symbolic Jacobians and log-domain products for recurrent cells.

The public names are loaded on first use (PEP 562 module ``__getattr__``): ``import gradflow``
imports neither SymPy nor the engine, so that the command line and worker processes start
quickly; ``gradflow.analyze`` imports the engine the first time it is looked up.

Examples:
    >>> import gradflow
    >>> print(gradflow.get_cell("rnn").jacobian())
    dh_t/dh_{t-1} = diag(1 - h_t**2) @ W_hh
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and readers
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

#: Each public name and the submodule that defines it, imported when the name is first used.
_LAZY: dict[str, str] = {
    "CATALOGUE": "cells",
    "AnalysisResult": "results",
    "Cell": "cells",
    "GradflowError": "errors",
    "Init": "initialisers",
    "analyze": "engine",
    "define_cell": "cells",
    "get_cell": "cells",
    "initialise": "initialisers",
    "load_cell_file": "cells",
    "load_inputs": "weights",
    "load_weights": "weights",
    "rollout": "engine",
    "save_weights": "weights",
    "state_jacobian": "symbolic",
    "state_jacobians": "engine",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its submodule on first use (then cached)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gradflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

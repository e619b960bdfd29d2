r"""Experiments as configuration: a typed config, one function that runs it, typed summaries.

An experiment runs every ``(cell, seed)`` pair of its configuration through
:func:`gradflow.engine.analyze` and reduces the runs (``seeds x batch`` of them) to quantile
bands per lag, a decay rate, the Pascanu bound where it applies and the mean-field prediction
where it applies. The result is a typed :class:`~gradflow.results.ExperimentResult`.

This module is the face of three: :mod:`.config` (the configuration), :mod:`.run` (running)
and :mod:`.summarise` (reducing runs); every name is re-exported here.

Examples:
    >>> cfg = ExperimentConfig.from_dict({"cells": ["rnn"], "hidden_size": 8, "seeds": 2})
    >>> cfg.seeds
    (0, 1)
"""

from __future__ import annotations

from ..measure import GRADIENT_LOSSES as GRADIENT_LOSSES
from ..results import ExperimentResult as ExperimentResult
from .config import BACKENDS as BACKENDS
from .config import CONFIG_KEYS as CONFIG_KEYS
from .config import INIT_KEYS as INIT_KEYS
from .config import MAX_SIZE as MAX_SIZE
from .config import ExperimentConfig as ExperimentConfig
from .config import InputsConfig as InputsConfig
from .config import Progress as Progress
from .config import Quantities as Quantities
from .config import check_keys as check_keys
from .config import checked_float as checked_float
from .config import checked_init as checked_init
from .config import checked_int as checked_int
from .config import load_config as load_config
from .config import read_toml as read_toml
from .run import cell_init as cell_init
from .run import experiment_inputs as experiment_inputs
from .run import progress_bar as progress_bar
from .run import resolve_cells as resolve_cells
from .run import run_cell as run_cell
from .run import run_experiment as run_experiment
from .run import seed_sequence as seed_sequence
from .summarise import band_names as band_names
from .summarise import run_decay_rates as run_decay_rates
from .summarise import summarise_cell as summarise_cell

"""Typed results: the one way data leaves the engine and the analyses (DESIGN decision 11).

Every result is a frozen dataclass on one base (:class:`Result`): ``to_dict``/``from_dict``
(validated once, on the way in), atomic ``save``, ``load``, and :func:`load_result`, which
dispatches on the JSON's ``kind``. Volatile run metadata (timings) lives in ``result.run`` and is
saved apart (``run.json``), so data files are byte-identical for a fixed seed.

Modules: :mod:`.io` (strict JSON), :mod:`.base`, :mod:`.band`, :mod:`.analysis`,
:mod:`.experiment` (with :mod:`.diagnostics` and :mod:`.lyapunov`, what an experiment cell
carries beside its norms), :mod:`.sweep`, :mod:`.claims`, :mod:`.stack`, :mod:`.trained`.
"""

from .analysis import AnalysisResult as AnalysisResult
from .band import Band as Band
from .band import level_name as level_name
from .base import Result as Result
from .base import ResultError as ResultError
from .base import load_result as load_result
from .base import run_path as run_path
from .claims import Claim as Claim
from .claims import ClaimsResult as ClaimsResult
from .claims import Clipping as Clipping
from .experiment import CellCard as CellCard
from .experiment import CellSummary as CellSummary
from .experiment import DecayRate as DecayRate
from .experiment import ExperimentResult as ExperimentResult
from .experiment import MeanField as MeanField
from .experiment import PascanuBound as PascanuBound
from .io import dumps as dumps
from .io import load_json as load_json
from .io import save_json as save_json
from .stack import StackResult as StackResult
from .sweep import SweepPoint as SweepPoint
from .sweep import SweepResult as SweepResult
from .trained import StageSummary as StageSummary
from .trained import TrainedNetwork as TrainedNetwork
from .trained import TrainedResult as TrainedResult

#: Schema version of the analysis result (the ``analyze`` contract).
SCHEMA_VERSION = AnalysisResult.schema_version

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisResult",
    "Band",
    "CellCard",
    "CellSummary",
    "Claim",
    "ClaimsResult",
    "Clipping",
    "DecayRate",
    "ExperimentResult",
    "MeanField",
    "PascanuBound",
    "Result",
    "ResultError",
    "StackResult",
    "StageSummary",
    "SweepPoint",
    "SweepResult",
    "TrainedNetwork",
    "TrainedResult",
    "dumps",
    "level_name",
    "load_json",
    "load_result",
    "run_path",
    "save_json",
]

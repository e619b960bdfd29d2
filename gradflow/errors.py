"""The one family of gradflow errors.

Every error a user can cause derives from :class:`GradflowError`. The command line turns them
into one line on stderr: :class:`UsageError` subclasses exit with code 2 (the user asked for
something malformed), the others with code 1 (a runtime fault).
"""

from __future__ import annotations


class GradflowError(Exception):
    """Base class of every error gradflow raises on purpose."""

    exit_code = 1


class UsageError(GradflowError):
    """The request itself is malformed (unknown name, bad option value)."""

    exit_code = 2


class CellError(UsageError):
    """A cell definition is inconsistent or unknown."""


class EquationError(CellError):
    """An equation file or expression is malformed or unsafe."""


class WeightsError(UsageError):
    """A weight file is unreadable, incomplete, of the wrong shape, or not finite."""


class InputsError(UsageError):
    """An input array has the wrong rank, size, dtype, or non-finite values."""


class ConfigError(UsageError):
    """An experiment configuration has unknown keys or out-of-range values."""


class BackendError(GradflowError):
    """An array backend is not available (e.g. CuPy without a GPU)."""


class NumericalError(GradflowError):
    """A rollout produced NaN or inf (reported with the step and sequence)."""


class CellUpdateError(CellError):
    """A cell's update does not give exactly one earlier node for each state vector."""

"""The one family of gradflow errors.

Every error a user can cause derives from :class:`GradflowError`. The command line turns them
into one line on stderr: :class:`UsageError` subclasses exit with code 2 (the user asked for
something malformed), the others with code 1 (a runtime fault).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


class FactorError(NumericalError):
    """A Jacobian factor is not finite: ``factor`` is its text, ``where`` its index
    ``(step in chunk, sequence, unit)``; the engine adds the absolute step."""

    def __init__(self, message: str, factor: str, where: tuple[int, ...]) -> None:
        super().__init__(message)
        self.factor = factor
        self.where = where

    def at_step(self, cell: str, t0: int) -> NumericalError:
        """The one-line error with the absolute step: the chunk that raised starts at ``t0``."""
        k, b = self.where[:2]
        return NumericalError(
            f"the Jacobian of {cell!r} is NaN or inf at step {t0 + k + 1}, sequence {b}: its "
            f"factor diag({self.factor}) is unbounded at the state reached there (sqrt or log "
            "at 0?)"
        )


class OutputError(GradflowError):
    """An output file cannot be written there (a device, an input of the run, no folder)."""


def did_you_mean(
    name: object, choices: Iterable[str], cutoff: float = 0.6, prefix: str = ""
) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name``, else ``""``.

    The one did-you-mean helper: every suggestion gradflow makes goes through it.
    ``prefix`` is put before the suggestion (``init.`` for keys of the ``[init]`` table).

    Examples:
        >>> did_you_mean("lstn", ["rnn", "lstm", "gru"])
        "; did you mean 'lstm'?"
    """
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


class CellUpdateError(CellError):
    """A cell's update does not give exactly one earlier node for each state vector."""

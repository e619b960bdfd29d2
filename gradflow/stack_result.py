"""Compatibility shim: :class:`StackResult` now lives in :mod:`gradflow.results.stack`."""

from .results.stack import StackResult as StackResult

__all__ = ["StackResult"]

"""Array namespaces: NumPy always, CuPy when installed with a CUDA device.

This is the only module that knows CuPy exists; it is imported lazily, inside
:func:`array_namespace`, so ``import gradflow`` never touches it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendError

BACKENDS = ("numpy", "cupy")
DTYPES = {"float64": np.float64, "float32": np.float32}


def array_namespace(name: str = "numpy") -> ModuleType:
    """The array module for backend ``name`` (``numpy`` or ``cupy``)."""
    if name == "numpy":
        return np
    if name == "cupy":
        try:
            cp = importlib.import_module("cupy")
            if cp.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as exc:  # ImportError, CUDA driver errors
            raise BackendError(
                "backend 'cupy' needs CuPy and a CUDA GPU "
                f"({type(exc).__name__}: {exc}); install with pip install 'gradflow[gpu]'"
            ) from None
        return cp
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def cupy_available() -> bool:
    """True when the CuPy backend can run here."""
    try:
        array_namespace("cupy")
    except BackendError:
        return False
    return True


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of any backend to host NumPy."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    return np.asarray(get() if get is not None else array)


def resolve_dtype(name: str) -> type:
    try:
        return DTYPES[name]
    except KeyError:
        raise BackendError(f"unknown dtype {name!r}; choose float64 or float32") from None

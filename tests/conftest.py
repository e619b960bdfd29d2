"""Shared fixtures.

``xp``: the array namespace an array test runs on. NumPy always; CuPy only where it imports
and a CUDA device exists (:func:`gradflow.backend.cupy_available`), otherwise that parameter is
skipped with the reason. Session-scoped, so that hypothesis tests may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from gradflow.backend import array_namespace, cupy_available


@pytest.fixture(
    scope="session",
    params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)],
)
def xp(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    if request.param == "cupy" and not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    yield array_namespace(request.param)

"""Named tensors from a file or a mapping: shapes up front, checked float64 data on demand."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WeightsError
from ..tensorfile import TensorFile

_FLOATS = ("float16", "float32", "float64", "bfloat16")


def _first_bad(arr: np.ndarray) -> str:
    bad = ~np.isfinite(arr)
    index = np.unravel_index(int(np.argmax(bad)), arr.shape)
    where = str(int(index[0])) if len(index) == 1 else str(tuple(int(i) for i in index))
    count = int(bad.sum())
    return f"{count} non-finite value{'s' if count > 1 else ''} (first at index {where})"


@dataclass
class TensorSet:
    """Tensor names with shapes and dtypes, and a reader that returns checked float64 arrays.

    Attributes:
        where: the file (or ``"state_dict"``) for messages.
        shapes: name -> shape, for every tensor.
        dtypes: name -> NumPy dtype name (or a safetensors code NumPy lacks).
        reader: name -> raw array.
    """

    where: str
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    reader: Callable[[str], np.ndarray]
    hidden: set[str] = field(default_factory=set)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Listed tensors: every name but those consumed by a computed one."""
        return [n for n in self.shapes if n not in self.hidden]

    @classmethod
    def from_file(cls, tf: TensorFile) -> TensorSet:
        return cls(
            str(tf.path),
            {n: tf.shape(n) for n in tf.names},
            {n: tf.dtype(n) for n in tf.names},
            tf.read,
        )

    @classmethod
    def from_mapping(cls, tensors: Mapping[str, Any], where: str = "state_dict") -> TensorSet:
        arrays = {k: np.asarray(v) for k, v in tensors.items()}
        return cls(
            where,
            {k: tuple(int(s) for s in v.shape) for k, v in arrays.items()},
            {k: v.dtype.name for k, v in arrays.items()},
            arrays.__getitem__,
        )

    def add_virtual(
        self, name: str, shape: tuple[int, ...], compute: Callable[[], np.ndarray]
    ) -> None:
        """A tensor computed from others (an effective parametrized weight)."""
        self.shapes[name] = shape
        self.dtypes[name] = "float64"
        previous = self.reader

        def reader(key: str) -> np.ndarray:
            return compute() if key == name else previous(key)

        self.reader = reader

    def read(self, name: str) -> np.ndarray:
        """The tensor as a float64 array; refuses non-float dtypes and non-finite values."""
        if name in self._cache:
            return self._cache[name]
        dtype = self.dtypes[name]
        if dtype not in _FLOATS:
            raise WeightsError(
                f"{self.where}: {name} has dtype {dtype}; weights must be floating point "
                "(float16, bfloat16, float32 or float64)"
            )
        if dtype == "bfloat16":
            try:
                importlib.import_module("ml_dtypes")
            except ImportError:
                raise WeightsError(
                    f"{self.where}: {name} is BF16, which NumPy reads only with ml_dtypes: "
                    "pip install ml_dtypes"
                ) from None
        arr = np.asarray(self.reader(name)).astype(np.float64)
        if arr.shape != self.shapes[name]:
            raise WeightsError(f"{self.where}: {name} does not have its listed shape")
        if not np.isfinite(arr).all():
            raise WeightsError(f"{self.where}: {name} has {_first_bad(arr)}")
        self._cache[name] = arr
        return arr

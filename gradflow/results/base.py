"""The base of every result: a frozen dataclass with a ``kind``, a schema version, validated
``from_dict``, ``to_dict``, atomic ``save`` and ``load``, and one :func:`load_result`.

A result's JSON holds its data only. What varies from run to run (timings, the host) is kept
in :attr:`Result.run` and saved apart by :meth:`Result.save_run` (``run.json`` beside the
data), so two runs with one seed write byte-identical data files.

Validation happens once, on the way in (``from_dict``); a malformed file gives one line that
names the file and the first field that is wrong.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import UsageError
from .io import PathLike, dumps, load_json, loads, save_json

R = TypeVar("R", bound="Result")

_KINDS: dict[str, type[Result]] = {}


class ResultError(UsageError):
    """A result file or dict is not of the expected shape."""


class Where:
    """Names the field being read, for one-line validation errors (``cells.rnn.decay_rate``)."""

    def __init__(self, kind: str, path: str = "") -> None:
        self.kind, self.path = kind, path

    def at(self, key: object) -> Where:
        return Where(self.kind, f"{self.path}.{key}" if self.path else str(key))

    def fail(self, what: str) -> ResultError:
        field_ = f" {self.path}:" if self.path else ""
        return ResultError(f"not a valid {self.kind} result:{field_} {what}")


def mapping(data: Any, where: Where) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise where.fail(f"expected a table, got {type(data).__name__}")
    return data


def get(data: Mapping[str, Any], key: str, where: Where) -> Any:
    if key not in data:
        raise where.fail(f"missing key {key!r}")
    return data[key]


def as_str(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        raise where.fail(f"expected text, got {type(value).__name__}")
    return value


def as_int(value: Any, where: Where, lo: int = 0, hi: int = 10**12) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise where.fail(f"expected an integer, got {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise where.fail(f"expected an integer in [{lo}, {hi}], got {int(value)}")
    return int(value)


def as_float(value: Any, where: Where) -> float | None:
    """A float; ``None`` (JSON ``null``, a non-finite number when saved) stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise where.fail(f"expected a number, got {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:
        raise where.fail("number out of range") from None
    return v if math.isfinite(v) else None


def as_bool(value: Any, where: Where) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise where.fail(f"expected true or false, got {type(value).__name__}")
    return bool(value)


def as_list(value: Any, where: Where) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise where.fail(f"expected a list, got {type(value).__name__}")
    return list(value)


def as_array(value: Any, where: Where, ndim: int | None = None) -> np.ndarray:
    """A float64 array (JSON ``null`` becomes NaN) of ``ndim`` dimensions."""
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise where.fail(f"expected a list of numbers, got {type(value).__name__}")
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise where.fail("expected a regular array of numbers") from None
    if ndim is not None and arr.ndim != ndim and not (arr.size == 0 and ndim > 1):
        raise where.fail(f"expected {ndim} dimensions, got shape {arr.shape}")
    return arr


def optional(
    data: Mapping[str, Any], key: str, where: Where, convert: Callable[[Any, Where], Any]
) -> Any:
    """``convert(data[key])``, or None when the key is absent or null."""
    value = data.get(key)
    return None if value is None else convert(value, where.at(key))


@dataclass(frozen=True, eq=False)
class Result:
    """Base of every saved result.

    Subclasses set ``kind`` and ``schema_version``, and implement :meth:`_data` and
    :meth:`_from_data`. ``run`` holds volatile run metadata (timings, host, wall clock); it is
    never part of :meth:`to_dict`.
    """

    kind: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    #: Older versions :meth:`from_dict` still reads.
    reads_versions: ClassVar[tuple[int, ...]] = ()

    run: Mapping[str, Any] = field(default_factory=dict, kw_only=True, repr=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def _data(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_data(cls: type[R], data: Mapping[str, Any], version: int, where: Where) -> R:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: ``schema_version``, ``kind``, then the fields."""
        return {"schema_version": self.schema_version, "kind": self.kind, **self._data()}

    def comparable(self) -> dict[str, Any]:
        """The saved data as plain JSON values (equal for equal results)."""
        return dict(loads(dumps(self.to_dict())))

    @classmethod
    def from_dict(cls: type[R], data: Any, *, run: Mapping[str, Any] | None = None) -> R:
        """Validate and build a result from its dict; one-line :class:`ResultError` if not."""
        where = Where(cls.kind)
        data = mapping(data, where)
        kind = data.get("kind")
        if kind != cls.kind:
            raise ResultError(f'not {_article(cls.kind)} result (expected "kind": "{cls.kind}")')
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            raise where.fail("schema_version must be an integer")
        if version > cls.schema_version:
            raise ResultError(
                f"{cls.kind} result of schema version {version} was written by a newer "
                f"gradflow (this one reads up to {cls.schema_version}); upgrade gradflow"
            )
        if version != cls.schema_version and version not in cls.reads_versions:
            raise ResultError(
                f"{cls.kind} result of schema version {version} is no longer read; run it "
                f"again to write version {cls.schema_version}"
            )
        try:
            out = cls._from_data(data, version, where)
        except RecursionError:
            raise where.fail("nested too deeply") from None
        return replace(out, run=dict(run)) if run else out

    def save(
        self, path: PathLike, *, inputs: Iterable[PathLike] = (), parents: bool = False
    ) -> None:
        """Write the data JSON atomically (never over one of ``inputs``)."""
        save_json(path, self.to_dict(), inputs=inputs, parents=parents)

    def save_run(self, path: PathLike, *, parents: bool = False) -> None:
        """Write the volatile run metadata (:attr:`run`) as JSON, apart from the data."""
        save_json(path, {"kind": f"{self.kind}-run", **self.run}, parents=parents)

    @classmethod
    def load(cls: type[R], path: PathLike) -> R:
        """Read a saved result; one-line errors name the file."""
        data = load_json(path)
        try:
            return cls.from_dict(data)
        except ResultError as err:
            raise ResultError(f"{os.fspath(path)}: {err}") from None


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def run_path(path: PathLike) -> str:
    """Where the run metadata of the data file ``path`` goes: ``x.json`` -> ``x.run.json``."""
    text = os.fspath(path)
    stem = text[: -len(".json")] if text.endswith(".json") else text
    return stem + ".run.json"


def load_result(result: Any) -> Result:
    """The typed result in a JSON file, a dict or a result object, by its ``kind``.

    Raises:
        ResultError: the file or dict is not a gradflow result, or is malformed.
    """
    if isinstance(result, Result):
        return result
    label = ""
    if isinstance(result, (str, os.PathLike)):
        label = f"{os.fspath(result)}: "
        result = load_json(result)
    if not isinstance(result, Mapping):
        raise ResultError(f"{label}not a gradflow result (expected a JSON object with a kind)")
    kind = result.get("kind")
    if kind is None and "log10_spectral_norm" in result:
        kind = "analysis"  # files from before the kind field
        result = {**result, "kind": kind}
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(k for k in _KINDS if "-" not in k))
        raise ResultError(f"{label}unknown result kind {kind!r}; expected one of {known}")
    try:
        return cls.from_dict(result)
    except ResultError as err:
        raise ResultError(f"{label}{err}") from None

"""Strict JSON in and out, with the bounds a hand-edited or hostile file needs.

Writing: strict JSON (non-finite numbers become ``null``), keys in the order the result builds
them (so the order cells were run in survives), one space of indentation, a final newline; the
same data always gives the same bytes. Reading: only regular files, at most
:data:`MAX_JSON_BYTES`, and every failure (not JSON, nested too deep, an integer too long to
convert, not UTF-8) is one :class:`~gradflow.errors.UsageError` line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import UsageError

#: The largest result file :func:`load_json` reads.
MAX_JSON_BYTES = 1 << 30

PathLike = str | os.PathLike[str]


def clean(value: Any) -> Any:
    """JSON-ready data: arrays to lists, tuples to lists, non-finite floats to None."""
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def dumps(data: Any, *, compact: bool = False) -> str:
    """Strict, deterministic JSON in the order the data was built (no key sorting)."""
    if compact:
        return json.dumps(clean(data), allow_nan=False, separators=(",", ":")) + "\n"
    return json.dumps(clean(data), allow_nan=False, indent=1) + "\n"


def save_json(
    path: PathLike, data: Any, *, inputs: Iterable[PathLike] = (), parents: bool = False
) -> None:
    """Write ``data`` as JSON atomically (:func:`gradflow.atomic.atomic_write`)."""
    atomic_write(path, dumps(data), inputs=inputs, parents=parents)


def load_json(path: PathLike) -> Any:
    """A JSON file's data; every failure is one line naming the file.

    Raises:
        UsageError: no such file, not a regular file, too large, not UTF-8, not JSON, nested
            too deep, or an integer too long to convert.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{p}: not a regular file (a result must be a JSON file)")
    if st.st_size > MAX_JSON_BYTES:
        raise UsageError(f"{p}: {st.st_size} bytes is larger than a result can be")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{p}: not valid JSON (not UTF-8 text at byte {exc.start})") from None
    return loads(text, str(p))


def loads(text: str, label: str = "<string>") -> Any:
    """:func:`json.loads` with one-line errors for malformed, too-deep or oversized data."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{label}: not valid JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{label}: JSON nested too deeply to be a gradflow result") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise UsageError(f"{label}: not a usable JSON value ({exc})") from None

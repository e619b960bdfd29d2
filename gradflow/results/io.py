"""Strict JSON in and out, with the bounds a hand-edited or hostile file needs.

Writing: strict JSON (non-finite numbers become ``null``), keys in the order the result builds
them (so the order cells were run in survives), one space of indentation, a final newline; the
same data always gives the same bytes. :func:`save_json` streams: large arrays (at least
:data:`STREAM_MIN_SIZE` numbers) are written a block of rows at a time, never as one list or
one string, so saving an analysis of ``T = 10^6`` steps needs memory for a block, not for the
whole 175 MB text (issue 13); the bytes are exactly those of :func:`dumps`.

Reading: only regular files, at most :data:`MAX_JSON_BYTES`, and every failure (not JSON,
nested too deep, an integer too long to convert, not UTF-8) is one
:class:`~gradflow.errors.UsageError` line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_open
from ..errors import UsageError
from ..tensorfile import check_regular_file

#: The largest result file :func:`load_json` reads.
MAX_JSON_BYTES = 1 << 30
#: Arrays with at least this many numbers are streamed by :func:`save_json`.
STREAM_MIN_SIZE = 1 << 14
#: Rows of a streamed array formatted at once.
STREAM_BLOCK_ROWS = 1 << 12

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


def iter_json(data: Any) -> Iterator[str]:
    """The text of :func:`dumps` (indented form) in pieces, large arrays a block at a time.

    The data is first written with every array of at least :data:`STREAM_MIN_SIZE` numbers
    replaced by a placeholder string (a random token, which no JSON text of the data can
    contain); the pieces are that skeleton's text with each placeholder replaced by its
    array's text, made by :func:`json.dumps` of a block of rows and indented to the
    placeholder's depth. Joined, the pieces are exactly ``dumps(data)``.
    """
    token = f"\0gradflow-array-{secrets.token_hex(8)}-"
    arrays: list[np.ndarray] = []

    def skeleton(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.size >= STREAM_MIN_SIZE:
            arrays.append(value)
            return f"{token}{len(arrays) - 1}"
        if isinstance(value, dict):
            return {str(k): skeleton(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [skeleton(v) for v in value]
        return clean(value)

    text = json.dumps(skeleton(data), allow_nan=False, indent=1) + "\n"
    if not arrays:
        yield text
        return
    marker = json.dumps(token)[:-1]  # the token as JSON writes it, without the closing quote
    pos = 0
    while (start := text.find(marker, pos)) >= 0:
        end = text.index('"', start + len(marker))
        index = int(text[start + len(marker) : end])
        yield text[pos:start]
        line_start = text.rfind("\n", 0, start) + 1
        depth = len(text[line_start:start]) - len(text[line_start:start].lstrip(" "))
        yield from _iter_array(arrays[index], depth)
        pos = end + 1
    yield text[pos:]


def _iter_array(arr: np.ndarray, depth: int) -> Iterator[str]:
    """``arr`` as :func:`dumps` writes it at indentation ``depth``, a block of rows at a time."""
    pad = " " * depth
    yield "["
    for first in range(0, len(arr), STREAM_BLOCK_ROWS):
        block = json.dumps(
            clean(arr[first : first + STREAM_BLOCK_ROWS].tolist()), allow_nan=False, indent=1
        )
        # "[\n row,\n row\n]" at depth 0: keep the rows, indent them to this depth
        inner = block[1:-2].replace("\n", "\n" + pad)
        yield ("," if first else "") + inner
    yield "\n" + pad + "]"


def save_json(
    path: PathLike, data: Any, *, inputs: Iterable[PathLike] = (), parents: bool = False
) -> None:
    """Write ``data`` as JSON atomically (:func:`gradflow.atomic.atomic_open`), streaming large
    arrays (:func:`iter_json`); the bytes are those of :func:`dumps`."""
    with atomic_open(path, "w", inputs=inputs, parents=parents) as fh:
        for piece in iter_json(data):
            fh.write(piece)


def load_json(path: PathLike) -> Any:
    """A JSON file's data; every failure is one line naming the file.

    Raises:
        UsageError: no such file, not a regular file, too large, not UTF-8, not JSON, nested
            too deep, or an integer too long to convert.
    """
    p = Path(path)
    check_regular_file(
        p,
        UsageError,
        note="a result must be a JSON file",
        max_bytes=MAX_JSON_BYTES,
        too_big="{path}: {size} bytes is larger than a result can be",
    )
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

"""A disk cache of generated kernel source, so that a later process skips printing it.

:func:`gradflow.codegen.compile_cell` prints a cell's kernels from its SymPy derivation
(common-subexpression elimination and the printer cost 5-30 ms a cell and path); this module
keeps that Python SOURCE, with the plain metadata that goes with it (the factors' texts for
error messages), as one JSON file per entry: no pickle, nothing but strings.

An entry's name is the hash of everything the source depends on: the cell's canonical
definition and the Jacobian path (given by the caller), the versions of gradflow, NumPy and
SymPy, and the source code of the generator itself (:data:`GENERATOR`), so an edited
generator never meets an old entry. An entry is handed back only when its content hash
verifies and it names the key that was asked for; a corrupt, truncated or foreign file is
ignored (and overwritten by the fresh source). Entries are written atomically; where the
folder cannot be written the caller simply keeps its kernels in memory.

``GRADFLOW_CACHE=0`` turns the cache off; ``GRADFLOW_CACHE_DIR`` moves it (default
``$XDG_CACHE_HOME/gradflow/kernels``, or ``~/.cache/gradflow/kernels``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._version import __version__
from .atomic import atomic_write
from .errors import OutputError

#: The entry layout; a new layout gets a new number (and so new keys).
FORMAT = 1
#: The modules whose code decides what the generator prints, relative to the package.
GENERATOR = (
    "codegen.py",
    "kernel_cache.py",
    "cells/functions.py",
    "cells/graph.py",
    "symbolic/__init__.py",
    "symbolic/jacobian.py",
)
#: An entry larger than this is not read (generated kernels are a few kilobytes).
MAX_BYTES = 4 << 20


def enabled() -> bool:
    """Whether the disk cache is on: ``GRADFLOW_CACHE=0`` turns it off, and so does a package
    whose generator code cannot be read (installed in a zip file), since no key can name it."""
    return os.environ.get("GRADFLOW_CACHE", "1").strip() != "0" and generator_hash() != ""


def user_cache(kind: str) -> Path:
    """gradflow's folder ``kind`` in the user's cache: ``$XDG_CACHE_HOME/gradflow/<kind>``,
    by default ``~/.cache/gradflow/<kind>`` (also the compiled backend's ``compiled``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradflow" / kind


def cache_dir() -> Path:
    """``GRADFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradflow/kernels`` (``~/.cache``)."""
    own = os.environ.get("GRADFLOW_CACHE_DIR")
    return Path(own) if own else user_cache("kernels")


@lru_cache(maxsize=1)
def generator_hash() -> str:
    """The hash of the generator's own code (:data:`GENERATOR`) and gradflow's version; ``""``
    where that code cannot be read."""
    h = hashlib.sha256(f"gradflow {__version__} format {FORMAT}".encode())
    package = Path(__file__).parent
    try:
        for name in GENERATOR:
            h.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    except OSError:
        return ""
    return h.hexdigest()


def entry_key(definition: str) -> str:
    """The key of the entry for ``definition`` (the caller's canonical text of everything
    else the source depends on: the cell, the path, the NumPy and SymPy versions)."""
    return hashlib.sha256(f"{generator_hash()}\0{definition}".encode()).hexdigest()


def _digest(key: str, payload: Mapping[str, Any]) -> str:
    text = json.dumps({"key": key, "payload": payload}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / f"{key[:32]}.json"


def load(key: str) -> dict[str, Any] | None:
    """The payload stored under ``key``, or None: no entry, cache off, or an entry that is
    unreadable, corrupt (its content hash does not verify) or another key's."""
    if not enabled():
        return None
    try:
        path = _path(key)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:  # a FIFO would block
            return None
        entry = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RuntimeError):  # missing, unreadable, not JSON; no home
        return None
    if not isinstance(entry, dict) or set(entry) != {"format", "key", "payload", "sha256"}:
        return None
    payload = entry["payload"]
    if entry["format"] != FORMAT or entry["key"] != key or not isinstance(payload, dict):
        return None
    if entry["sha256"] != _digest(key, payload):
        return None
    return payload


def store(key: str, payload: Mapping[str, Any]) -> bool:
    """Write ``payload`` (JSON data) under ``key`` atomically; False where the cache is off
    or its folder cannot be written (the caller keeps its kernels in memory)."""
    if not enabled():
        return False
    entry = {"format": FORMAT, "key": key, "payload": payload, "sha256": _digest(key, payload)}
    text = json.dumps(entry, sort_keys=True, ensure_ascii=True, indent=1) + "\n"
    with contextlib.suppress(OSError, OutputError, RuntimeError):  # RuntimeError: no home
        atomic_write(_path(key), text, parents=True)
        return True
    return False

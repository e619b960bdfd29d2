"""Atomic file output, the one writer for every file gradflow makes.

Data goes to a temporary file beside the target, which is renamed over the target only once it
is complete: a reader never sees a half-written file, and an interrupted run leaves the previous
version. Every file gets the same permissions (``0666`` less the umask).

The writer refuses targets it must not replace: a device, a FIFO, a socket or a folder, and any
file the same run reads (``inputs``). Its parent folder must exist unless the caller asked for
it to be made (``parents=True``, e.g. ``report --out``). Any :class:`OSError` (read-only folder,
a parent that is a file, a NUL in the name, a full disk) becomes one
:class:`~gradflow.errors.OutputError` that names the path and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError

PathLike = str | os.PathLike[str]


def file_mode() -> int:
    """``0666`` less the process umask: the mode of every file gradflow writes."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def check_target(path: PathLike, *, inputs: Iterable[PathLike] = (), parents: bool = False) -> Path:
    """``path`` as a Path, after checking that gradflow may write a file there.

    Args:
        path: the file to write.
        inputs: files the same run reads; writing over one of them is refused.
        parents: create missing parent folders instead of refusing.

    Raises:
        OutputError: the target is a device, FIFO, socket or folder, one of ``inputs``, or in a
            folder that does not exist (and ``parents`` is false) or cannot be made.
    """
    text = os.fspath(path)
    if "\0" in text:
        raise OutputError(f"{text!r}: cannot write (the name contains a NUL character)")
    target = Path(text)
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc)})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = (
            "a folder"
            if stat.S_ISDIR(st.st_mode)
            else "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "not a regular file"
        )
        raise OutputError(f"{target}: is {what}; refusing to write over it")
    if st is not None:
        for other in inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(target, other):
                    raise OutputError(
                        f"{target}: is also an input of this run ({other}); "
                        "choose another output path"
                    )
    parent = target.parent
    if not parent.is_dir():
        if parent.exists():
            raise OutputError(f"{target}: cannot write ({parent} is not a folder)")
        if not parents:
            raise OutputError(f"{target}: cannot write (the folder {parent} does not exist)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{target}: cannot create its folder {parent} ({_reason(exc)})"
            ) from None
    return target


@contextlib.contextmanager
def atomic_open(
    path: PathLike,
    mode: str = "w",
    *,
    inputs: Iterable[PathLike] = (),
    parents: bool = False,
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path``.

    Args:
        path: the target file.
        mode: ``"w"`` (UTF-8 text) or ``"wb"``.
        inputs: files of the same run that must not be overwritten.
        parents: create missing parent folders.

    Raises:
        OutputError: the target is refused (:func:`check_target`) or writing fails.
    """
    target = check_target(path, inputs=inputs, parents=parents)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc)})") from None
    try:
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; give the file ordinary permissions
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{target}: cannot write ({_reason(exc)})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(
    path: PathLike,
    data: str | bytes,
    *,
    inputs: Iterable[PathLike] = (),
    parents: bool = False,
) -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(
        path, "wb" if isinstance(data, bytes) else "w", inputs=inputs, parents=parents
    ) as fh:
        fh.write(data)

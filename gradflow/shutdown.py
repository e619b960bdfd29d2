"""Clean shutdown on SIGINT and SIGTERM: one exception, every cleanup path, one exit code.

Python turns SIGINT into :class:`KeyboardInterrupt`, but SIGTERM's default action kills the
process on the spot: no ``finally`` runs, so worker pools, the forkserver, the resource tracker
and temporary folders outlive it (issue 13). :func:`handle_signals` makes SIGTERM raise
:class:`Terminated`, a :class:`KeyboardInterrupt`, so the code that already cleans up after
Ctrl-C (cancel pending sweep points, stop the workers, close a Dask client, remove a report's
temporary folder) runs for both. A second signal while that cleanup runs is ignored, so the
cleanup cannot itself be interrupted halfway.

The command line exits with :func:`exit_code`: ``128 + signal number`` (130 for SIGINT, 143
for SIGTERM), the shell's convention.

Examples:
    >>> exit_code(KeyboardInterrupt())
    130
    >>> exit_code(Terminated(15))
    143
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Terminated", "exit_code", "handle_signals", "interrupted", "worker_init"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (or another signal).

    A :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` cleanup path applies.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = int(signum)


_received: list[int] = []


def interrupted() -> int | None:
    """The signal number received under :func:`handle_signals`, or None."""
    return _received[0] if _received else None


def exit_code(exc: BaseException) -> int:
    """``128 + signal number``: 143 for :class:`Terminated` by SIGTERM, 130 for Ctrl-C."""
    if isinstance(exc, Terminated):
        return 128 + exc.signum
    return 128 + int(signal.SIGINT)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:  # already shutting down: let the cleanup finish
        return
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT raises :class:`KeyboardInterrupt`, SIGTERM :class:`Terminated`, within the block.

    Installs the handlers only in the main thread (elsewhere the block runs unchanged) and
    restores the previous ones on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for sig in (int(signal.SIGINT), int(signal.SIGTERM)):
        previous[sig] = signal.signal(sig, _handler)
    _received.clear()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _received.clear()


def worker_init() -> None:
    """Initializer of worker processes: Ctrl-C in a terminal reaches the whole process group,
    and only the parent should act on it (it stops the workers itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

r"""The BLAS thread policy of gradflow's compute regions (DESIGN decision 12).

Left alone, OpenBLAS starts one thread per core, and its threads spin and yield whenever
another process holds a core: on a busy 2-core machine ``analyze`` ran 4-16x slower than with
one thread (issue 14), with identical output. gradflow therefore sets the BLAS thread count
itself, with :mod:`threadpoolctl`, inside every compute region of the engine, and restores
the caller's setting afterwards.

The policy, in order:

1. ``threads=`` passed to :func:`gradflow.engine.analyze` (or :func:`compute_region`);
2. the process-wide setting :func:`set_threads` (what the CLI's ``--threads`` calls);
3. the environment variable ``GRADFLOW_THREADS``;
4. by size: one thread for products of state size ``m < PARALLEL_FROM`` (the batched small
   products that dominate, where a second thread costs more in synchronisation than it
   gains), every available core from there on, but never more than a BLAS thread variable
   the user set (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``).

Measured while choosing ``PARALLEL_FROM`` (one ``(2, m, m) @ (2, m, m)`` product, speed-up of
2 threads over 1 on a 2-core machine shared with other work, so noisy): m = 128: 1.5,
256: 2.0, 512: 1.1, 1024: 1.1, 2048: 2.0. A bare product gains from m = 128 on a quiet
second core, but ``analyze`` at m <= 256 is dominated by NumPy's per-call cost and by thin
``(m, m) @ (m, 8)`` Krylov products, which do not gain, and beside a busy process any second
thread loses: an LSTM at n = 256 (m = 512, T = 40, B = 4) took 18 s of CPU with two threads
on the loaded machine against 1.6 s with one. Hence the conservative 1024
(``benchmarks/threads.py`` repeats the measurement for ``analyze`` itself).

Worker pools (reports, sweeps) share one budget: :func:`threads_per_worker` gives each of
``w`` workers ``cores // w`` threads, and each worker caps the policy at its share
(:func:`set_worker_share`), so that workers x threads never exceeds the cores.

Compute regions cover the engine; a whole run (``gradflow run``, a sweep's point, the claims,
a report) also holds :func:`compute_region` around everything else it computes (certified
singular values, path expansions, mean fields, bounds: small products too), with the policy's
count for the run's largest state.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from .errors import UsageError

#: The environment variable that overrides the policy.
ENV = "GRADFLOW_THREADS"
#: From this state size on, BLAS gets every available core.
PARALLEL_FROM = 1024
#: Thread variables of the BLAS libraries: when set, they cap the size rule.
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_override: int | None = None
_share: int | None = None
_controller: ThreadpoolController | None = None
_modules = 0


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{source} must be a whole number of threads >= 1; got {value!r}")
    return value


def set_threads(threads: int | None) -> None:
    """Set (or, with ``None``, clear) the process-wide BLAS thread count of compute regions.

    This is what the command line's ``--threads N`` calls; ``analyze(threads=...)`` still
    takes precedence for one call."""
    global _override
    _override = None if threads is None else _check(threads, "threads")


def set_worker_share(threads: int | None) -> None:
    """Cap the policy's count (all but an explicit ``threads=``) at ``threads``: a worker's
    share of the cores in a pool (:func:`threads_per_worker`); ``None`` lifts the cap."""
    global _share
    _share = None if threads is None else _check(threads, "threads")


def _capped(count: int) -> int:
    return count if _share is None else min(count, _share)


def env_threads() -> int | None:
    """The thread count from ``GRADFLOW_THREADS``, or ``None`` when unset or empty."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{ENV} must be a whole number of threads >= 1; got {raw!r}") from None
    return _check(value, ENV)


def blas_threads(m: int, threads: int | None = None) -> int:
    """The BLAS thread count for products of state size ``m`` under the policy above."""
    if threads is not None:
        return _check(threads, "threads")
    if _override is not None:
        return _capped(_override)
    env = env_threads()
    if env is not None:
        return _capped(env)
    by_size = 1 if m < PARALLEL_FROM else cores()
    for var in BLAS_VARS:
        raw = os.environ.get(var, "").strip()
        if raw.isdigit() and int(raw) >= 1:
            by_size = min(by_size, int(raw))
    return _capped(by_size)


def batch_threads(batch: int, threads: int | None = None) -> int:
    """Threads over which the compiled backend (:mod:`gradflow.compiled`) spreads the
    ``batch`` independent sequences: ``threads=``, :func:`set_threads` or ``GRADFLOW_THREADS``
    when given; else one per core, at most one per sequence, and never more than a BLAS thread
    variable the user set (a user who asked for one thread gets one)."""
    if threads is not None:
        return _check(threads, "threads")
    if _override is not None:
        return _capped(_override)
    env = env_threads()
    if env is not None:
        return _capped(env)
    count = min(cores(), max(1, int(batch)))
    for var in BLAS_VARS:
        raw = os.environ.get(var, "").strip()
        if raw.isdigit() and int(raw) >= 1:
            count = min(count, int(raw))
    return _capped(count)


def threads_per_worker(workers: int) -> int:
    """BLAS threads for each of ``workers`` parallel workers: the cores shared out, at
    least one each (a pool of more workers than cores gets one thread per worker)."""
    return max(1, cores() // max(1, int(workers)))


@contextmanager
def compute_region(threads: int) -> Iterator[None]:
    """Run the body with ``threads`` BLAS threads; the caller's setting is restored after,
    also when the body raises. Regions nest: an inner one sets its own count and gives the
    outer one's back."""
    global _controller, _modules
    # Inspecting the loaded libraries takes a millisecond: again only after an import, which
    # may have loaded another BLAS (SciPy's OpenBLAS, loaded with scipy.linalg, is one).
    if _controller is None or len(sys.modules) != _modules:
        _controller = ThreadpoolController()
        _modules = len(sys.modules)
    with _controller.limit(limits=_check(threads, "threads"), user_api="blas"):
        yield

"""Cost of the structure-aware path of ``analyze`` (gradflow.diagonal, issue 11 item 4).

For a cell whose state Jacobian is diagonal (``mingru``, ``minlstm``, ``rglru``, ``indrnn``)
``analyze`` takes an exact ``O(T B m)`` path instead of the dense chain's ``O(T B m^2)`` (a
diagonal Jacobian is applied as a column scaling, but the product, its normalisation and its
certified spectral norm are ``m x m``). Two parts:

1. ``--full``: ``mingru`` at n = 4096, T = 100,000, B = 4 (the issue's size) and the same at
   T = 10,000, each in a fresh process through ``gradflow.engine.analyze``: CPU and wall
   seconds, the process's peak RSS (``resource.getrusage``) and its RSS just before
   ``analyze`` (inputs allocated), so the analysis' own memory is their difference. The
   state-free cells need no checkpoints, so that difference does not grow with T.
2. Side by side, dense (``structure="dense"``) and structured, ``mingru`` at n = 64, 256,
   1024 (T = 200, B = 4): CPU time (``time.process_time``), best of 3, one BLAS thread
   (``threads=1`` and ``OPENBLAS_NUM_THREADS=1`` set here before NumPy is imported).

Run: ``python benchmarks/diagonal_chain.py [--full]``; the output of ``--full`` is kept in
``benchmarks/diagonal_chain_output.txt``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gradflow.cells import get_cell  # noqa: E402
from gradflow.engine import analyze  # noqa: E402
from gradflow.initialisers import Init, initialise  # noqa: E402

D = 16  # input size


def _rss_now() -> float:
    """Resident set size now, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(name: str, n: int, steps: int, batch: int) -> dict[str, float]:
    """One analysis in this process: seconds, peak and baseline RSS."""
    cell = get_cell(name)
    rng = np.random.default_rng(0)
    p = initialise(cell, n, D, Init(scheme="paper", t_max=float(steps)), rng)
    x = rng.standard_normal((steps, batch, D))
    before = _rss_now()
    c, w = time.process_time(), time.perf_counter()
    res = analyze(cell, p, x, threads=1)
    cpu, wall = time.process_time() - c, time.perf_counter() - w
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    return {
        "cpu": cpu,
        "wall": wall,
        "peak": peak,
        "before": before,
        "inputs": x.nbytes / 2**20,
        "last": float(res.log10_spectral_norm[-1, 0]),
        "kernel": res.meta["structure"]["kernel"],
        "chunk": res.meta["chunk_steps"],
    }


def full() -> None:
    print("mingru through analyze (structured path), fresh process per row, one BLAS thread")
    print("| n | T | B | CPU s | wall s | us / step | peak RSS MiB | RSS before MiB | inputs MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for steps in (10_000, 100_000):
        out = subprocess.run(
            [sys.executable, __file__, "--one", "mingru", "4096", str(steps), "4"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| 4096 | {steps} | 4 | {r['cpu']:.1f} | {r['wall']:.1f} | "
            f"{1e6 * r['cpu'] / steps:.0f} | {r['peak']:.0f} | {r['before']:.0f} | "
            f"{r['inputs']:.0f} |",
            flush=True,
        )
    print(f"(kernel {r['kernel']}, chunk {r['chunk']} steps; log10 norm at lag T {r['last']:.1f})")


def best_cpu(fn: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - t)
    return best


def side_by_side(sizes: tuple[int, ...] = (64, 256, 1024), steps: int = 200) -> None:
    cell = get_cell("mingru")
    print(f"\nmingru, T = {steps}, B = 4: CPU seconds, best of 3, one BLAS thread")
    print("| n | dense | structured | dense / structured |")
    print("|---|---|---|---|")
    for n in sizes:
        rng = np.random.default_rng(0)
        p = initialise(cell, n, D, Init(scheme="paper", t_max=float(steps)), rng)
        x = rng.standard_normal((steps, 4, D))
        dense = best_cpu(lambda: analyze(cell, p, x, structure="dense", threads=1))  # noqa: B023
        fast = best_cpu(lambda: analyze(cell, p, x, threads=1))  # noqa: B023
        print(f"| {n} | {dense:.3f} | {fast:.4f} | {dense / fast:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="the issue's size (minutes)")
    ap.add_argument("--one", nargs=4, metavar=("CELL", "N", "T", "B"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        name, n, steps, batch = args.one
        print(json.dumps(one(name, int(n), int(steps), int(batch))))
        return
    if args.full:
        full()
    side_by_side()


if __name__ == "__main__":
    main()

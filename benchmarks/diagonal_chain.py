"""Cost of the structure-aware diagonal chain (gradflow.diagonal, issue 11 item 4).

``diagonal_chain`` costs ``O(T B m)`` time and ``O((T/chunk + chunk) B m)`` memory (chunk =
sqrt(T) by default) for a cell whose state Jacobian is diagonal (``mingru``, ``minlstm``,
``indrnn``); the dense engine costs ``O(T B m^2)`` and more. Reports seconds, microseconds per
step and sequence, and the peak of Python-tracked memory (tracemalloc; NumPy arrays included).
The issue's target is ``mingru`` at n = 4096, T = 100,000, B = 4 (``--full``; minutes on one
core); the default runs T = 5,000 and the smaller sizes.

Run: ``python benchmarks/diagonal_chain.py`` (``--full`` for the issue's size).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from gradflow.cells import get_cell
from gradflow.diagonal import diagonal_chain
from gradflow.initialisers import Init, initialise


def run(name: str, n: int, steps: int, batch: int, d: int = 64) -> tuple[float, float]:
    cell = get_cell(name)
    rng = np.random.default_rng(0)
    p = initialise(cell, n, d, Init(scheme="paper", t_max=float(steps)), rng)
    x = rng.standard_normal((steps, batch, d))
    tracemalloc.start()
    t = time.perf_counter()
    diagonal_chain(cell, p, x)
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak  # the inputs were allocated before tracing started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    configs = [("mingru", 4096, 100_000, 4)] if args.full else []
    configs += [("mingru", 256, 5000, 4), ("mingru", 4096, 5000, 4), ("indrnn", 4096, 5000, 4)]
    print("| cell | n | T | B | seconds | us / step | peak MiB (chain) |")
    print("|---|---|---|---|---|---|---|")
    for name, n, steps, batch in configs:
        sec, peak = run(name, n, steps, batch)
        print(
            f"| {name} | {n} | {steps} | {batch} | {sec:.2f} | {1e6 * sec / steps:.1f} | "
            f"{peak / 2**20:.1f} |"
        )


if __name__ == "__main__":
    main()

"""The issue's stack case on a GPU, within a time budget: 4-layer LSTM, n = 256, B = 4.

Runs :func:`gradflow.stack.analyze_stack` (``backend="cupy"``, every sensitivity and the lag
split of ``L = sum h_T``, as ``benchmarks/scale.py --stack`` does) at each ``T`` of
``--steps`` (default 1,000 then 10,000), each in its own process, and prints wall and CPU
seconds, peak host RSS (VmHWM), the CuPy memory pool's high-water mark (the pool keeps every
block it reserved, so its ``total_bytes()`` at the end is its peak), the device memory in use
at the end (``cudaMemGetInfo``, the CUDA context included) and whether every log10 norm is
finite. Constant memory: the pool and the host RSS must not grow with ``T`` beyond the result
arrays (a few tens of MB at T = 10,000).

It stops cleanly at ``--budget-s`` (wall seconds, all runs together): a ``T`` whose estimate
(the previous run's analysis time scaled by the ratio of the ``T``s, plus its
start-up) does not fit what is left is
skipped with a line that says so, and a run that outlasts the budget is killed and reported.

Run (on the GPU machine, from the repository root):
``PYTHONPATH=. python benchmarks/stack_gpu.py --budget-s 400``; ``--backend numpy`` runs the
same on the CPU (``--steps 20 200`` for a check that it works).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale import STACK_HEADER, stack_case  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="cupy")
    ap.add_argument("--budget-s", type=float, default=400.0, help="wall seconds for all runs")
    args = ap.parse_args()
    deadline = time.perf_counter() + args.budget_s
    print(
        f"LSTM stack, {args.depth} layers, n = {args.n}, B = {args.batch}, d = 8, backend "
        f"{args.backend}, budget {args.budget_s:.0f} s; wall and CPU seconds, peak host RSS "
        "(VmHWM), CuPy pool high-water mark, device memory in use at the end",
        flush=True,
    )
    print(STACK_HEADER, flush=True)
    prev: tuple[int, float, float] | None = None  # T, analysis seconds, start-up seconds
    for T in args.steps:
        left = deadline - time.perf_counter()
        if prev is not None:
            estimate = prev[2] + prev[1] * T / prev[0]
            if estimate > left:
                print(
                    f"{T:>7} skipped: about {estimate:.0f} s at {prev[1] / prev[0] * 1e3:.1f} "
                    f"ms per step, {left:.0f} s left",
                    flush=True,
                )
                continue
        if left <= 1:
            print(f"{T:>7} skipped: the budget is spent", flush=True)
            continue
        started = time.perf_counter()
        row, wall = stack_case(args.depth, args.n, T, args.batch, args.backend, left)
        print(row, flush=True)
        if wall is None:
            break
        prev = (T, wall, time.perf_counter() - started - wall)


if __name__ == "__main__":
    main()

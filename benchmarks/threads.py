"""Where do more BLAS threads start to pay? The evidence behind ``gradflow.threads``.

For each state size, times (best of ``--repeat``, interleaved) one batched product
``(B, m, m) @ (B, m, m)`` (the chain's step) and a whole ``analyze`` of an RNN with that state
size, with 1 thread and with every core, and prints the speed-up of all cores over one.
``PARALLEL_FROM`` in :mod:`gradflow.threads` is the smallest size where the speed-up is
clearly above 1 on a quiet machine; on a machine with other work, more threads lose at
every size (see ``benchmarks/busy_machine.py``).

Run: ``python benchmarks/threads.py [--sizes 64,128,256,512,1024]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.threads import cores


def matmul_time(P: np.ndarray, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        P @ P
    return (time.perf_counter() - t) / reps


def analyze_time(cell: object, params: dict[str, np.ndarray], x: np.ndarray, t: int) -> float:
    start = time.perf_counter()
    analyze(cell, params, x, threads=t)  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256,512,1024")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    c = cores()
    rng = np.random.default_rng(0)
    cell = get_cell("rnn")
    print(f"{c} cores; speed-up = time(1 thread) / time({c} threads)")
    head = f"{'m':>6} {'matmul 1':>9} {'matmul c':>9} {'speed-up':>8}"
    print(head + f" {'analyze 1':>10} {'analyze c':>10} {'speed-up':>8}")
    for m in (int(v) for v in args.sizes.split(",")):
        P = rng.standard_normal((args.batch, m, m))
        reps = max(1, int(2e9 / (2 * args.batch * m**3)))
        T = min(1000, max(5, int(4e9 / (2 * args.batch * m**3))))
        params = {
            p.name: rng.standard_normal(p.numeric_shape(m, 4)) / np.sqrt(m) for p in cell.parameters
        }
        x = rng.standard_normal((T, args.batch, 4))
        analyze(cell, params, x[:3], threads=1)
        mm: dict[int, list[float]] = {1: [], c: []}
        an: dict[int, list[float]] = {1: [], c: []}
        for _ in range(args.repeat):
            for t in (1, c):
                with threadpool_limits(limits=t, user_api="blas"):
                    mm[t].append(matmul_time(P, reps))
                an[t].append(analyze_time(cell, params, x, t))
        m1, mc, a1, ac = min(mm[1]), min(mm[c]), min(an[1]), min(an[c])
        print(
            f"{m:>6} {m1:>9.2e} {mc:>9.2e} {m1 / mc:>8.2f} {a1:>10.3f} {ac:>10.3f} {a1 / ac:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

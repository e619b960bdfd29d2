"""CuPy backend against NumPy: the same ``analyze`` on the GPU and on the CPU, side by side.

Each case runs ``analyze`` (rollout, Jacobian factors, the chain, Frobenius and certified
spectral norms for every lag) with ``backend="numpy"`` (BLAS threads as stated in the table)
and ``backend="cupy"``, best of ``--repeat`` runs after one warm-up (the warm-up compiles
CuPy's kernels and fills the kernel cache), and checks that the two agree in log10.

Run on a machine with CuPy and a CUDA GPU: ``python benchmarks/gpu.py`` (``--quick`` for a
smoke run). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from gradflow.backend import cupy_available
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.initialisers import Init, initialise

CASES = [
    ("rnn", 128, 500, 16),
    ("lstm", 128, 500, 16),
    ("gru", 128, 500, 16),
    ("lstm", 512, 200, 16),
    ("gru", 512, 200, 16),
    ("lstm", 1024, 100, 8),
    ("rnn", 2048, 50, 4),
]
QUICK = [("lstm", 64, 50, 4)]


def _time(fn, repeat: int) -> tuple[float, float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    best = min(times)
    return best, (max(times) - best) / best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-n", type=int, default=0, help="only the cases with n >= this")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if not cupy_available():
        raise SystemExit("needs CuPy and a CUDA GPU")
    import cupy as cp

    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(
        f"GPU: {name}; CPU side: NumPy with {args.threads} BLAS thread(s) "
        f"({', '.join(sorted({i['internal_api'] for i in threadpool_info()}))}); "
        f"best of {args.repeat} after one warm-up; spread = (worst - best) / best\n"
    )
    print("| cell | n | T | B | numpy s (spread) | cupy s (spread) | numpy / cupy | max |dlog10| |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [c for c in (QUICK if args.quick else CASES) if c[1] >= args.min_n]
    for cell, n, T, B in cases:
        rng = np.random.default_rng(0)
        params = initialise(get_cell(cell), n, n, Init(), rng)
        x = rng.standard_normal((T, B, n))

        def cpu(params=params, x=x, cell=cell):
            with threadpool_limits(args.threads):
                return analyze(cell, params, x, backend="numpy", threads=args.threads)

        def gpu(params=params, x=x, cell=cell):
            out = analyze(cell, params, x, backend="cupy")
            cp.cuda.Device().synchronize()
            return out

        tc, sc, rc = _time(cpu, args.repeat)
        tg, sg, rg = _time(gpu, args.repeat)
        a = np.asarray(rc.log10_spectral_norm)
        b = np.asarray(rg.log10_spectral_norm)
        finite = np.isfinite(a)
        err = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0
        print(
            f"| {cell} | {n} | {T} | {B} | {tc:.3f} ({sc:.0%}) | {tg:.3f} ({sg:.0%}) | "
            f"{tc / tg:.2f} | {err:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

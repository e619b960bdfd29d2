"""Scale: long sequences in constant memory and large hidden sizes on the CPU.

Each case runs in its own process so its peak resident memory (``ru_maxrss``) is its own.
Cases (issue "Bad input, faults and scale"): rnn n=16 with T=1,000,000; lstm n=64 with
T=100,000; rnn n=64 with T=100,000, B=4; rnn n=2048 (a few steps). Prints wall time, peak
RSS and whether every reported log norm is finite.

Stacks (``--stack``): a 4-layer LSTM stack through :func:`gradflow.stack.analyze_stack`
(joint, per-layer and cross-layer chains, memory curves, gradient vectors and the lag split
of ``L = sum h_T``) at ``T`` and ``10 T``, each in its own process: the peak RSS must not grow
with ``T`` beyond the result arrays, whose size is printed beside it (``result MB``, and per
lag), so the constant part ``peak - result`` can be compared. The issue's case is
``--stack --n 256 --steps 1000`` (4 layers, ``B = 4``, T = 1,000 and 10,000; hours on two
cores); ``--backend cupy`` runs it on a GPU and adds the CuPy pool's high-water mark and the
device memory in use (``benchmarks/stack_gpu.py`` runs it within a time budget).

Run: ``python benchmarks/scale.py`` (``--quick`` divides every T by 100).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

CASES = [
    ("rnn", 16, 1_000_000, 1),
    ("lstm", 64, 100_000, 1),
    ("rnn", 64, 100_000, 4),
    ("rnn", 2048, 4, 1),
    ("gru", 2048, 3, 1),
]

CODE = textwrap.dedent("""
    import dataclasses, sys, time
    import numpy as np
    from gradflow.cells import get_cell
    from gradflow.engine import analyze
    from gradflow.initialisers import Init, initialise
    name, n, T, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    cell = get_cell(name)
    params = initialise(cell, n, 4, Init("gaussian"), rng)
    x = rng.standard_normal((T, B, 4))
    t = time.perf_counter()
    r = analyze(cell, params, x)
    dt = time.perf_counter() - t
    finite = bool(np.isfinite(r.log10_spectral_norm).all()
                  and np.isfinite(r.log10_frobenius_norm).all())
    # VmHWM, not ru_maxrss: Linux carries a parent's high-water mark across exec.
    with open("/proc/self/status") as fh:
        rss = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    print(f"{dt:.1f} {rss:.0f} {finite} {np.median(r.log10_spectral_norm[-1]):.1f}")
""")


STACK = textwrap.dedent("""
    import dataclasses, sys, time
    import numpy as np
    from gradflow.cells import get_cell
    from gradflow.errors import GradflowError
    from gradflow.stack import Layer, analyze_stack
    depth, n, T, B = (int(a) for a in sys.argv[1:5])
    backend = sys.argv[5]
    rng = np.random.default_rng(0)
    cell = get_cell("lstm")
    def params(d):
        return {p.name: rng.standard_normal(p.numeric_shape(n, d))
                / (np.sqrt(p.numeric_shape(n, d)[-1]) if p.kind == "weight" else 10.0)
                for p in cell.parameters}
    layers = [Layer("lstm", params(n if k else 8)) for k in range(depth)]
    x = rng.standard_normal((T, B, 8))
    t, c = time.perf_counter(), time.process_time()
    try:
        r = analyze_stack(layers, x, gradient="last", backend=backend)
    except GradflowError as exc:
        sys.exit(f"error: {exc}")
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    arrays = [r.log10_spectral_norm, r.layer_log10_spectral_norm, r.cross_log10_spectral_norm,
              r.log10_input_spectral_norm, r.log10_gradient_norm]
    finite = all(bool(np.isfinite(a[1:] if a.ndim == 2 else a[:, 1:]).all()) for a in arrays)
    # VmHWM, not ru_maxrss: Linux carries a parent's high-water mark across exec.
    with open("/proc/self/status") as fh:
        rss = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    pool = used = "-"
    if backend == "cupy":
        import cupy
        # the pool keeps every block it reserved: total_bytes is its high-water mark
        pool = f"{cupy.get_default_memory_pool().total_bytes() / 2**20:.0f}"
        free, total = cupy.cuda.runtime.memGetInfo()
        used = f"{(total - free) / 2**20:.0f}"
    last = np.median(r.log10_spectral_norm[-1])
    def nbytes(v):
        if isinstance(v, np.ndarray):
            return v.nbytes
        return sum(nbytes(a) for a in v.values()) if isinstance(v, dict) else 0
    res = sum(nbytes(getattr(r, f.name)) for f in dataclasses.fields(r))  # grows with T
    jit = "yes" if "numba" in sys.modules else "no"
    print(f"{wall:.1f} {cpu:.1f} {rss:.0f} {res / 2**20:.1f} {res / T / 1024:.2f} {jit} "
          f"{pool} {used} {finite} {last:.1f}")
""")

STACK_HEADER = (
    f"{'T':>7} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'result MB':>9} {'kB/lag':>6} "
    f"{'numba':>5} {'pool MB':>8} {'dev MB':>7} {'finite':>6} {'log10 ||dS_T/dS_0||':>20}"
)


def stack_case(
    depth: int, n: int, T: int, batch: int, backend: str, timeout: float | None
) -> tuple[str, float | None]:
    """One run of the stack case in its own process: the table row (or why there is none)
    and the analysis' wall seconds."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", STACK, str(depth), str(n), str(T), str(batch), backend],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"{T:>7} stopped at the time budget ({timeout:.0f} s)", None
    if out.returncode != 0:
        lines = (out.stderr or out.stdout or "no output").strip().splitlines()
        return f"{T:>7} failed: {lines[-1] if lines else out.returncode}", None
    wall, cpu, rss, res, per_lag, jit, pool, used, finite, last = out.stdout.split()
    row = (
        f"{T:>7} {wall:>8} {cpu:>8} {rss:>8} {res:>9} {per_lag:>6} {jit:>5} {pool:>8} "
        f"{used:>7} {finite:>6} {last:>20}"
    )
    return row, float(wall)


def stacks(depth: int, n: int, steps: int, batch: int, backend: str = "numpy") -> None:
    print(
        f"LSTM stack, {depth} layers, n = {n}, B = {batch}, d = 8, backend {backend}; "
        "wall and CPU seconds, peak host RSS (VmHWM), the result's arrays (the part that grows "
        "with T) and per lag, whether numba was loaded (the compiled Krylov kernel), CuPy pool "
        "high-water mark and device memory in use at the end"
    )
    print(STACK_HEADER)
    for T in (steps, 10 * steps):
        print(stack_case(depth, n, T, batch, backend, None)[0], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stack", action="store_true", help="the stack case only (docstring)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1000, help="T; the second run takes 10 T")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="--stack only")
    args = ap.parse_args()
    if args.stack:
        stacks(args.depth, args.n, args.steps, args.batch, args.backend)
        return
    print(
        f"{'cell':<5} {'n':>5} {'T':>9} {'B':>2} {'seconds':>8} {'peak MB':>8} "
        f"{'finite':>6} {'log10 norm at T':>16}"
    )
    for name, n, T, B in CASES:
        steps = max(3, T // 100) if args.quick else T
        out = subprocess.run(
            [sys.executable, "-c", CODE, name, str(n), str(steps), str(B)],
            capture_output=True,
            text=True,
            check=True,
        )
        dt, rss, finite, last = out.stdout.split()
        print(f"{name:<5} {n:>5} {steps:>9} {B:>2} {dt:>8} {rss:>8} {finite:>6} {last:>16}")


if __name__ == "__main__":
    main()

"""Engine cost against its floor: the bare renormalised chain of batched matrix products.

The floor is T products ``P @ J`` of the state Jacobian's shape ``(B, m, m) @ (B, m, m)`` with
renormalisation (one Frobenius norm and one scaling per step), and no Jacobian evaluation at
all. ``analyze`` does everything: rollout, Jacobian factors, the chain, Frobenius and certified
spectral norms for every lag, and the h-block spectral norms.

Everything runs with ONE BLAS thread, set explicitly (threadpoolctl, and ``threads=1`` where
``analyze`` takes it); the table says so. Each time is the best of ``--repeat`` runs; ``spread``
is (worst - best) / best of those runs, a measure of how busy the machine was. ``--cpu``
reports the process's CPU time instead of wall-clock time: with one thread that is the work
done, far less disturbed by other processes on a shared machine (cache sharing still shows).

``--backend`` picks ``analyze``'s kernels: ``auto`` (the default: the compiled backend of the
``fast`` extra where the case qualifies, see :mod:`gradflow.compiled`, and the compiled Krylov
kernel of the spectral norms where the work repays loading numba, see
:func:`gradflow.spectral.compiled_wanted`), ``numpy`` (the NumPy reference path,
``compiled=False``), ``compiled`` (``compiled=True``) or ``kernel`` (the NumPy chain with the
compiled Krylov kernel at any size, as a long run or a process analysing many cases gets it:
the child lowers ``COMPILED_WORK`` to 0); the table's last column says which ran.

``--baseline DIR`` also times the ``analyze`` of another gradflow tree (a directory holding a
``gradflow`` package, e.g. ``git archive <commit> gradflow | tar -x -C DIR``) in the same run,
interleaved with the current one, so that before/after ratios share the machine's state. Each
``analyze`` is timed in a child process (``--child``) whose ``PYTHONPATH`` selects the tree.

``--policy`` drops every thread limit instead: the floor uses the BLAS default and ``analyze``
its own thread policy (:mod:`gradflow.threads`).

Run: ``python benchmarks/engine_vs_floor.py`` (``--quick`` for a smoke run, ``--large`` adds
n = 1024 and 2048).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

CONFIGS = [(32, 1000, 16), (128, 500, 8), (512, 100, 2)]
LARGE = [(1024, 20, 2), (2048, 10, 1)]
CELLS = ["rnn", "lstm", "gru"]
ROOT = Path(__file__).resolve().parent.parent


CLOCK = time.perf_counter
#: ``--policy``: no thread limit anywhere; ``analyze`` runs under its own thread policy.
POLICY = False
BACKEND = "auto"


def floor(m: int, steps: int, batch: int, rng: np.random.Generator) -> float:
    pool = rng.standard_normal((4, batch, m, m)) / np.sqrt(m)
    P = np.broadcast_to(np.eye(m), (batch, m, m)).copy()
    scales = np.empty((steps, batch))
    t = CLOCK()
    for k in range(steps):
        P = P @ pool[k % 4]
        s = np.sqrt(np.einsum("bij,bij->b", P, P))
        scales[k] = s
        P = P / s[:, None, None]
    np.cumsum(np.log10(scales), axis=0)
    return CLOCK() - t


def child(cell_name: str, n: int, steps: int, batch: int, repeat: int) -> list[float]:
    """Time ``analyze`` of whichever gradflow is first on the path, one BLAS thread."""
    import inspect

    from gradflow.cells import get_cell
    from gradflow.engine import analyze

    rng = np.random.default_rng(0)
    cell = get_cell(cell_name)
    d = 16
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, d))
        / (np.sqrt(p.numeric_shape(n, d)[-1]) if p.kind == "weight" else 10.0)
        for p in cell.parameters
    }
    x = rng.standard_normal((steps, batch, d))
    signature = inspect.signature(analyze).parameters
    kw: dict[str, object] = {"threads": 1} if "threads" in signature else {}
    limit: int | None = 1
    if os.environ.get("ENGINE_VS_FLOOR_POLICY"):  # gradflow's own thread policy, no limit
        kw, limit = {}, None
    backend = os.environ.get("ENGINE_VS_FLOOR_BACKEND", "auto")
    if backend == "kernel":
        import gradflow.spectral as spectral

        spectral.COMPILED_WORK = 0  # the compiled Krylov kernel at any size (numba loaded once)
    if "compiled" in signature:
        kw["compiled"] = {"auto": None, "numpy": False, "compiled": True, "kernel": None}[backend]
    times = []
    with threadpool_limits(limits=limit, user_api="blas"):
        # once untimed, at full size: kernels compiled and, when the compiled backend
        # qualifies, numba loaded (its 0.6 s of loading is per process, not per analysis)
        res = analyze(cell, params, x, **kw)
        for _ in range(repeat):
            t = CLOCK()
            analyze(cell, params, x, **kw)
            times.append(CLOCK() - t)
    # which kernels ran: 1 the compiled chain, 2 the NumPy chain with the compiled Krylov kernel
    kernel = "gradflow.spectral_kernels" in sys.modules
    times.append(1.0 if "compiled" in res.meta else 2.0 if kernel else 0.0)
    return times


def _timed(
    tree: Path, name: str, n: int, steps: int, batch: int, repeat: int
) -> tuple[list[float], int]:
    """Times of ``analyze`` in a child process, and which kernels ran (0 NumPy, 1 the compiled
    chain, 2 the NumPy chain with the compiled Krylov kernel)."""
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")
    env["ENGINE_VS_FLOOR_BACKEND"] = BACKEND
    env["ENGINE_VS_FLOOR_CPU"] = "1" if CLOCK is time.process_time else ""
    if POLICY:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(var, None)
        env["ENGINE_VS_FLOOR_POLICY"] = "1"
    cmd = [sys.executable, __file__, "--child", name, str(n), str(steps), str(batch)]
    out = subprocess.run(
        [*cmd, str(repeat)], env=env, capture_output=True, text=True, check=True
    ).stdout
    *times, compiled = json.loads(out.strip().splitlines()[-1])
    return times, int(compiled)


def _spread(times: list[float]) -> float:
    return (max(times) - min(times)) / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one small configuration")
    ap.add_argument("--large", action="store_true", help="add n = 1024 and 2048")
    ap.add_argument("--baseline", type=Path, help="another gradflow tree, timed side by side")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--configs", help="n:T:B,... instead of the default sizes")
    ap.add_argument("--cpu", action="store_true", help="CPU time instead of wall-clock time")
    ap.add_argument(
        "--policy",
        action="store_true",
        help="default thread policy: no BLAS limit for the floor, analyze without threads=1",
    )
    ap.add_argument("--backend", choices=["auto", "numpy", "compiled", "kernel"], default="auto")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global CLOCK, POLICY, BACKEND
    POLICY = bool(args.policy)
    BACKEND = args.backend
    if args.cpu or os.environ.get("ENGINE_VS_FLOOR_CPU"):
        CLOCK = time.process_time
    if args.child:
        name, *nums = args.child
        print(json.dumps(child(name, *(int(v) for v in nums))))
        return
    rng = np.random.default_rng(0)
    configs = [(16, 50, 2)] if args.quick else CONFIGS + (LARGE if args.large else [])
    if args.configs:
        configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")]
    clock = "CPU" if CLOCK is time.process_time else "wall-clock"
    if POLICY:
        print(f"default thread policy (no BLAS limit; analyze's own policy); {clock} s")
    else:
        limit = "threadpoolctl limit 1; analyze(threads=1) where supported"
        print(f"one BLAS thread ({limit}); {clock} s")
    head = f"{'cell':<6} {'n':>5} {'T':>6} {'B':>4} {'floor s':>9} {'analyze s':>10} {'ratio':>6}"
    head += f" {'spread':>7}"
    if args.baseline:
        head += f" {'before s':>9} {'before':>7} {'spread':>7}"
    head += "  kernels"
    print(head, flush=True)
    from gradflow.cells import get_cell

    for n, steps, batch in configs:
        for name in args.cells.split(","):
            m = get_cell(name).state_size(n)
            with threadpool_limits(limits=None if POLICY else 1, user_api="blas"):
                fl = [floor(m, steps, batch, rng) for _ in range(args.repeat)]
            now: list[float] = []
            before: list[float] = []
            ran = 0
            for _ in range(args.repeat):  # interleaved: both see the same machine
                times, ran = _timed(ROOT, name, n, steps, batch, 1)
                now += times
                if args.baseline:
                    before += _timed(args.baseline.resolve(), name, n, steps, batch, 1)[0]
            f, e = min(fl), min(now)
            row = f"{name:<6} {n:>5} {steps:>6} {batch:>4} {f:>9.3f} {e:>10.3f} {e / f:>6.2f}"
            row += f" {_spread(now):>7.2f}"
            if before:
                b = min(before)
                row += f" {b:>9.3f} {b / f:>7.2f} {_spread(before):>7.2f}"
            print(row + "  " + ("numpy", "compiled", "numpy+kernel")[ran], flush=True)


if __name__ == "__main__":
    main()

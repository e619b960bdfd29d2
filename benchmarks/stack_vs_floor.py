"""Stack analysis cost against its floor, depth 1 to 4, with peak memory.

The joint Jacobian of an L-layer stack is block lower-triangular, so the product
``dS_T/dS_{T-k}`` has ``L(L+1)/2`` non-zero blocks. The floor is the bare renormalised chain
of the block products that cannot be avoided: per step, every block ``(i, j)``, ``j <= i``,
times its layer's dense state Jacobian ``(B, m_i, m_j) @ (B, m_j, m_j)``, plus the
input-coupling products ``(B, m_i, m_{j+1}) @ (B, m_{j+1}, n_j)`` of the back-substitution,
with one Frobenius norm and scaling per block, and no Jacobian evaluation. ``analyze_stack``
does everything for the joint state (rollout with chunk checkpoints, recompute, generated
factors and input Jacobians, the chain, Frobenius and spectral norms of the joint product,
each layer's chain and the top row's cross-layer blocks); sensitivities are off
(``gradient=None``, ``input_sensitivity=False``), as they are not part of the floor.

Times are CPU seconds (``time.process_time``) of this process, best of ``--repeat`` (default
3); run it with one BLAS thread (``OPENBLAS_NUM_THREADS=1``). With the ``fast`` extra (numba)
the dense chains' spectral estimators take the compiled Krylov kernel where the stack's
estimator work repays loading numba (:func:`gradflow.spectral.compiled_wanted`; at T = 1000,
B = 4, n = 64: depth 2 and up); numba's loading (about 0.6 s, once per process) then falls in
the first of the repeats. ``--kernel`` takes the kernel at every depth (``COMPILED_WORK = 0``,
as a long run or a process analysing many cases gets it; ``engine_vs_floor.py --backend
kernel`` does the same), ``--numpy`` never (``GRADFLOW_COMPILED=0``). Peak RSS
(``resource.getrusage``) is printed after each depth; it must not grow with ``T``.

Run: ``python benchmarks/stack_vs_floor.py`` (small sizes); the issue's width and how the ratio
depends on T: ``--n 256 --steps 200 1000 --depths 2`` (with two or more T's it prints the
marginal ratio, the cost of the steps between them over the floor's: what a long run tends
to); the issue's case ``--n 256 --steps 10000 --batch 4`` is hours on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from gradflow.cells import get_cell
from gradflow.stack import Layer, analyze_stack


def _params(n: int, d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cell = get_cell("lstm")
    out = {}
    for p in cell.parameters:
        shape = p.numeric_shape(n, d)
        out[p.name] = rng.standard_normal(shape) / (
            np.sqrt(shape[-1]) if p.kind == "weight" else 10.0
        )
    return out


def floor(depth: int, n: int, steps: int, batch: int, rng: np.random.Generator) -> float:
    m = 2 * n
    J = rng.standard_normal((batch, m, m)) / np.sqrt(m)
    K = rng.standard_normal((batch, m, n)) / np.sqrt(n)
    P = [[np.eye(m)[None].repeat(batch, 0) for _ in range(i + 1)] for i in range(depth)]
    t = time.process_time()
    for _ in range(steps):
        for i in range(depth):
            above = None
            for j in range(i, -1, -1):
                Q = P[i][j]
                if above is not None:
                    Q = Q.copy()
                    Q[..., :n] += above @ K
                above = Q
                R = Q @ J
                s = np.sqrt(np.einsum("bij,bij->b", R, R))
                R /= s[:, None, None]
                P[i][j] = R
    return time.process_time() - t


def stack(depth: int, n: int, steps: int, batch: int, rng: np.random.Generator) -> float:
    d = n
    layers = [Layer("lstm", _params(n, d, rng)) for _ in range(depth)]
    x = rng.standard_normal((steps, batch, d))
    t = time.process_time()
    analyze_stack(layers, x, gradient=None, input_sensitivity=False, lag_split=False)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[300],
        help="one or more T; with two or more, the marginal ratio between successive T's",
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-depth", type=int, default=4)
    ap.add_argument("--depths", type=int, nargs="+", help="these depths (default 1 to max)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    kernel = ap.add_mutually_exclusive_group()
    kernel.add_argument("--kernel", action="store_true", help="compiled Krylov kernel always")
    kernel.add_argument("--numpy", action="store_true", help="NumPy spectral estimators only")
    args = ap.parse_args()
    if args.kernel:
        import gradflow.spectral

        gradflow.spectral.COMPILED_WORK = 0
    if args.numpy:
        os.environ["GRADFLOW_COMPILED"] = "0"
    spectral = "kernel" if args.kernel else "numpy" if args.numpy else "default policy"
    rng = np.random.default_rng(0)
    print(
        f"LSTM stack, n = {args.n}, B = {args.batch}; CPU seconds, best of {args.repeat}; "
        f"spectral estimators: {spectral}; load average {os.getloadavg()[0]:.1f} at start"
    )
    print("depth      T  analyze_s  floor_s  ratio  peak_rss_MB")
    for depth in args.depths or range(1, args.max_depth + 1):
        rows: list[tuple[int, float, float]] = []
        for steps in args.steps:
            a = min(stack(depth, args.n, steps, args.batch, rng) for _ in range(args.repeat))
            f = min(floor(depth, args.n, steps, args.batch, rng) for _ in range(args.repeat))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{depth:5d}  {steps:5d}  {a:9.2f}  {f:7.2f}  {a / f:5.2f}  {rss:11.0f}")
            rows.append((steps, a, f))
        # The cost of the steps between two T's: the ratio a long run tends to.
        for (t0, a0, f0), (t1, a1, f1) in zip(rows[:-1], rows[1:], strict=True):
            print(
                f"{depth:5d}  {t0}->{t1}: marginal {(a1 - a0) / (t1 - t0) * 1e3:.1f} ms "
                f"against {(f1 - f0) / (t1 - t0) * 1e3:.1f} ms per step, "
                f"ratio {(a1 - a0) / (f1 - f0):.2f}"
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

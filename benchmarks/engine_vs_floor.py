"""Engine cost against its floor: the bare renormalised chain of batched matrix products.

The floor is T products ``P @ J`` of the state Jacobian's shape ``(B, m, m) @ (B, m, m)`` with
renormalisation (one Frobenius norm and one scaling per step), and no Jacobian evaluation at
all. ``analyze`` does everything: rollout, Jacobian factors, the chain, Frobenius and spectral
norms for every lag, and the h-block spectral norms. Both run side by side in this process;
the ratio is reported as the best of ``--repeat`` runs of each.

Run: ``python benchmarks/engine_vs_floor.py`` (add ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradflow.cells import get_cell
from gradflow.engine import analyze

CONFIGS = [(32, 1000, 16), (128, 500, 8), (512, 100, 2)]
CELLS = ["rnn", "lstm", "gru"]


def floor(m: int, steps: int, batch: int, rng: np.random.Generator) -> float:
    pool = rng.standard_normal((4, batch, m, m)) / np.sqrt(m)
    P = np.broadcast_to(np.eye(m), (batch, m, m)).copy()
    scales = np.empty((steps, batch))
    t = time.perf_counter()
    for k in range(steps):
        P = P @ pool[k % 4]
        s = np.sqrt(np.einsum("bij,bij->b", P, P))
        scales[k] = s
        P = P / s[:, None, None]
    np.cumsum(np.log10(scales), axis=0)
    return time.perf_counter() - t


def engine(cell_name: str, n: int, steps: int, batch: int, rng: np.random.Generator) -> float:
    cell = get_cell(cell_name)
    d = 16
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, d))
        / (np.sqrt(p.numeric_shape(n, d)[-1]) if p.kind == "weight" else 10.0)
        for p in cell.parameters
    }
    x = rng.standard_normal((steps, batch, d))
    t = time.perf_counter()
    analyze(cell, params, x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one small configuration")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    configs = [(16, 50, 2)] if args.quick else CONFIGS
    print(f"{'cell':<6} {'n':>5} {'T':>6} {'B':>4} {'floor s':>9} {'analyze s':>10} {'ratio':>6}")
    for n, steps, batch in configs:
        for name in CELLS:
            m = get_cell(name).state_size(n)
            engine(name, n, min(steps, 20), batch, rng)  # compile kernels once
            fl = min(floor(m, steps, batch, rng) for _ in range(args.repeat))
            en = min(engine(name, n, steps, batch, rng) for _ in range(args.repeat))
            print(f"{name:<6} {n:>5} {steps:>6} {batch:>4} {fl:>9.3f} {en:>10.3f} {en / fl:>6.2f}")


if __name__ == "__main__":
    main()

"""Where tied-weight gated networks leave the annealed mean field: forward or backward?

Three networks per cell (n = 256, Gaussian init, 4 inputs N(0, 1), 2 seeds, slope of
0.5 log10 of the 32-probe estimate of ||P_k||_F^2 over lags 10..60, 100 steps after the zero
state): weights tied in both passes (a real network); the tied forward trajectory with the
backward chain through freshly drawn weights at every step (same unit values, Jacobian
diagonals and states); and weights redrawn at every step in both passes (the annealed
ensemble). Measured (docs/theory.md, section 8): LSTM at sigma_w = 2.15: -0.090 / -0.152 /
-0.164, GRU at 1.56: -0.116 / -0.157 / -0.166 decades per step, prediction -0.162 / -0.164:
the forward statistics are those of the mean field; the gap comes from the same weights
recurring in the backward product.

Run: ``python benchmarks/meanfield_tied_split.py`` (about 3 minutes on one core).
"""

from __future__ import annotations

import math

import numpy as np

from gradflow.cells import get_cell
from gradflow.codegen import compile_cell
from gradflow.initialisers import Init, initialise


def slope(
    cell: str, sw: float, n: int, seed: int, forward_tied: bool, backward_fresh: bool
) -> float:
    c = get_cell(cell)
    rng = np.random.default_rng(seed)
    d, lo, hi, probes = 4, 10, 60, 32
    init = Init(scheme="gaussian", sigma_w=sw)
    kern = compile_cell(c)
    T, m = hi + 100, c.state_size(n)
    base = kern.pack(initialise(c, n, d, init, rng))
    s = np.zeros((1, m))
    qs, Fs = [], []
    for _ in range(T):
        q = base if forward_tied else kern.pack(initialise(c, n, d, init, rng))
        u = kern.input_projection(rng.standard_normal((1, 1, d)), q)[0]
        s, v = kern.step(s, u, q)
        F = kern.factors([x[None] for x in v], q, (1, 1, n))
        if backward_fresh:
            fresh = kern.pack(initialise(c, n, d, init, rng))
            q = {**q, **{k: w for k, w in fresh.items() if k.startswith("W:")}}
        qs.append(q)
        Fs.append(tuple(f[0] for f in F))
    G = rng.standard_normal((1, probes, m))
    total, ks, ys = 0.0, [], []
    for k in range(1, hi + 1):
        G = kern.apply_vec(G, Fs[T - k], qs[T - k])
        ms = float(np.mean(np.sum(G * G, axis=-1)))
        total += math.log10(ms)
        G = G / math.sqrt(ms)
        if k >= lo:
            ks.append(k)
            ys.append(0.5 * total)
    return float(np.polyfit(ks, ys, 1)[0])


def main() -> None:
    for cell, sw in (("lstm", 2.15), ("gru", 1.56)):
        for fwd, fresh, name in (
            (True, False, "tied"),
            (True, True, "tied forward, fresh backward weights"),
            (False, False, "untied"),
        ):
            r = [slope(cell, sw, 256, s, fwd, fresh) for s in range(2)]
            print(f"{cell} sigma_w={sw} {name}: {np.mean(r):+.4f} ({np.round(r, 4).tolist()})")


if __name__ == "__main__":
    main()

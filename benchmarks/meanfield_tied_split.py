"""Where tied-weight gated networks leave the annealed mean field: forward or backward?

Four networks per cell (n = 256, Gaussian init, 4 inputs N(0, 1), 2 seeds, slope of
0.5 log10 of the 32-probe estimate of ||P_k||_F^2 over lags 10..60, 100 steps after the zero
state): weights tied in both passes (a real network); the tied forward trajectory with the
backward chain through freshly drawn weights at every step (same unit values, Jacobian
diagonals and states); and weights redrawn at every step in both passes (the annealed
ensemble). Measured (docs/theory.md, section 8): LSTM at sigma_w = 2.15: -0.090 / -0.152 /
-0.164, GRU at 1.56: -0.116 / -0.157 / -0.166 decades per step, prediction -0.162 / -0.164:
the forward statistics are those of the mean field; the gap comes from the same weights
recurring in the backward product. A fourth network takes the tied forward trajectory and a
backward chain through one *independent* draw of the weights, tied over time (the
gradient-independence assumption of ``gradflow.analysis.tied_trajectory``): it keeps the
tied networks' rate (``benchmarks/meanfield_tied_split.txt``: LSTM -0.095 against -0.090,
GRU -0.115 against -0.116; n = 256, 2 seeds, the extra draw shifts the input sequence).

Run: ``python benchmarks/meanfield_tied_split.py`` (about 4 minutes on one core; output in
``benchmarks/meanfield_tied_split.txt``).
"""

from __future__ import annotations

import math

import numpy as np

from gradflow.cells import get_cell
from gradflow.codegen import compile_cell
from gradflow.initialisers import Init, initialise


def slope(
    cell: str,
    sw: float,
    n: int,
    seed: int,
    forward_tied: bool,
    backward_fresh: bool,
    backward_independent: bool = False,
) -> float:
    c = get_cell(cell)
    rng = np.random.default_rng(seed)
    d, lo, hi, probes = 4, 10, 60, 32
    init = Init(scheme="gaussian", sigma_w=sw)
    kern = compile_cell(c)
    T, m = hi + 100, c.state_size(n)
    base = kern.pack(initialise(c, n, d, init, rng))
    # an independent draw of the weights, the same at every step (tied backward weights
    # independent of the forward pass: the gradient-independence assumption)
    indep = kern.pack(initialise(c, n, d, init, rng)) if backward_independent else base
    back = {**base, **{k: w for k, w in indep.items() if k.startswith("W:")}}
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
        if backward_independent:
            q = back
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
        for fwd, fresh, indep, name in (
            (True, False, False, "tied"),
            (True, False, True, "tied forward, independent tied backward weights"),
            (True, True, False, "tied forward, fresh backward weights"),
            (False, False, False, "untied"),
        ):
            r = [slope(cell, sw, 256, s, fwd, fresh, indep) for s in range(2)]
            print(f"{cell} sigma_w={sw} {name}: {np.mean(r):+.4f} ({np.round(r, 4).tolist()})")


if __name__ == "__main__":
    main()

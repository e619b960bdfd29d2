"""Mean-field growth rates against n = 1024 networks, below, at and above criticality.

For each cell (rnn, minimalrnn, lstm, gru) the *critical gain* ``sigma_w*`` is where the
annealed mean field (:func:`gradflow.analysis.annealed.cell_meanfield`) predicts a growth rate
of zero for ``||ds_T/ds_{T-k}||_F`` (bisection in ``log sigma_w``). Over gains
``(0.5, 0.75, 1, 1.5, 2) x sigma_w*`` the prediction is compared with networks of ``n = 1024``
units (Gaussian weights, ``sigma_u = 1``, no bias, ``d = 4`` inputs ``N(0, 1)``, tied
weights): ``||P_k||_F^2`` is estimated with ``p`` Gaussian probes (``E ||v^T P_k||^2 =
||P_k||_F^2``, the vector-Jacobian products of the generated kernels), over lags
``[lo, hi]`` ending ``T - hi >= 100`` steps after the zero state, and the slope of
``0.5 log10`` of it is fitted by least squares; the mean over seeds is reported with its
standard error. The same slope of *untied* networks (every parameter redrawn at every
step, ``n = 256``: the annealed ensemble itself) checks the recursion apart from the
tied-weight effects. The tied-weight theory (:func:`gradflow.analysis.tied.tied_meanfield`:
non-crossing pairings of the same weights at different times, factors independent across
time) is fitted over the same window, on the annealed forward population (``+ tied
pairings``) and on the tied one (``+ tied forward``: recurrent pre-activations a Gaussian
process in time, and the input's squared norm ``|x_t|^2 / d`` drawn per step, as one input
vector feeds all units: the prediction judged), and compared also with tied networks whose Jacobian
diagonals are permuted over units at every step (``shuffled``: the time-independence the
theory assumes, the weights still tied). Criterion (issue 16): ``|predicted - simulated| <=
max(0.05 |simulated|, 0.003)`` decades per step, judged on the tied theory.

Run: ``python benchmarks/meanfield_slope.py`` (about 10 minutes on one core), or
``--n 256 --seeds 1`` for a quick look. ``--markdown`` prints the table for docs/theory.md;
``--theory-only`` the predictions alone (a few minutes).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from gradflow.analysis.annealed import cell_meanfield
from gradflow.analysis.tied import tied_meanfield
from gradflow.cells import get_cell
from gradflow.codegen import compile_cell
from gradflow.initialisers import Init, initialise

GAINS = (0.5, 0.75, 1.0, 1.5, 2.0)


def predicted(cell: str, sigma_w: float, n: int, samples: int = 2**15) -> float:
    init = Init(scheme="gaussian", sigma_w=sigma_w, sigma_u=1.0, sigma_b=0.0)
    r = cell_meanfield(cell, init, n, 4, 1.0, samples=samples, burn_in=100, steps=150)
    return r.growth_rate


def critical_gain(cell: str, n: int) -> float:
    """Bisection in log sigma_w of the predicted rate on [0.25, 16] (coarse population)."""
    lo, hi = math.log(0.25), math.log(16.0)
    f_lo = predicted(cell, math.exp(lo), n, 2**13)
    f_hi = predicted(cell, math.exp(hi), n, 2**13)
    if f_lo > 0 or f_hi < 0:
        return float("nan")
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        if predicted(cell, math.exp(mid), n, 2**13) < 0:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def simulated(
    cell: str,
    sigma_w: float,
    n: int,
    seed: int,
    lags: tuple[int, int],
    probes: int,
    tied: bool = True,
    shuffle: bool = False,
) -> float:
    """Slope of 0.5 log10 of the probe estimate of ||P_k||_F^2 over the lag window.

    ``tied=False`` redraws every parameter at every step (forward and backward alike): the
    annealed ensemble the theory describes, which checks the recursion itself.
    ``shuffle=True`` permutes every step's Jacobian diagonals over units (one permutation for
    all factors of the step): tied weights, per-unit factors independent across time."""
    c = get_cell(cell)
    rng = np.random.default_rng(seed)
    d = 4
    init = Init(scheme="gaussian", sigma_w=sigma_w)
    base = initialise(c, n, d, init, rng)
    lo, hi = lags
    T = hi + 100
    kern = compile_cell(c)
    m = c.state_size(n)
    s = np.zeros((1, m))
    qs, Fs = [], []
    q = kern.pack(base)
    for _ in range(T):
        if not tied:
            q = kern.pack(initialise(c, n, d, init, rng))
        u = kern.input_projection(rng.standard_normal((1, 1, d)), q)[0]
        s, v = kern.step(s, u, q)
        F = kern.factors([vv[None] for vv in v], q, (1, 1, n))
        if shuffle:
            perm = rng.permutation(n)
            F = tuple(f[..., perm] for f in F)
        qs.append(q)
        Fs.append(tuple(f[0] for f in F))
    G = rng.standard_normal((1, probes, m))
    log_scale = 0.0
    ks, ys = [], []
    for k in range(1, hi + 1):
        G = kern.apply_vec(G, Fs[T - k], qs[T - k])
        ms = float(np.mean(np.sum(G * G, axis=-1)))
        log_scale += math.log10(ms)
        G = G / math.sqrt(ms)
        if k >= lo:
            ks.append(k)
            ys.append(0.5 * log_scale)
    return float(np.polyfit(ks, ys, 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--probes", type=int, default=32)
    ap.add_argument("--cells", default="rnn,minimalrnn,lstm,gru")
    ap.add_argument("--lags", default="10,60")
    ap.add_argument("--untied-n", type=int, default=256)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--theory-only", action="store_true", help="the predictions only (no networks)")
    args = ap.parse_args()
    lo, hi = (int(v) for v in args.lags.split(","))
    rows = []
    started = time.perf_counter()
    for cell in args.cells.split(","):
        crit = critical_gain(cell, args.n)
        base = crit if math.isfinite(crit) else 1.0
        for g in GAINS:
            sw = g * base
            pred = predicted(cell, sw, args.n)
            init = Init(scheme="gaussian", sigma_w=sw, sigma_u=1.0, sigma_b=0.0)
            tied = tied_meanfield(cell, init, args.n, 4, 1.0, lags=(lo, hi)).slope
            pairs = tied_meanfield(
                cell, init, args.n, 4, 1.0, lags=(lo, hi), forward="annealed", shared_input=False
            )
            if args.theory_only:
                print(
                    f"{cell:11s} sigma*={crit:.4f} x{g:<4} sigma_w={sw:.4f} "
                    f"annealed={pred:+.5f} pairings={pairs.slope:+.5f} tied={tied:+.5f}",
                    flush=True,
                )
                continue
            sims = [
                simulated(cell, sw, args.n, s, (lo, hi), args.probes) for s in range(args.seeds)
            ]
            sim = float(np.mean(sims))
            se = float(np.std(sims, ddof=1) / math.sqrt(len(sims))) if len(sims) > 1 else 0.0
            diff = tied - sim
            ok = abs(diff) <= max(0.05 * abs(sim), 0.003)
            shuf = [
                simulated(cell, sw, args.n, s, (lo, hi), args.probes, shuffle=True)
                for s in range(args.seeds)
            ]
            shf = float(np.mean(shuf))
            un = [
                simulated(cell, sw, args.untied_n, s, (lo, hi), args.probes, tied=False)
                for s in range(args.seeds)
            ]
            unt = float(np.mean(un))
            rows.append((cell, crit, g, sw, pred, pairs.slope, tied, sim, se, diff, ok, shf, unt))
            print(
                f"{cell:11s} sigma*={crit:.4f} x{g:<4} sigma_w={sw:.4f} annealed={pred:+.5f} "
                f"pairings={pairs.slope:+.5f} tied={tied:+.5f} sim={sim:+.5f}+-{se:.5f} "
                f"diff={diff:+.5f} "
                f"{'ok' if ok else 'FAIL'} shuffled={shf:+.5f} "
                f"untied(n={args.untied_n})={unt:+.5f}",
                flush=True,
            )
    print(f"# {time.perf_counter() - started:.0f} s, n = {args.n}, seeds = {args.seeds}")
    if args.markdown and rows:
        print(markdown(rows, args.n, args.untied_n))


def markdown(rows: list[tuple], n: int, untied_n: int) -> str:
    """The table for docs/theory.md."""
    out = [
        f"| cell | sigma_w* | gain / sigma_w* | sigma_w | annealed | + tied pairings "
        f"| + tied forward | tied n = {n} (± s.e.) | theory - network | within "
        f"| shuffled n = {n} | untied n = {untied_n} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, crit, g, sw, pred, prs, tied, sim, se, diff, ok, shf, unt in rows:
        out.append(
            f"| {cell} | {crit:.3f} | {g} | {sw:.3f} | {pred:+.4f} | {prs:+.4f} | {tied:+.4f} "
            f"| {sim:+.4f} ± {se:.4f} | {diff:+.4f} | {'yes' if ok else 'no'} | {shf:+.4f} "
            f"| {unt:+.4f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()

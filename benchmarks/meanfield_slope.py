"""Mean-field prediction against the engine: decay rate of ||ds_T/ds_{T-k}||_F for the tanh RNN.

For each ``sigma_w`` the tanh RNN is initialised with Gaussian weights (``sigma_u = 1``, no
bias) and driven by ``N(0, 1)`` inputs; the engine measures ``log10 ||ds_T/ds_{T-k}||_F`` for
every lag, :func:`gradflow.analysis.decay.decay_rate` fits the slope over the default window
``[T // 10, T]``, and the median over runs (seeds x batch) is compared with the mean-field
prediction ``0.5 log10(chi)`` (Poole et al. 2016; Chen, Pennington & Schoenholz 2018). The
criterion is a relative error within 3 %. Near ``chi = 1`` (``sigma_w = 1.5``) one run's slope
scatters by about 3 % of the prediction, so the default is 3 seeds x 2 runs.

Run: ``python benchmarks/meanfield_slope.py`` (n = 1024, about 17 minutes on 2 cores;
``--n 256 --seeds 1`` for a quick look).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradflow.analysis.decay import decay_rate, default_window
from gradflow.analysis.meanfield import meanfield_prediction
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.initialisers import Init, initialise, make_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.8, 1.0, 1.5, 2.5])
    ap.add_argument("--tolerance", type=float, default=0.03)
    args = ap.parse_args()
    cell = get_cell("rnn")
    k0, k1 = default_window(args.steps)
    print(
        f"tanh RNN, n={args.n}, d={args.d}, T={args.steps}, runs={args.seeds}x{args.batch}, "
        f"window=[{k0}, {k1}], criterion |rel err| <= {args.tolerance:.0%}"
    )
    head = (
        f"{'sigma_w':>7} {'q*':>8} {'chi':>8} {'predicted':>10} {'median':>10} "
        f"{'q10':>9} {'q90':>9} {'rel err':>8} {'ok':>3} {'time':>7}"
    )
    print(head)
    print("-" * len(head))
    failures = 0
    for sw in args.sigmas:
        init = Init("gaussian", sigma_w=sw, sigma_u=1.0)
        pred = meanfield_prediction(cell, init, args.n, args.d, 1.0)
        rates = []
        start = time.perf_counter()
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            params = initialise(cell, args.n, args.d, init, rng)
            x = make_inputs("gaussian", args.steps, args.batch, args.d, rng)
            res = analyze(cell, params, x, hidden=False)
            rates.append(decay_rate(res.log10_frobenius_norm))
        elapsed = time.perf_counter() - start
        r = np.concatenate(rates)
        med = float(np.median(r))
        rel = (med - pred.predicted_slope) / abs(pred.predicted_slope)
        ok = abs(rel) <= args.tolerance
        failures += not ok
        print(
            f"{sw:7.2f} {pred.q_star:8.4f} {pred.chi:8.4f} {pred.predicted_slope:10.5f} "
            f"{med:10.5f} {np.quantile(r, 0.1):9.5f} {np.quantile(r, 0.9):9.5f} "
            f"{rel:+8.2%} {'yes' if ok else 'NO':>3} {elapsed:6.1f}s",
            flush=True,
        )
    print(f"{len(args.sigmas) - failures}/{len(args.sigmas)} within {args.tolerance:.0%}")


if __name__ == "__main__":
    main()

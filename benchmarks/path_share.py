"""How much of ds_T/ds_{T-k} travels through the additive path: the expansion by j.

For each gated cell of the report (PyTorch default init, n = 32, 8 inputs N(0, 1), T = 300,
one sequence per seed) :func:`gradflow.analysis.exact.path_decomposition` expands the product
``P_k = sum_j S_j`` by the number ``j`` of multiplicative factors at lags 10, 30 and 100, and
prints ``log10 ||P_k||_F``, the pure chains ``log10 ||S_0||_F`` and ``log10 ||S_k||_F``, the
additive share ``||S_0|| / ||P_k||``, the ``j`` carrying the largest ``||S_j||`` and the share
of ``sum_j ||S_j||`` in ``j <= 2``.

Run: ``python benchmarks/path_share.py`` (about a minute per cell on one core).
"""

from __future__ import annotations

import argparse

import numpy as np

from gradflow.analysis.exact import path_decomposition
from gradflow.cells import get_cell
from gradflow.initialisers import Init, initialise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--lags", default="10,30,100")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lags = [int(v) for v in args.lags.split(",")]
    print(
        "| cell | lag | log10 ‖P_k‖ | log10 ‖S_0‖ (additive) | log10 ‖S_k‖ (multiplicative) "
        "| ‖S_0‖/‖P_k‖ | argmax_j ‖S_j‖ | share j ≤ 2 | resolved |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        c = get_cell(cell)
        rng = np.random.default_rng(args.seed)
        p = initialise(c, 32, 8, Init(scheme="torch"), rng)
        x = rng.standard_normal((300, 1, 8))
        e = path_decomposition(c, p, x, lags)
        share = e.share_by_j()
        for i, k in enumerate(e.lags):
            t = e.log10_term_norm[i, 0, : k + 1]
            print(
                f"| {cell} | {k} | {e.log10_full_norm[i, 0]:.2f} "
                f"| {e.log10_additive_norm[i, 0]:.2f} | {e.log10_multiplicative_norm[i, 0]:.2f} "
                f"| {10 ** e.log10_additive_share[i, 0]:.3g} | {int(np.nanargmax(t))} "
                f"| {np.nansum(share[i, 0, :3]):.3f} | {int(e.resolved[i, 0].sum())}/{k + 1} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""The report's experiment stage with weight draws in one grouped call, against the per-seed loop.

Issue 16 item 5 wants every number of the report behind at least 10 weight draws. The cost of
an analysis is mostly per step (Python and NumPy call overhead), paid once per call: before
grouping, once per seed. :func:`gradflow.analysis.run.run_seeds` analyses all seeds of a cell
in one call of :func:`gradflow.engine.analyze` with ``draws = len(seeds)`` (grouped weights).

For each configuration (the default report config, ``seeds x batch`` changed) this times
``run_experiment(config, progress=False)`` (the report's experiment stage, as
``benchmarks/report_time.py --stages`` does: every cell, cards included, in this process) with
the seeds in one grouped call ("grouped") and seed by seed ("per seed": ``run_seeds``
replaced by the loop over :func:`~gradflow.analysis.run.run_cell`). CPU time of this process
(``time.process_time``), one BLAS thread (set before NumPy loads), best of ``--repeat``; the
load average before each configuration is printed.

``--claims`` instead times the claims stage (``run_claims(quick=True)``, the report's) with
each claim's draws in one grouped call (:func:`gradflow.analysis.claimkit.draw_all`, claims
a, b and d) and draw by draw (``draw_all`` replaced by the loop over ``draw``), and checks
that both give the same claims, number for number.

``--shared`` times plain ``analyze`` calls with ONE shared weight set (the path every other
caller takes; NumPy, ``compiled=False``: lstm and gru at n = 32 with paths and 8 Lyapunov
exponents, rnn at n = 32, lstm at n = 128 (the fused apply); T = 300, B = 4; best of 5 after
a warm-up); ``--tree DIR`` imports gradflow from another tree (e.g. the code before grouped
weights, ``git archive <commit> gradflow | tar -x -C DIR``) to compare.

Run: ``python benchmarks/ensemble.py [--repeat 3] [--configs 3x4,10x2,10x4] [--claims]
[--shared [--tree DIR]]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["GRADFLOW_THREADS"] = "1"
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else None
sys.path.insert(0, _TREE or str(Path(__file__).resolve().parent.parent))

from gradflow.analysis import run as run_mod  # noqa: E402
from gradflow.analysis.defaults import default_report_config  # noqa: E402
from gradflow.analysis.experiment import run_experiment  # noqa: E402

GROUPED = getattr(run_mod, "run_seeds", None)  # None in a tree before grouped weights


def per_seed(config, cell, seeds, init=None):  # type: ignore[no-untyped-def]
    """The loop ``run_seeds`` replaced: one engine call per seed."""
    return [run_mod.run_cell(config, cell, seed, init) for seed in seeds]


def cpu(config, mode: str, repeat: int) -> float:  # type: ignore[no-untyped-def]
    run_mod.run_seeds = GROUPED if mode == "grouped" else per_seed  # type: ignore[assignment]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        run_experiment(config, progress=False)
        best = min(best, time.process_time() - t0)
    run_mod.run_seeds = GROUPED  # type: ignore[assignment]
    return best


def claims(repeat: int) -> None:
    from gradflow.analysis import claims as claims_mod
    from gradflow.analysis.claimkit import draw

    grouped = claims_mod.draw_all

    def loop(config, dtype="float64", **init):  # type: ignore[no-untyped-def]
        return [draw(config, seed, dtype=dtype, **init) for seed in config.seeds]

    out = {}
    for mode, fn in (("draw by draw", loop), ("grouped", grouped)):
        claims_mod.draw_all = fn  # type: ignore[assignment]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            res = claims_mod.run_claims(quick=True)
            best = min(best, time.process_time() - t0)
        out[mode] = (best, [c.to_dict() for c in res.claims])
    claims_mod.draw_all = grouped  # type: ignore[assignment]
    same = out["grouped"][1] == out["draw by draw"][1]
    print(f"claims stage (quick), CPU s, one BLAS thread, best of {repeat}")
    print(f"draw by draw {out['draw by draw'][0]:.2f}, grouped {out['grouped'][0]:.2f}")
    print("claims identical number for number:", same)


def shared() -> None:
    import numpy as np

    from gradflow.cells import get_cell
    from gradflow.engine import analyze
    from gradflow.initialisers import Init, initialise

    cases = [
        ("lstm", 32, {"paths": True, "lyapunov": 8}),
        ("gru", 32, {"paths": True, "lyapunov": 8}),
        ("rnn", 32, {}),
        ("lstm", 128, {}),
    ]
    out = []
    for name, n, kw in cases:
        cell = get_cell(name)
        p = initialise(cell, n, 8, Init(), np.random.default_rng(0))
        x = np.random.default_rng(1).standard_normal((300, 4, 8))
        analyze(cell, p, x, compiled=False, **kw)
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            analyze(cell, p, x, compiled=False, **kw)
            best = min(best, time.process_time() - t0)
        out.append(f"{name} n={n} {best:.3f} s")
    print(f"shared weights ({_TREE or 'this tree'}): " + "; ".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--configs", default="3x4,10x2,10x4", help="SEEDSxBATCH, comma-separated")
    ap.add_argument("--claims", action="store_true", help="the claims stage instead")
    ap.add_argument("--shared", action="store_true", help="shared-weight analyze calls")
    ap.add_argument("--tree", help="import gradflow from this tree (with --shared)")
    args = ap.parse_args()
    if args.shared:
        shared()
        return
    if args.claims:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        claims(args.repeat)
        return
    base = default_report_config()
    run_experiment(base.replace(seeds=(0,), batch=1), progress=False)  # warm: kernels, caches
    print(f"experiment stage, CPU s, one BLAS thread, best of {args.repeat}")
    print("| draws x sequences | per seed | grouped | grouped / per seed | load before |")
    print("|---|---|---|---|---|")
    for spec in args.configs.split(","):
        s, b = (int(v) for v in spec.split("x"))
        config = base.replace(seeds=tuple(range(s)), batch=b)
        load = os.getloadavg()[0]
        before = cpu(config, "per seed", args.repeat)
        after = cpu(config, "grouped", args.repeat)
        print(f"| {s} x {b} | {before:.2f} | {after:.2f} | {after / before:.2f} | {load:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

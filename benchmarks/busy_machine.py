"""``analyze`` on a busy machine: quiet time against the time beside one CPU-bound process.

Issue 14's bar: with one CPU-bound process running beside it on a 2-core machine, ``analyze``
(lstm, n = 128, T = 500, B = 4) takes at most 1.5x its quiet time, with no thread variables
set. Each measurement runs ``analyze`` in a child process whose environment has every thread
variable removed (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
``GRADFLOW_THREADS``), so the child sees what a new user's shell gives it; the busy load is a
``while True: pass`` child started before and stopped (by its pid) after. Times are the best
of ``--repeat`` runs (kernel compilation excluded), with the spread (worst - best) / best.

``--baseline DIR`` measures another gradflow tree the same way, in the same run (e.g. the code
before the thread policy: ``git archive <commit> gradflow | tar -x -C DIR``).

Run: ``python benchmarks/busy_machine.py [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GRADFLOW_THREADS")
CHILD = """
import json, sys, time
import numpy as np
from gradflow.cells import get_cell
from gradflow.engine import analyze
name, n, T, B, repeat = sys.argv[1], *map(int, sys.argv[2:6])
rng = np.random.default_rng(0)
cell = get_cell(name)
d = 16
params = {
    p.name: rng.standard_normal(p.numeric_shape(n, d))
    / (np.sqrt(p.numeric_shape(n, d)[-1]) if p.kind == "weight" else 10.0)
    for p in cell.parameters
}
x = rng.standard_normal((T, B, d))
analyze(cell, params, x[:20])
times = []
for _ in range(repeat):
    t = time.perf_counter()
    analyze(cell, params, x)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def run(tree: Path, args: argparse.Namespace) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-c", CHILD, args.cell, str(args.n), str(args.steps), str(args.batch)]
    out = subprocess.run(
        [*cmd, str(args.repeat)], env=env, capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path)
    args = ap.parse_args()
    trees = [("now", ROOT)] + ([("before", args.baseline.resolve())] if args.baseline else [])
    print(
        f"{args.cell} n={args.n} T={args.steps} B={args.batch}; no thread variables set; "
        f"{os.cpu_count()} CPUs"
    )
    head = f"{'tree':<7} {'quiet s':>8} {'spread':>7} {'busy s':>8} {'spread':>7}"
    print(head + f" {'busy/quiet':>10}")
    for label, tree in trees:
        quiet = run(tree, args)
        load = busy()
        try:
            time.sleep(0.5)
            loaded = run(tree, args)
        finally:
            load.terminate()
            load.wait()
        q, b = min(quiet), min(loaded)
        sq = (max(quiet) - q) / q
        sb = (max(loaded) - b) / b
        print(f"{label:<7} {q:>8.3f} {sq:>7.2f} {b:>8.3f} {sb:>7.2f} {b / q:>10.2f}", flush=True)


if __name__ == "__main__":
    main()

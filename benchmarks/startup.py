"""Start-up cost of gradflow: import, CLI import, tiny ``analyze`` runs, the classic kernels.

Each command runs in a fresh interpreter; the numbers are the child's CPU time (user + sys,
from ``resource.getrusage(RUSAGE_CHILDREN)``) and its wall time, best of ``--repeat`` (3), at
one BLAS thread. The kernel cache (``gradflow.kernel_cache``) is measured both cold
(``GRADFLOW_CACHE=0``: every process derives and prints its kernels) and warm (a cache
directory filled by one earlier run). The case is tiny (rnn, n = 8, T = 20, B = 2) so that the
numbers are start-up, not analysis; ``lstm --paths`` prints three kernels, and the last row
builds the kernels of the 11 classic cells for all three paths, as a report worker does.
Whether SymPy was imported is printed for each command.

Run from the repository root: ``PYTHONPATH=. python benchmarks/startup.py``; ``--root DIR``
times another source tree (an older commit, ``git archive``) with the same commands.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = (
    "from gradflow.cells.catalogue import CLASSIC, get_cell\n"
    "from gradflow.codegen import compile_cell\n"
    "for name in CLASSIC:\n"
    "    for path in ('full', 'additive', 'multiplicative'):\n"
    "        compile_cell(get_cell(name), path=path)\n"
)
CHECK = "import sys; print('sympy' in sys.modules, file=sys.stderr)"


#: In one fresh process, the CPU time of each stage of start-up, in the order a report worker
#: meets them (printed as JSON; ``import gradflow`` includes the interpreter's own start).
SECTIONS = """
import json, time
clock = time.process_time
out = {}
import gradflow
out["import gradflow"] = clock()
t = clock(); import sympy; out["import sympy"] = clock() - t
t = clock(); gradflow.get_cell("rnn"); out["build one cell (rnn)"] = clock() - t
t = clock(); [gradflow.CATALOGUE[c] for c in gradflow.CATALOGUE]
out["build the other 24 cells"] = clock() - t
t = clock(); import gradflow.engine; out["import gradflow.engine"] = clock() - t
from gradflow.cells.catalogue import CLASSIC
from gradflow.codegen import compile_cell
from gradflow.symbolic.jacobian import state_jacobian
cells = [gradflow.get_cell(c) for c in CLASSIC]
t = clock(); [state_jacobian(c) for c in cells]; out["derive 11 classic cells"] = clock() - t
t = clock()
[compile_cell(c, path=p) for c in cells for p in ("full", "additive", "multiplicative")]
out["kernels of 11 classic cells x 3 paths"] = clock() - t
print(json.dumps(out))
"""


def _commands(tmp: Path) -> dict[str, list[str]]:
    w, x, out = tmp / "w.npz", tmp / "x.npy", tmp / "out.json"
    lstm = tmp / "lstm.npz"
    analyze_lib = (
        "import numpy as np, gradflow; "
        f"p = gradflow.load_weights({str(w)!r}, 'rnn'); x = np.load({str(x)!r}); "
        f"gradflow.analyze('rnn', p, x); {CHECK}"
    )
    return {
        "import gradflow": [sys.executable, "-c", f"import gradflow; {CHECK}"],
        "import gradflow.cli": [sys.executable, "-c", f"import gradflow.cli; {CHECK}"],
        "gradflow analyze --cell rnn": [
            sys.executable,
            "-c",
            "import sys, atexit; atexit.register(lambda: print('sympy' in sys.modules, "
            "file=sys.stderr)); from gradflow.cli import main; main()",
            *("analyze", "--cell", "rnn", "--weights", str(w), "--inputs", str(x)),
            *("--output", str(out)),
        ],
        "gradflow analyze --cell lstm --paths": [
            sys.executable,
            "-c",
            "import sys, atexit; atexit.register(lambda: print('sympy' in sys.modules, "
            "file=sys.stderr)); from gradflow.cli import main; main()",
            *("analyze", "--cell", "lstm", "--weights", str(lstm), "--inputs", str(x)),
            *("--output", str(out), "--paths"),
        ],
        "gradflow.analyze('rnn', ...)": [sys.executable, "-c", analyze_lib],
        "kernels: 11 classic cells x 3 paths": [sys.executable, "-c", KERNELS + CHECK],
    }


def _make_case(tmp: Path) -> None:
    import numpy as np

    import gradflow

    rng = np.random.default_rng(0)
    params = gradflow.initialise(gradflow.get_cell("rnn"), 8, 3, gradflow.Init(), rng)
    gradflow.save_weights(tmp / "w.npz", "rnn", params)
    lstm = gradflow.initialise(gradflow.get_cell("lstm"), 8, 3, gradflow.Init(), rng)
    gradflow.save_weights(tmp / "lstm.npz", "lstm", lstm)
    np.save(tmp / "x.npy", rng.standard_normal((20, 2, 3)))


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # run in the timed tree: ``python -c`` puts the working folder first on sys.path
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--root", type=Path, default=ROOT, help="the gradflow source tree to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        _make_case(tmp)
        base = {**os.environ, "PYTHONPATH": str(args.root), "OPENBLAS_NUM_THREADS": "1"}
        modes = {
            "no cache": {**base, "GRADFLOW_CACHE": "0"},
            "warm cache": {**base, "GRADFLOW_CACHE_DIR": str(tmp / "kernels")},
        }
        print(f"{'command':38} {'cache':10} {'CPU s':>7} {'wall s':>7}  sympy imported")
        for label, cmd in _commands(tmp).items():
            for mode, env in modes.items():
                if mode == "warm cache":
                    _run(cmd, env, args.root)  # fill the cache
                runs = [_run(cmd, env, args.root) for _ in range(args.repeat)]
                cpu = min(r[0] for r in runs)
                wall = min(r[1] for r in runs)
                print(f"{label:38} {mode:10} {cpu:7.2f} {wall:7.2f}  {runs[-1][2]}")
        print(f"\nstages, in one process (CPU s, best of {args.repeat} processes)")
        print(f"{'stage':38} {'no cache':>9} {'warm':>9}")
        best: dict[str, dict[str, float]] = {}
        for mode, env in modes.items():
            for _ in range(args.repeat):
                done = subprocess.run(
                    [sys.executable, "-c", SECTIONS],
                    env=env,
                    cwd=args.root,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                for stage, cpu in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    row = best.setdefault(stage, {})
                    row[mode] = min(row.get(mode, cpu), cpu)
        for stage, row in best.items():
            print(f"{stage:38} {row['no cache']:9.3f} {row['warm cache']:9.3f}")


if __name__ == "__main__":
    main()
